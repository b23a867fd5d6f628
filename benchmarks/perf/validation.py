"""Argument validation per call: the JSON Schema check (plus the edge-value scan) every call goes
through before its tool runs, per env, for the oracle's calls; as microseconds per call and as a
ratio to parsing the same call from its JSON text (the baseline, measured in the same process)."""

from __future__ import annotations

import time
from typing import Any

import gymnasium as gym

from hiergym.envs.tools import parse_action, validate_arguments
from hiergym.testing import oracle_actions

ENVS = ("hiergym/Shopping-v0", "hiergym/Travel-v0", "hiergym/Geometry-v0", "hiergym/RTL-v0")


def _per_call(fn: Any, n: int) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n


def run(n: int = 2000) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for env_id in ENVS:
        env = gym.make(env_id, split="test", difficulty="hard")
        base = env.unwrapped
        base.reset(seed=0)
        calls = oracle_actions(env)
        texts = [c.to_json() for c in calls]
        tools = [base.toolbox[c.name] for c in calls]
        pairs = list(zip(tools, calls, strict=True))

        def check_all(pairs: list[Any] = pairs) -> None:
            for t, c in pairs:
                validate_arguments(t, c.arguments)

        def parse_all(texts: list[str] = texts) -> None:
            for text in texts:
                parse_action(text)

        validate = _per_call(check_all, n) / len(calls)
        parse = _per_call(parse_all, n) / len(calls)
        figures[env_id] = {
            "calls": len(calls),
            "validate_us_per_call": round(validate * 1e6, 1),
            "parse_us_per_call": round(parse * 1e6, 1),
            "validate_over_parse": round(validate / parse, 2),
        }
        env.close()
    return figures
