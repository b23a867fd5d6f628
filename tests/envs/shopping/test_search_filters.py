"""Filtered search (issue 12): the filters no longer go into FTS5 as ``rowid IN (subquery)``, and
every page is what the pre-issue-12 SQL (hiergym.benchmarks.perf.shopping.legacy_ranked_sql)
returns: the same rows, in the same order, with the same BM25 scores."""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import gymnasium as gym
import pytest

from hiergym.benchmarks.perf.shopping import legacy_ranked_sql, legacy_search
from hiergym.envs.shopping import tools
from hiergym.envs.shopping.oracle import plan
from hiergym.envs.shopping.tasks import DIFFICULTIES, load_tasks
from hiergym.envs.shopping.tools import search, search_query

QUERIES = [
    "waterproof breathable hooded rain jacket",
    "wireless",
    "organic cotton",
    "stainless steel non stick pan large",
    "and",  # in nearly every description
    "zzzqx",  # in none
]
FILTERS = [
    {"category": "Clothing"},
    {"category": "Clothing > Men"},
    {"category": "Clothing > Men > Jackets"},
    {"category": "  CLOTHING > men  "},
    {"category": "Clothing > Me"},  # not a path prefix: nothing
    {"category": "Cloth%"},  # LIKE syntax is literal
    {"category": "Home_Kitchen"},
    {"min_price": 100.0},
    {"max_price": 25.0},
    {"min_price": 30.0, "max_price": 60.0},
    {"min_price": 500.0, "max_price": 10.0},  # empty
    {"attribute": "waterproof"},
    {"attribute": " Organic "},
    {"attribute": "no such attribute"},
    {"category": "Home", "max_price": 80.0, "attribute": "dishwasher safe"},
    {"category": "Sports", "min_price": 10.0},
    {},
]


@pytest.fixture(scope="module")
def base():
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="hard")
    yield env.unwrapped
    env.close()


def _rows(db, **kwargs) -> list[tuple]:
    sql, params = search_query(**{"category": None, "min_price": None, "max_price": None,
                                  "attribute": None, "page": 1, **kwargs})  # fmt: skip
    return db.execute(sql, params).fetchall()


def _both(db, **kwargs) -> tuple[list[tuple], list[tuple]]:
    new = _rows(db, **kwargs)
    with legacy_search():
        old = _rows(db, **kwargs)
    return new, old


def test_the_filters_stay_out_of_the_fts_query():
    sql = tools.ranked_sql("p.price_min <= ?")
    assert "rowid IN" not in sql and "CROSS JOIN products p" in sql
    assert tools.ranked_sql("") == legacy_ranked_sql("")  # the unfiltered search is unchanged


def test_the_attribute_filter_is_one_rowid_set_outside_fts5(base):
    """The attribute's rowid set is not pushed into FTS5 (its scan is the unfiltered one's) and
    an attribute-only search does not join the products for every match."""
    db = base.sandbox.db

    def fts_scan(**kwargs) -> list[str]:
        sql, params = search_query(**{"category": None, "min_price": None, "max_price": None,
                                      "attribute": None, "page": 1, "query": QUERIES[0], **kwargs})  # fmt: skip
        return [
            r[3] for r in db.execute("EXPLAIN QUERY PLAN " + sql, params) if "products_fts" in r[3]
        ]

    assert fts_scan(attribute="waterproof") == fts_scan() == fts_scan(category="Clothing")
    assert "CROSS JOIN" not in tools.ranked_sql("", tools.ATTRIBUTE_ROWIDS)


def test_every_filter_returns_the_legacy_rows_order_and_scores(base):
    db = base.sandbox.db
    compared = nonempty = 0
    for query, filters in itertools.product(QUERIES, FILTERS):
        new, old = _both(db, query=query, **filters)
        assert new == old, (query, filters)
        compared += 1
        nonempty += bool(new)
    assert compared == len(QUERIES) * len(FILTERS) and nonempty >= 40


def test_later_and_deep_pages_match_the_legacy_pages(base):
    db = base.sandbox.db
    for filters in ({"category": "Clothing"}, {"max_price": 80.0}, {"attribute": "waterproof"}):
        pages = []
        for page in (1, 2, 5, 50):
            new, old = _both(db, query=QUERIES[0], page=page, **filters)
            assert new == old, (filters, page)
            pages.append(new)
        assert len(pages[0]) == len(pages[1]) == 11 and pages[0][10] == pages[1][0]
        assert not set(pages[0][:10]) & set(pages[1][:10])


def test_ties_in_score_keep_the_catalog_order(base):
    db = base.sandbox.db
    new, old = _both(db, query="and", category="Grocery", page=1)
    assert new == old
    keys = [(r[5], db.execute("SELECT rowid FROM products WHERE id=?", (r[0],)).fetchone()[0])
            for r in new]  # fmt: skip
    assert keys == sorted(keys)


def test_the_oracles_searches_match_the_legacy_search_on_every_cell(base):
    """Every task's oracle walk (category and budget filters, page after page) is unchanged, so
    the generated tasks, which the oracle proves, are too."""
    state = SimpleNamespace(db=base.sandbox.db, memory={})
    walked = 0
    for split, difficulty in itertools.product(("train", "dev", "test"), DIFFICULTIES):
        tasks = list(load_tasks(base.sandbox.db, str(base.sandbox.db_path), split, difficulty))
        for task in tasks[:: max(1, len(tasks) // 3)][:3]:
            new = plan(state, task)
            with legacy_search():
                old = plan(state, task)
            assert new == old and new is not None, task.task_id
            for call in new:
                if call.name == "search":
                    assert search.fn(state, **call.arguments) == _legacy_fn(state, call.arguments)
                    walked += 1
    assert walked >= 27


def _legacy_fn(state, arguments):
    with legacy_search():
        return search.fn(state, **arguments)
