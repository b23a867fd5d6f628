"""RTL speed: cold and cached verdicts, verdicts/s with a process pool, the oracle on every problem.

Targets (issue 4): a cold verdict for an 8-bit counter (compile + simulate + synthesize) <= 300 ms,
a cached verdict <= 1 ms. "Cold" means a design the cache has never seen (each run appends a new
comment to the source); the reference's own synthesis, a once-per-problem cost, is warm.
"""

from __future__ import annotations

import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.core import Trajectory
from hiergym.envs.rtl import tasks, toolchain, tools, verifier
from hiergym.envs.rtl.toolchain import Limits
from hiergym.envs.sandbox import Sandbox, ToolCache
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions, play

from . import per_call_ms

COUNTER = "rtl-counter-w8"
COLD_REPEATS = 7
POOL_DESIGNS = 24
_fresh = iter(range(10**9))


def _fresh_code(task: Any, tag: str) -> str:
    """The reference with a comment no earlier run wrote: a cache miss, identical hardware."""
    return task.reference + f"\n// perf {tag} {os.getpid()} {time.time_ns()} {next(_fresh)}\n"


def _trajectory(task: Any, code: str) -> Trajectory:
    traj = Trajectory(task)
    traj.submission = ToolCall("submit", {"code": code})
    traj.end = "submitted"
    return traj


def _median_ms(fn: Any, repeats: int = COLD_REPEATS) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _pool_verdict(args: tuple[str, str]) -> float:
    """One cold verdict in a worker process (its own env and sandbox, the shared cache file)."""
    task_id, tag = args
    env = _ENV_CACHE.get("env")
    if env is None:
        env = _ENV_CACHE["env"] = gym.make("hiergym/RTL-v0")
    base = env.unwrapped
    task = tasks.find_task(base.sandbox.db, task_id)
    return base.verifier.verify(_trajectory(task, _fresh_code(task, tag)), task).reward


_ENV_CACHE: dict[str, Any] = {}


def _oracle_on(task_ids: list[str]) -> list[tuple[str, float]]:
    env = gym.make("hiergym/RTL-v0")
    base = env.unwrapped
    out = []
    for task_id in task_ids:
        task = tasks.find_task(base.sandbox.db, task_id)
        base.reset(options={"task": task})
        verdict = play(env, oracle_actions(env), options={"task": task}).verdict
        out.append((task_id, verdict["reward"] if verdict else 0.0))
    env.close()
    return out


def run() -> dict[str, float]:
    env = gym.make("hiergym/RTL-v0")
    base = env.unwrapped
    task = tasks.find_task(base.sandbox.db, COUNTER)
    limits = Limits()
    tools.reference_ppa(base.sandbox, task, limits)  # once per problem, then cached
    figures: dict[str, float] = {}

    def cold_tools() -> None:
        code = _fresh_code(task, "tools")
        toolchain.compile_design(task, code, limits)
        toolchain.simulate_design(task, code, limits)
        toolchain.synthesize_design(task, code, limits)

    figures["cold_compile_simulate_synthesize_ms"] = _median_ms(cold_tools)
    stage = {
        "compile": lambda c: toolchain.compile_design(task, c, limits),
        "simulate": lambda c: toolchain.simulate_design(task, c, limits),
        "synthesize": lambda c: toolchain.synthesize_design(task, c, limits),
        "prove": lambda c: toolchain.prove_equivalence(task, c, limits),
    }
    for name, fn in stage.items():
        figures[f"cold_{name}_ms"] = _median_ms(lambda fn=fn: fn(_fresh_code(task, "stage")))

    figures["cold_verdict_ms"] = _median_ms(
        lambda: base.verifier.verify(_trajectory(task, _fresh_code(task, "verdict")), task)
    )
    warm = _trajectory(task, task.reference)
    base.verifier.verify(warm, task)
    figures["cached_verdict_ms"] = per_call_ms(lambda: base.verifier.verify(warm, task))
    # Another process finds the results in the persistent ToolCache (SQLite), not in memory.
    fresh = Sandbox("rtl", base.sandbox.db_path, cache=ToolCache())
    fresh_verifier = verifier.build_verifier(fresh, limits)

    def from_tool_cache() -> None:
        fresh._memory.clear()
        fresh_verifier.verify(warm, task)

    figures["cached_verdict_from_tool_cache_ms"] = per_call_ms(from_tool_cache)

    # Throughput: cold verdicts of distinct designs, one process vs a pool of 2 (2 cores).
    jobs = [(COUNTER, f"pool{i}") for i in range(POOL_DESIGNS)]
    start = time.perf_counter()
    rewards = [_pool_verdict(j) for j in jobs[: POOL_DESIGNS // 2]]
    figures["verdicts_per_s_1_process"] = (POOL_DESIGNS // 2) / (time.perf_counter() - start)
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_pool_verdict, [(COUNTER, "warmup")] * 2))
        start = time.perf_counter()
        rewards += list(pool.map(_pool_verdict, jobs))
        figures["verdicts_per_s_pool_2"] = POOL_DESIGNS / (time.perf_counter() - start)
    assert all(r == 1.0 for r in rewards), "a copy of the reference must score 1.0"

    # The oracle on every built-in problem, across 2 worker processes.
    ids = [t.task_id for t in tasks.all_tasks(base.sandbox.db)]
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=2) as pool:
        results = [r for chunk in pool.map(_oracle_on, [ids[0::2], ids[1::2]]) for r in chunk]
    figures["oracle_all_problems_s"] = time.perf_counter() - start
    figures["oracle_problems"] = len(results)
    figures["oracle_problems_at_1"] = sum(r == 1.0 for _, r in results)
    env.close()
    return {k: round(v, 4) for k, v in figures.items()}
