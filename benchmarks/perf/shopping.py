"""Shopping speed: tool calls/s, search vs its raw FTS5 query, reset latency, verdicts/s, filtered
searches against unfiltered ones (and against the filter SQL before issue 12), a catalog-size sweep
up to 50k products, and the cold build.

Targets (issue 2): >= 20,000 view_product calls/s, a search call <= 3x its raw query, reset <= 1 ms,
>= 20,000 verdicts/s. Issue 12: a filtered search <= 2x the unfiltered one, growing at most linearly
with the catalog up to 50k products (``sweep_*_growth_exponent`` <= 1); the cold build <= 8 s.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import sqlite3
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.shopping import data, tools
from hiergym.envs.shopping.tools import fts_query, search, view_product
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions

from . import per_call_ms, rate

QUERY = "waterproof breathable hooded rain jacket"
FILTERS: dict[str, dict[str, Any]] = {  # the oracle's search is "category_budget"
    "category": {"category": "Clothing"},
    "max_price": {"max_price": 80.0},
    "attribute": {"attribute": "waterproof"},
    "category_budget": {"category": "Clothing > Men > Jackets", "max_price": 150.0},
    "all": {"category": "clothing", "min_price": 20.0, "max_price": 200.0, "attribute": "hooded"},
}
SWEEP_PER_CATEGORY = (230, 460, 920, 2084)  # 24 categories: 5,520 (shipped) ... 50,016 products


LEGACY_ATTRIBUTE = (
    "EXISTS (SELECT 1 FROM product_attributes a WHERE a.product_id = p.id AND a.attribute = ?)"
)


def legacy_ranked_sql(filters: str, rowids: str = "") -> str:
    """The ranked search SQL before issue 12, as the reference for tools.ranked_sql (same
    parameters and columns): the filters became ``rowid IN (subquery)`` inside the FTS query,
    which SQLite pushes into FTS5, evaluating the MATCH once per candidate row; the attribute
    filter (``rowids``: tools.ATTRIBUTE_ROWIDS) was an ``EXISTS`` per candidate, last."""
    if rowids:
        assert rowids == tools.ATTRIBUTE_ROWIDS, rowids
        filters = " AND ".join(f for f in (filters, LEGACY_ATTRIBUTE) if f)
    return (
        "SELECT p.id, p.title, p.price_min, p.price_max, p.rating, hits.score FROM ("
        "SELECT rowid, bm25(products_fts, 10.0, 5.0, 2.0, 1.0) AS score FROM products_fts "
        "WHERE products_fts MATCH ?"
        + (f" AND rowid IN (SELECT p.rowid FROM products p WHERE {filters})" if filters else "")
        + " ORDER BY score, rowid LIMIT ? OFFSET ?"
        ") hits JOIN products p ON p.rowid = hits.rowid ORDER BY hits.score, hits.rowid"
    )


@contextlib.contextmanager
def legacy_search() -> Iterator[None]:
    """Searches (the tool, the oracle, the task build) run the pre-issue-12 SQL inside."""
    with mock.patch.object(tools, "ranked_sql", legacy_ranked_sql):
        yield


def _no_progress(description: str, total: int | None = None) -> Callable[[int], None]:
    return lambda n=1: None


def best_ms(variants: dict[str, Callable[[], object]], calls: int, rounds: int = 5) -> dict:
    """Per-call CPU ms of each variant (SQLite runs in this thread; CPU time does not count the
    waits of a loaded machine): the best of ``rounds`` batches of ``calls``, the variants
    interleaved round by round so a change in machine load hits them alike."""
    for fn in variants.values():
        fn()
    best = dict.fromkeys(variants, math.inf)
    for _ in range(rounds):
        for name, fn in variants.items():
            start = time.process_time()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.process_time() - start) * 1000 / calls)
    return best


def run() -> dict[str, float]:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="hard")
    base = env.unwrapped
    db = base.sandbox.db
    state = SimpleNamespace(db=db, memory={})
    ids = itertools.cycle([r[0] for r in db.execute("SELECT id FROM products ORDER BY rowid")])

    figures: dict[str, float] = {}
    # The tool function on distinct products (no cache), through the sandbox (cached), through step().
    figures["view_product_calls_per_s_uncached"] = rate(
        lambda: view_product.fn(state, product_id=next(ids))
    )
    tool = base.toolbox["view_product"]
    cached_call = ToolCall("view_product", {"product_id": next(ids)})
    figures["view_product_calls_per_s_cached"] = rate(
        lambda: base.sandbox.call(
            tool, cached_call, lambda: tool.fn(state, **cached_call.arguments)
        )
    )
    action = ToolCall("view_product", {"product_id": cached_call.arguments["product_id"]})
    steps = itertools.count()

    def step() -> None:
        if next(steps) % 20 == 0:  # realistic episode lengths: the chat history stays short
            base.reset(seed=0)
        base.step(action)

    figures["view_product_env_steps_per_s"] = rate(step)

    raw_sql = "SELECT rowid FROM products_fts WHERE products_fts MATCH ? ORDER BY bm25(products_fts, 10.0, 5.0, 2.0, 1.0) LIMIT 10"
    match = fts_query(QUERY)
    raw_ms = per_call_ms(lambda: db.execute(raw_sql, (match,)).fetchall())
    tool_ms = per_call_ms(lambda: search.fn(state, query=QUERY))
    figures["search_raw_fts_ms"] = raw_ms
    figures["search_tool_ms"] = tool_ms
    figures["search_over_raw_ratio"] = tool_ms / raw_ms
    figures["search_calls_per_s_uncached"] = 1000.0 / tool_ms

    figures.update(filtered_searches(state))

    seeds = itertools.count()
    figures["reset_ms"] = per_call_ms(lambda: base.reset(seed=next(seeds)))

    base.reset(seed=3)
    for call in oracle_actions(env):
        base.step(call)
    trajectory, task = base.trajectory, base.task
    figures["verdicts_per_s"] = rate(lambda: base.verifier.verify(trajectory, task))
    env.close()
    figures.update(catalog_sweep())
    figures.update(cold_build())
    return {k: round(v, 4) for k, v in figures.items()}


def filtered_searches(state: Any) -> dict[str, float]:
    """Each filter against the unfiltered search of the same words, now and with the legacy SQL."""
    figures: dict[str, float] = {}
    variants = {"unfiltered": lambda: search.fn(state, query=QUERY)}
    for name, kw in FILTERS.items():
        variants[name] = lambda kw=kw: search.fn(state, query=QUERY, **kw)
    ms = best_ms(variants, calls=20)
    with legacy_search():
        legacy = best_ms({k: v for k, v in variants.items() if k != "unfiltered"}, 2, rounds=3)
    figures["search_unfiltered_ms"] = ms["unfiltered"]
    for name in FILTERS:
        figures[f"search_{name}_ms"] = ms[name]
        figures[f"search_{name}_over_unfiltered_ratio"] = ms[name] / ms["unfiltered"]
        figures[f"search_{name}_legacy_ms"] = legacy[name]
        figures[f"search_{name}_legacy_over_new_ratio"] = legacy[name] / ms[name]
    return figures


def catalog(per_category: int) -> sqlite3.Connection:
    """An in-memory catalog of ``per_category`` products per category (24 categories), built and
    indexed as the sandbox is (no tasks)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(data.SCHEMA)
    vocab = data.load_vocabulary()
    data.insert_products(conn, data.generate_products(vocab, per_category), _no_progress)
    conn.commit()
    conn.execute("INSERT INTO products_fts(products_fts) VALUES ('optimize')")
    conn.execute("ANALYZE")
    return conn


