"""Shopping tools: catalog search (SQLite FTS5, BM25), product pages, options, cart and submit.

Each tool is a pure function of the read-only catalog and, for the cart, the episode's memory.
Agent text never reaches FTS5 syntax: queries are reduced to quoted word tokens first.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hiergym.envs.tools import Toolbox, tool
from hiergym.errors import ToolError, did_you_mean

PAGE_SIZE = 10
MAX_PAGE = 50
MAX_QUERY_TOKENS = 32
_TOKEN = re.compile(r"[a-z0-9]+")


def fts_query(text: str) -> str:
    """An FTS5 MATCH expression that ORs the quoted word tokens of ``text`` (no FTS syntax survives)."""
    tokens = _TOKEN.findall(text.lower())[:MAX_QUERY_TOKENS]
    return " OR ".join(f'"{t}"' for t in dict.fromkeys(tokens))


def load_product(db: Any, product_id: str) -> dict[str, Any] | None:
    row = db.execute("SELECT doc FROM products WHERE id = ?", (product_id,)).fetchone()
    return None if row is None else json.loads(row[0])


def require_product(db: Any, product_id: str) -> dict[str, Any]:
    doc = load_product(db, product_id.strip())
    if doc is None:
        raise ToolError(
            f"no product with id {product_id[:40]!r}; use an id from search results (e.g. 'B0XXXXXXXX')"
        )
    return doc


def find_variant(doc: dict[str, Any], options: dict[str, str]) -> dict[str, Any]:
    """The variant with exactly these options; a ToolError that names the valid choices otherwise."""
    dims = doc["options"]
    for name, value in options.items():
        if name not in dims:
            raise ToolError(
                f"{doc['product_id']} has no option {name!r}{did_you_mean(name, dims)}; its options are {list(dims)}"
            )
        if value not in dims[name]:
            raise ToolError(
                f"{doc['product_id']} has no {name} {value!r}{did_you_mean(value, dims[name])}; choose one of {dims[name]}"
            )
    missing = [d for d in dims if d not in options]
    if missing:
        raise ToolError(
            f"choose a value for every option of {doc['product_id']}; missing {missing}"
        )
    for v in doc["variants"]:
        if v["options"] == options:
            return v
    raise ToolError(
        f"{doc['product_id']} has no variant {options}"
    )  # unreachable with a full product grid


def _price(value: float | None, name: str) -> float | None:
    if value is not None and not (0 <= value <= 1e7):
        raise ToolError(f"{name} must be between 0 and 10,000,000, got {value}")
    return value


_BM25 = "bm25(products_fts, 10.0, 5.0, 2.0, 1.0)"


ATTRIBUTE_ROWIDS = (
    "SELECT p2.rowid FROM product_attributes a JOIN products p2 ON p2.id = a.product_id"
    " WHERE a.attribute = ?"
)
"""The rowids of the products with one attribute (its parameter): the attribute filter, built once
per query from the attribute index rather than looked up for every candidate."""


def ranked_sql(filters: str, rowids: str = "") -> str:
    """The BM25-ranked page of matches that pass ``filters`` (SQL over ``products p``) and whose
    rowid is in ``rowids`` (a subquery selecting product rowids, e.g. :data:`ATTRIBUTE_ROWIDS`).

    Parameters: the MATCH expression, the filters' parameters, the rowids' parameters, then LIMIT
    and OFFSET. Columns: id, title, price_min, price_max, rating and the BM25 score (lower is
    better). Ranking happens inside the FTS query (bm25 is only valid there) and stops at the page.
    The products are joined only when ``filters`` reads them; the rowid set is tested as
    ``+rowid IN (...)``: the unary plus keeps SQLite from pushing it into FTS5 (which would run
    the MATCH once per candidate), so the set is built once and each match is one lookup.
    """
    where = [f for f in (filters, rowids and f"+products_fts.rowid IN ({rowids})") if f]
    hits = (
        f"SELECT rowid, {_BM25} AS score FROM products_fts WHERE products_fts MATCH ?"
        " ORDER BY score, rowid LIMIT ? OFFSET ?"
    )
    if where:
        join = "CROSS JOIN products p ON p.rowid = products_fts.rowid " if filters else ""
        hits = (
            f"SELECT products_fts.rowid AS rowid, {_BM25} AS score FROM products_fts {join}"
            f"WHERE products_fts MATCH ? AND {' AND '.join(where)} "
            "ORDER BY score, products_fts.rowid LIMIT ? OFFSET ?"
        )
    return (
        "SELECT p.id, p.title, p.price_min, p.price_max, p.rating, hits.score FROM ("
        + hits
        + ") hits JOIN products p ON p.rowid = hits.rowid ORDER BY hits.score, hits.rowid"
    )


def search_query(
    query: str,
    category: str | None,
    min_price: float | None,
    max_price: float | None,
    attribute: str | None,
    page: int,
) -> tuple[str, list[Any]]:
    """The SQL and parameters of one search page (plus one row, to tell whether more follow)."""
    match = fts_query(query)
    where, params = [], []
    if category:
        where.append("(p.category_lc = ? OR p.category_lc LIKE ? ESCAPE '\\')")
        cat = category.strip().lower()
        params += [cat, cat.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + " > %"]
    if min_price is not None:
        where.append("p.price_max >= ?")
        params.append(min_price)
    if max_price is not None:
        where.append("p.price_min <= ?")
        params.append(max_price)
    rowids = ""
    if attribute:
        rowids = ATTRIBUTE_ROWIDS
        params.append(attribute.strip().lower())
    filters = " AND ".join(where)
    if match:
        sql, params = ranked_sql(filters, rowids), [match, *params]
    elif where or rowids:
        conditions = " AND ".join(where + ([f"p.rowid IN ({rowids})"] if rowids else []))
        sql = (
            "SELECT p.id, p.title, p.price_min, p.price_max, p.rating FROM products p "
            f"WHERE {conditions} ORDER BY p.rating DESC, p.rowid LIMIT ? OFFSET ?"
        )
    else:
        raise ToolError(
            "the query has no words and no filter; search for keywords such as 'wireless earbuds'"
        )
    # One row beyond the page tells whether another page exists, without counting every match.
    return sql, [*params, PAGE_SIZE + 1, (page - 1) * PAGE_SIZE]


@tool
def search(
    state: Any,
    query: str,
    category: str | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
    attribute: str | None = None,
    page: int = 1,
) -> dict[str, Any]:
    """Search the catalog by keywords, best matches first (BM25 over titles, attributes, categories, descriptions).

    Args:
        query: keywords, e.g. "waterproof hooded rain jacket".
        category: only products under this category path, e.g. "Clothing > Men".
        min_price: only products with a variant at or above this price (USD).
        max_price: only products with a variant at or below this price (USD).
        attribute: only products that have this exact attribute, e.g. "waterproof".
        page: result page (10 per page), starting at 1.
    """
    if not 1 <= page <= MAX_PAGE:
        raise ToolError(f"page must be between 1 and {MAX_PAGE}, got {page}")
    _price(min_price, "min_price")
    _price(max_price, "max_price")
    sql, params = search_query(query, category, min_price, max_price, attribute, page)
    rows = state.db.execute(sql, params).fetchall()
    more = len(rows) > PAGE_SIZE
    rows = rows[:PAGE_SIZE]
    return {
        "page": page,
        "more_pages": more,
        "results": [
            {
                "product_id": r[0],
                "title": r[1],
                "price": r[2] if r[2] == r[3] else [r[2], r[3]],
                "rating": r[4],
            }
            for r in rows
        ],
    }


@tool
def view_product(state: Any, product_id: str) -> dict[str, Any]:
    """Open a product page: title, category, attributes, options, price range, rating, description.

    Args:
        product_id: the product's id from search results, e.g. "B0K3J9QX2L".
    """
    doc = require_product(state.db, product_id)
    return {
        "product_id": doc["product_id"],
        "title": doc["title"],
        "category": doc["category"],
        "attributes": doc["attributes"],
        "options": doc["options"],
        "price": [doc["price_min"], doc["price_max"]],
        "rating": doc["rating"],
        "reviews": doc["reviews"],
        "description": doc["description"],
    }


@tool
def select_options(state: Any, product_id: str, options: dict[str, str]) -> dict[str, Any]:
    """Choose a value for every option of a product and see that variant's price and stock.

    Args:
        product_id: the product's id.
        options: one value per option, e.g. {"size": "M", "color": "navy"}.
    """
    doc = require_product(state.db, product_id)
    variant = find_variant(doc, options)
    return {
        "product_id": doc["product_id"],
        "options": variant["options"],
        "price": variant["price"],
        "in_stock": variant["stock"] > 0,
        "stock": variant["stock"],
    }


@tool(cache="none")
def add_to_cart(
    state: Any, product_id: str, options: dict[str, str], quantity: int = 1
) -> dict[str, Any]:
    """Put a product variant in the cart.

    Args:
        product_id: the product's id.
        options: one value per option, e.g. {"size": "M", "color": "navy"}.
        quantity: how many, 1 to 10.
    """
    if not 1 <= quantity <= 10:
        raise ToolError(f"quantity must be between 1 and 10, got {quantity}")
    doc = require_product(state.db, product_id)
    variant = find_variant(doc, options)
    if variant["stock"] < quantity:
        raise ToolError(
            f"{doc['product_id']} {options} has {variant['stock']} in stock; choose another variant"
        )
    cart = state.memory.setdefault("cart", [])
    cart.append(
        {
            "product_id": doc["product_id"],
            "options": variant["options"],
            "price": variant["price"],
            "quantity": quantity,
        }
    )
    return _cart_view(cart)


@tool(cache="none")
def view_cart(state: Any) -> dict[str, Any]:
    """Show the cart: its items and total."""
    return _cart_view(state.memory.get("cart", []))


def _cart_view(cart: list[dict[str, Any]]) -> dict[str, Any]:
    return {"items": cart, "total": round(sum(i["price"] * i["quantity"] for i in cart), 2)}


@tool(terminal=True, cache="none")
def submit(state: Any, product_id: str, options: dict[str, str], message: str) -> str:
    """Finish: recommend one product variant to the user. Ends the episode.

    Args:
        product_id: the chosen product's id.
        options: the chosen value of every option, e.g. {"size": "M", "color": "navy"}.
        message: the recommendation to the user; state the product, its relevant attributes, the options and the price.
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox([search, view_product, select_options, add_to_cart, view_cart, submit])
