"""Shopping speed: tool calls/s, search vs its raw FTS5 query, reset latency, verdicts/s.

Targets (issue 2): >= 20,000 view_product calls/s, a search call <= 3x its raw query, reset <= 1 ms,
>= 20,000 verdicts/s.
"""

from __future__ import annotations

import itertools
from types import SimpleNamespace

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.shopping.tools import fts_query, search, view_product
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions

from . import per_call_ms, rate

QUERY = "waterproof breathable hooded rain jacket"


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

    seeds = itertools.count()
    figures["reset_ms"] = per_call_ms(lambda: base.reset(seed=next(seeds)))

    base.reset(seed=3)
    for call in oracle_actions(env):
        base.step(call)
    trajectory, task = base.trajectory, base.task
    figures["verdicts_per_s"] = rate(lambda: base.verifier.verify(trajectory, task))
    env.close()
    return {k: round(v, 4) for k, v in figures.items()}