def catalog_sweep() -> dict[str, float]:
    """Unfiltered, filtered (category and budget; attribute) search, and the legacy SQL of the
    filtered one, against the catalog's size; the growth
    exponent is the slope of log(time) over log(products) from the smallest to the largest."""
    figures: dict[str, float] = {}
    points: dict[str, list[tuple[int, float]]] = {
        "unfiltered": [],
        "filtered": [],
        "attribute": [],
        "legacy": [],
    }
    kw, attribute = FILTERS["category_budget"], FILTERS["attribute"]
    for per_category in SWEEP_PER_CATEGORY:
        conn = catalog(per_category)
        n = conn.execute("SELECT count(*) FROM products").fetchone()[0]
        state = SimpleNamespace(db=conn, memory={})
        ms = best_ms(
            {
                "unfiltered": lambda s=state: search.fn(s, query=QUERY),
                "filtered": lambda s=state: search.fn(s, query=QUERY, **kw),
                "attribute": lambda s=state: search.fn(s, query=QUERY, **attribute),
            },
            calls=10,
        )
        with legacy_search():
            ms.update(best_ms({"legacy": lambda s=state: search.fn(s, query=QUERY, **kw)}, 1, 2))
        conn.close()
        for name, value in ms.items():
            points[name].append((n, value))
            figures[f"sweep_{n}_{name}_ms"] = value
        figures[f"sweep_{n}_filtered_over_unfiltered_ratio"] = ms["filtered"] / ms["unfiltered"]
        figures[f"sweep_{n}_attribute_over_unfiltered_ratio"] = ms["attribute"] / ms["unfiltered"]
        figures[f"sweep_{n}_legacy_over_filtered_ratio"] = ms["legacy"] / ms["filtered"]
    for name, pts in points.items():
        (n0, t0), (n1, t1) = pts[0], pts[-1]
        figures[f"sweep_{name}_growth_exponent"] = math.log(t1 / t0) / math.log(n1 / n0)
    return figures


def _build(path: Path) -> tuple[float, float, list[tuple]]:
    """The cold shopping build (catalog, FTS, oracle-proven tasks) into ``path``: wall s, CPU s,
    and the tasks table."""
    from hiergym.envs.shopping import oracle, tasks

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    wall, cpu = time.perf_counter(), time.process_time()
    data.build(
        conn, _no_progress, add_tasks=functools.partial(tasks.generate_tasks, prove=oracle.prove)
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    conn.row_factory = None
    rows = conn.execute("SELECT * FROM tasks ORDER BY rowid").fetchall()
    conn.close()
    return wall, cpu, rows


def cold_build() -> dict[str, float]:
    """The cold build now and with the legacy search SQL, and whether their tasks are identical."""
    with tempfile.TemporaryDirectory() as tmp:
        wall, cpu, rows = _build(Path(tmp) / "new.sqlite")
        with legacy_search():
            legacy_wall, legacy_cpu, legacy_rows = _build(Path(tmp) / "legacy.sqlite")
    return {
        "cold_build_s": wall,
        "cold_build_cpu_s": cpu,
        "cold_build_legacy_s": legacy_wall,
        "cold_build_legacy_cpu_s": legacy_cpu,
        "cold_build_legacy_over_new_cpu_ratio": legacy_cpu / cpu,
        "cold_build_tasks": len(rows),
        "cold_build_tasks_identical_to_legacy": float(rows == legacy_rows),
    }
