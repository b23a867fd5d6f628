"""The ``hiergym bench`` harness: run agents on envs, write episodes.jsonl and summary.json.

An episode is fully named by (env id, split, difficulty, agent, seed): the task comes from the seed,
so two runs with the same arguments produce the same rows (wall times aside).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym

SUITES: dict[str, dict[str, Any]] = {
    "smoke": {"episodes": 3, "difficulties": ("easy", "medium", "hard"), "split": "test"},
    "standard": {"episodes": 20, "difficulties": ("easy", "medium", "hard"), "split": "test"},
    "full": {"episodes": 80, "difficulties": ("easy", "medium", "hard"), "split": "test"},
}


@dataclass(frozen=True)
class EpisodeSpec:
    """One episode: the task is fixed by (env, split, difficulty, seed); ``trial`` repeats it."""

    env_id: str
    split: str
    difficulty: str
    agent: str
    seed: int
    trial: int = 0

    @property
    def key(self) -> str:
        return f"{self.env_id}|{self.split}|{self.difficulty}|{self.agent}|{self.seed}|{self.trial}"

    @property
    def agent_seed(self) -> int:
        """The seed the agent samples with: the same task gets a different one on each trial."""
        return self.seed + 1_000_003 * self.trial


def plan_episodes(
    env_ids: Sequence[str],
    agents: Sequence[str],
    episodes: int,
    split: str,
    difficulties: Sequence[str],
    seed: int = 0,
    trials: int = 1,
) -> list[EpisodeSpec]:
    return [
        EpisodeSpec(env_id, split, difficulty, agent, seed + i, trial)
        for env_id in env_ids
        for difficulty in difficulties
        for agent in agents
        for i in range(episodes)
        for trial in range(trials)
    ]


class EpisodeRunner:
    """Runs episodes in one process, reusing one env per (env id, split, difficulty)."""

    def __init__(self, agent_options: dict[str, Any] | None = None) -> None:
        self._envs: dict[tuple[str, str, str], gym.Env] = {}
        self._agents: dict[str, Any] = {}
        self.agent_options = dict(agent_options or {})

    def env(self, spec: EpisodeSpec) -> gym.Env:
        key = (spec.env_id, spec.split, spec.difficulty)
        if key not in self._envs:
            self._envs[key] = gym.make(spec.env_id, split=spec.split, difficulty=spec.difficulty)
        return self._envs[key]

    def agent(self, name: str) -> Any:
        if name not in self._agents:
            from hiergym.agents import load

            self._agents[name] = load(name, **self.agent_options)
        return self._agents[name]

    def run(self, spec: EpisodeSpec) -> dict[str, Any]:
        start = time.perf_counter()
        row: dict[str, Any] = {
            "env_id": spec.env_id,
            "split": spec.split,
            "difficulty": spec.difficulty,
            "agent": spec.agent,
            "seed": spec.seed,
            "trial": spec.trial,
            "key": spec.key,
        }
        try:
            env = self.env(spec)
            agent = self.agent(spec.agent)
            agent.bind(env)
            if hasattr(agent, "reset"):
                agent.reset(spec.agent_seed)
            obs, info = env.reset(seed=spec.seed)
            row["task_id"] = info["task_id"]
            reward, done, tool_time = 0.0, False, 0.0
            while not done:
                action = agent.act(obs, info)
                t0 = time.perf_counter()
                obs, reward, terminated, truncated, info = env.step(action)
                tool_time += time.perf_counter() - t0
                done = terminated or truncated
            traj = env.unwrapped.trajectory
            verdict = info["verdict"]
            row.update(
                reward=float(reward),
                success=bool(verdict.passed),
                verdict=verdict.to_dict(),
                end=traj.end,
                turns=len(traj.turns),
                tool_calls=traj.n_calls,
                invalid_calls=traj.n_invalid,
                env_time_s=tool_time,
                agent_stats=agent.episode_stats() if hasattr(agent, "episode_stats") else None,
                error=None,
            )
        except Exception as e:  # one broken episode is a row, not a dead run
            row.update(
                reward=None,
                success=False,
                verdict=None,
                error=f"{type(e).__name__}: {e}",
                traceback=traceback.format_exc(limit=5),
            )
        row["wall_s"] = time.perf_counter() - start
        return row

    def close(self) -> None:
        for env in self._envs.values():
            env.close()


def run_episodes(
    specs: Iterable[EpisodeSpec],
    on_row: Callable[[dict[str, Any]], None],
    agent_options: dict[str, Any] | None = None,
) -> None:
    runner = EpisodeRunner(agent_options)
    try:
        for spec in specs:
            on_row(runner.run(spec))
    finally:
        runner.close()


def read_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run; the episode is redone
    return rows
