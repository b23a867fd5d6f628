"""Deterministic catalog generator: sandbox_data/shopping/vocabulary.json -> SQLite with FTS5.

Products come in *families*: members share a product type and most of a core attribute set, and
differ in one attribute. That is what makes hard tasks hard (distractors that share most attributes)
and gives every task a sibling product for the verifier's mutants. Every random draw comes from a
``random.Random`` seeded by a string, so the catalog is identical across processes and machines.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import random
import sqlite3
import string
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hiergym.envs.core import TASKS_TABLE_SQL
from hiergym.envs.sandbox import Progress, build_database
from hiergym.sandbox_data import source_dir

GENERATOR_VERSION = "shopping-1"
PRODUCTS_PER_CATEGORY = 230
TASKS_PER_SPLIT = {"train": 240, "dev": 80, "test": 80}
DIFFICULTIES = ("easy", "medium", "hard")
OUT_OF_STOCK_RATE = 0.15

SCHEMA = """
CREATE TABLE products (
    rowid INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    category_path TEXT NOT NULL,
    category_lc TEXT NOT NULL,
    product_type TEXT NOT NULL,
    brand TEXT NOT NULL,
    price_min REAL NOT NULL,
    price_max REAL NOT NULL,
    rating REAL NOT NULL,
    split TEXT NOT NULL,
    doc TEXT NOT NULL
);
CREATE TABLE product_attributes (product_id TEXT NOT NULL, attribute TEXT NOT NULL);
CREATE INDEX product_attributes_by_attribute ON product_attributes (attribute, product_id);
CREATE INDEX products_by_type ON products (category_path, product_type);
CREATE VIRTUAL TABLE products_fts USING fts5(title, attributes, category, description, tokenize='porter unicode61');
"""


def load_vocabulary() -> dict[str, Any]:
    return json.loads((source_dir("shopping") / "vocabulary.json").read_text())


def split_of(product_id: str) -> str:
    """train/dev/test by a hash of the product id: splits are disjoint by target product."""
    bucket = int(hashlib.sha256(product_id.encode()).hexdigest()[:8], 16) % 20
    return "train" if bucket < 14 else "dev" if bucket < 17 else "test"


def _product_id(rng: random.Random, taken: set[str]) -> str:
    while True:
        pid = "B0" + "".join(rng.choices(string.ascii_uppercase + string.digits, k=8))
        if pid not in taken:
            taken.add(pid)
            return pid


def _variants(
    rng: random.Random, options: dict[str, list[str]], base: float
) -> list[dict[str, Any]]:
    dims = list(options)
    variants = []
    for combo in itertools.product(*(options[d] for d in dims)):
        # Bigger sizes / later values cost a little more; prices end in .99 like a real store.
        step = sum(options[d].index(v) for d, v in zip(dims, combo, strict=True))
        price = max(1.99, math.floor(base * (1 + 0.06 * step)) - 0.01)
        stock = 0 if rng.random() < OUT_OF_STOCK_RATE else rng.randint(1, 60)
        variants.append(
            {
                "options": dict(zip(dims, combo, strict=True)),
                "price": round(price, 2),
                "stock": stock,
            }
        )
    return variants


def generate_products(
    vocab: dict[str, Any], per_category: int = PRODUCTS_PER_CATEGORY
) -> list[dict[str, Any]]:
    """Every product document, category by category, family by family (``per_category`` each: the
    shipped catalog has the default; benchmarks/perf/shopping.py grows it to sweep catalog sizes)."""
    products: list[dict[str, Any]] = []
    taken: set[str] = set()
    for ci, cat in enumerate(vocab["categories"]):
        rng = random.Random(f"hiergym/shopping/{ci}/{cat['path']}")
        count = 0
        while count < per_category:
            ptype = rng.choice(cat["types"])
            core = rng.sample(cat["attributes"], 3)
            others = [a for a in cat["attributes"] if a not in core]
            for member in range(rng.randint(2, 5)):
                attrs = list(core)
                if member > 0:  # a sibling: one core attribute swapped for another
                    attrs[rng.randrange(3)] = rng.choice(others)
                if rng.random() < 0.5:
                    extra = [a for a in cat["attributes"] if a not in attrs]
                    attrs.append(rng.choice(extra))
                options = {}
                for dim, values in cat["options"].items():
                    k = rng.randint(min(2, len(values)), len(values))
                    chosen = set(rng.sample(values, k))
                    options[dim] = [v for v in values if v in chosen]
                lo, hi = cat["price"]
                base = rng.uniform(lo, hi)
                brand = rng.choice(cat["brands"])
                adjective = rng.choice(vocab["adjectives"])
                shown = rng.sample(attrs, min(len(attrs), rng.randint(1, 2)))
                title = " ".join(
                    [brand, adjective.title(), *(a.title() for a in shown), ptype.title()]
                )
                variants = _variants(rng, options, base)
                prices = [v["price"] for v in variants]
                pid = _product_id(rng, taken)
                leaf = cat["path"].split(" > ")[-1]
                products.append(
                    {
                        "product_id": pid,
                        "title": title,
                        "category": cat["path"],
                        "product_type": ptype,
                        "brand": brand,
                        "attributes": attrs,
                        "options": options,
                        "variants": variants,
                        "price_min": min(prices),
                        "price_max": max(prices),
                        "rating": round(rng.uniform(2.8, 5.0), 1),
                        "reviews": rng.randint(0, 5000),
                        "description": (
                            f"This {adjective} {ptype} from {brand} is {_join(attrs)}. "
                            f"Part of our {leaf.lower()} range; choose your {_join(list(options)) or 'style'} below."
                        ),
                    }
                )
                count += 1
                if count == per_category:
                    break
    return products


def _join(words: list[str]) -> str:
    return (
        words[0]
        if len(words) == 1
        else ", ".join(words[:-1]) + " and " + words[-1]
        if words
        else ""
    )


def insert_products(
    conn: sqlite3.Connection, products: list[dict[str, Any]], progress: Progress
) -> None:
    advance = progress("shopping: products", total=len(products))
    for rowid, p in enumerate(products, 1):
        conn.execute(
            "INSERT INTO products VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                rowid,
                p["product_id"],
                p["title"],
                p["category"],
                p["category"].lower(),
                p["product_type"],
                p["brand"],
                p["price_min"],
                p["price_max"],
                p["rating"],
                split_of(p["product_id"]),
                json.dumps(p, separators=(",", ":")),
            ),
        )
        conn.executemany(
            "INSERT INTO product_attributes VALUES (?, ?)",
            [(p["product_id"], a) for a in p["attributes"]],
        )
        conn.execute(
            "INSERT INTO products_fts (rowid, title, attributes, category, description) VALUES (?,?,?,?,?)",
            (rowid, p["title"], " ; ".join(p["attributes"]), p["category"], p["description"]),
        )
        advance(1)


#: ``add_tasks(conn, vocabulary, progress)`` writes the tasks table: env.py passes
#: ``tasks.generate_tasks`` bound to the oracle's prover (see hiergym.envs.building).
AddTasks = Callable[[sqlite3.Connection, dict[str, Any], Progress], None]


def build(conn: sqlite3.Connection, progress: Progress, *, add_tasks: AddTasks) -> None:
    """The whole shopping sandbox: catalog, FTS index, then the tasks ``add_tasks`` writes (the env
    passes the task generator bound to the oracle's prover, so every task is proven solvable)."""
    conn.executescript(SCHEMA + TASKS_TABLE_SQL)
    vocab = load_vocabulary()
    insert_products(conn, generate_products(vocab), progress)
    conn.commit()
    conn.execute("INSERT INTO products_fts(products_fts) VALUES ('optimize')")
    add_tasks(conn, vocab, progress)
    conn.commit()
    conn.execute("ANALYZE")


def database_path(*, add_tasks: AddTasks) -> Path:
    """The sandbox DB, built first (with ``add_tasks`` writing its tasks) if this data version is
    new."""
    return build_database(
        "shopping",
        source_dir("shopping"),
        functools.partial(build, add_tasks=add_tasks),
        GENERATOR_VERSION,
        Path(__file__).parent,
    )
