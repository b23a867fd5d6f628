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
from hiergym.envs.registry import missing_data

REPEATS = 5


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
    env_ids = [e.env_id for e in hiergym.list_envs() if not missing_data(e.env_id)]
    suite = SUITES["smoke"]
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for agent in ("oracle", "random"):
            # Throughput on the whole smoke suite, 1 and 2 workers (pool start-up included).
            specs = plan_episodes(
                env_ids, [agent], suite["episodes"], suite["split"], suite["difficulties"]
            )
            _direct_loop(specs)  # warm: sandboxes built, tool caches filled
            one = _bench_time(env_ids, [agent], suite["episodes"], 1, Path(tmp) / f"{agent}1")
            two = _bench_time(env_ids, [agent], suite["episodes"], 2, Path(tmp) / f"{agent}2")
            figures[f"{agent}_smoke_episodes"] = len(specs)
            figures[f"{agent}_smoke_episodes_per_s_1_worker"] = len(specs) / one
            figures[f"{agent}_smoke_episodes_per_s_2_workers"] = len(specs) / two

            # Overhead per episode: the harness's per-episode path (EpisodeRunner + a JSON row
            # streamed to episodes.jsonl) against a bare reset/act/step loop over the same
            # in-process episodes, interleaved so drifts in machine load hit both alike.
            specs = plan_episodes(
                ["hiergym/Shopping-v0"], [agent], 20, suite["split"], suite["difficulties"]
            )
            direct, runner = [], []
            for _ in range(REPEATS):
                direct.append(_direct_loop(specs))
                runner.append(_runner_loop(specs, Path(tmp) / "rows.jsonl"))
            d, r, n = min(direct), min(runner), len(specs)
            figures[f"{agent}_shopping_episodes_per_s_direct_loop"] = n / d
            figures[f"{agent}_shopping_episodes_per_s_harness"] = n / r
            figures[f"{agent}_per_episode_overhead_ms"] = (r - d) / n * 1000
            figures[f"{agent}_per_episode_overhead_pct"] = (r - d) / d * 100
    return {k: round(v, 3) for k, v in figures.items()}
