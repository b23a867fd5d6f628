"""Harness speed: episodes/s of the oracle and random agents on the smoke suite with 1 and 2
workers, and the harness's overhead per episode against stepping the envs directly in a loop.

Target (issue 6): overhead <= 10%.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import gymnasium as gym

import hiergym
from hiergym.agents import load
from hiergym.benchmarks.bench import bench
from hiergym.benchmarks.runner import SUITES, plan_episodes, run_episodes

REPEATS = 3


def _direct_loop(specs: list) -> float:
    """The same episodes with no harness: make each env once, reset, act, step."""
    envs = {}
    agents = {name: load(name) for name in {s.agent for s in specs}}
    start = time.perf_counter()
    for s in specs:
        key = (s.env_id, s.split, s.difficulty)
        if key not in envs:
            envs[key] = gym.make(s.env_id, split=s.split, difficulty=s.difficulty)
        env, agent = envs[key], agents[s.agent]
        agent.bind(env)
        if hasattr(agent, "reset"):
            agent.reset(s.agent_seed)
        obs, info = env.reset(seed=s.seed)
        done = False
        while not done:
            obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
            done = terminated or truncated
    return time.perf_counter() - start


def _runner_loop(specs: list, sink: Path) -> float:
    """The harness's per-episode path: EpisodeRunner rows serialised into episodes.jsonl."""
    start = time.perf_counter()
    with sink.open("w") as f:
        run_episodes(specs, lambda row: f.write(json.dumps(row) + "\n"))
    return time.perf_counter() - start


def _bench_time(
    env_ids: list[str], agents: list[str], episodes: int, workers: int, out: Path
) -> float:
    start = time.perf_counter()
    bench(env_ids, agents, episodes=episodes, out=out, workers=workers, show_progress=False)
    return time.perf_counter() - start


def run() -> dict[str, float]:
    env_ids = [e.env_id for e in hiergym.list_envs()]
    suite = SUITES["smoke"]
    episodes = suite["episodes"] * 4  # enough episodes that per-episode figures are stable
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in ("oracle", "random"):
            specs = plan_episodes(env_ids, [agent], episodes, suite["split"], suite["difficulties"])
            _direct_loop(specs)  # warm: sandboxes built, caches filled
            direct = min(_direct_loop(specs) for _ in range(REPEATS))
            runner = min(_runner_loop(specs, Path(tmp) / "rows.jsonl") for _ in range(REPEATS))
            harness = min(
                _bench_time(env_ids, [agent], episodes, 1, Path(tmp) / f"{agent}1")
                for _ in range(REPEATS)
            )
            pooled = _bench_time(env_ids, [agent], episodes, 2, Path(tmp) / f"{agent}2")
            n = len(specs)
            figures[f"{agent}_episodes"] = n
            figures[f"{agent}_episodes_per_s_direct_loop"] = n / direct
            figures[f"{agent}_episodes_per_s_1_worker"] = n / harness
            figures[f"{agent}_episodes_per_s_2_workers"] = n / pooled
            # Per episode: the runner's row building and streaming, against the bare loop.
            figures[f"{agent}_per_episode_overhead_ms"] = (runner - direct) / n * 1000
            figures[f"{agent}_per_episode_overhead_pct"] = (runner - direct) / direct * 100
            # Once per run: summary, report.md and the funnel PNG (matplotlib), amortised by run size.
            figures[f"{agent}_fixed_report_cost_s"] = harness - runner
            figures[f"{agent}_pool_startup_and_report_s"] = pooled - runner / 2
    return {k: round(v, 3) for k, v in figures.items()}
