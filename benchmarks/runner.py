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

    def row(self) -> dict[str, Any]:
        """The fields of an episode row that name the episode (the start of every row)."""
        return {
            "env_id": self.env_id,
            "split": self.split,
            "difficulty": self.difficulty,
            "agent": self.agent,
            "seed": self.seed,
            "trial": self.trial,
            "key": self.key,
        }

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


def verifier_version(env: gym.Env) -> str:
    """A fingerprint of the code that scores ``env``: the source files of its levels and of its
    aggregator (a change to any of them may change a verdict)."""
    import hashlib
    import inspect

    verifier = env.unwrapped.verifier
    files = {inspect.getsourcefile(type(level)) for level in verifier.levels}
    files.add(inspect.getsourcefile(type(verifier)))
    fn = getattr(verifier.aggregate, "func", verifier.aggregate)
    with_source = inspect.getsourcefile(fn) if inspect.isfunction(fn) else None
    if with_source:
        files.add(with_source)
    h = hashlib.sha256()
    for f in sorted(f for f in files if f):
        h.update(Path(f).read_bytes())
    return h.hexdigest()[:12]


def versions(env: gym.Env, env_id: str) -> dict[str, str]:
    """What a stored verdict depends on: the env id (its vN), the data and the verifier."""
    base = env.unwrapped
    return {
        "env": env_id,
        "data": str(getattr(base.sandbox, "data_version", "")),
        "verifier": verifier_version(env),
    }


def trajectory_record(trajectory: Any) -> dict[str, Any]:
    """A trajectory as JSON: every turn's action, parsed calls and results (with the data the
    verifiers read), so a stored episode can be read and re-scored without re-running the agent."""
    return {
        "end": trajectory.end,
        "submitted": trajectory.submission is not None,
        "turns": [
            {
                "index": t.index,
                "action": t.action,
                "calls": [{"name": c.name, "arguments": c.arguments, "id": c.id} for c in t.calls],
                "results": [
                    {
                        "name": r.name,
                        "ok": r.ok,
                        "content": r.content,
                        "data": r.data,
                        "error": r.error,
                        "call_id": r.call_id,
                    }
                    for r in t.results
                ],
            }
            for t in trajectory.turns
        ],
    }


def trajectory_from_record(record: dict[str, Any], task: Any, toolbox: Any) -> Any:
    """The :class:`~hiergym.envs.core.Trajectory` a :func:`trajectory_record` was made from; the
    env's ``toolbox`` tells which accepted call was the submission."""
    from hiergym.envs.core import Trajectory, Turn
    from hiergym.envs.tools import ToolCall, ToolResult

    turns = [
        Turn(
            t["index"],
            t["action"],
            tuple(ToolCall(c["name"], c["arguments"], c["id"]) for c in t["calls"]),
            tuple(ToolResult(**r) for r in t["results"]),
        )
        for t in record["turns"]
    ]
    trajectory = Trajectory(task, turns, None, record["end"])
    for turn in turns:
        for call, result in zip(turn.calls, turn.results, strict=False):
            if result.ok and call.name in toolbox and toolbox[call.name].terminal:
                trajectory.submission = call
    return trajectory


class EpisodeRunner:
    """Runs episodes in one process, reusing one env per (env id, split, difficulty)."""

    def __init__(
        self,
        agent_options: dict[str, Any] | None = None,
        transcripts: bool = True,
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self.env_kwargs = dict(env_kwargs or {})
        self._envs: dict[tuple[str, str, str], gym.Env] = {}
        self._versions: dict[tuple[str, str, str], dict[str, str]] = {}
        self._agents: dict[str, Any] = {}
        self.agent_options = dict(agent_options or {})
        self.transcripts = transcripts

    def env(self, spec: EpisodeSpec) -> gym.Env:
        key = (spec.env_id, spec.split, spec.difficulty)
        if key not in self._envs:
            self._envs[key] = gym.make(
                spec.env_id, split=spec.split, difficulty=spec.difficulty, **self.env_kwargs
            )
        return self._envs[key]

    def agent(self, name: str) -> Any:
        if name not in self._agents:
            from hiergym.agents import load

            self._agents[name] = load(name, **self.agent_options)
        return self._agents[name]

    def run(self, spec: EpisodeSpec) -> dict[str, Any]:
        start = time.perf_counter()
        row = spec.row()
        try:
            env = self.env(spec)
            agent = self.agent(spec.agent)
            agent.bind(env)
            if hasattr(agent, "reset"):
                agent.reset(spec.agent_seed)
            obs, info = env.reset(seed=spec.seed)
            row["task_id"] = info["task_id"]
            reward, done, tool_time = 0.0, False, 0.0
            paid: list[float | None] = []  # per step, what ProcessReward added (when it wraps)
            while not done:
                action = agent.act(obs, info)
                t0 = time.perf_counter()
                obs, reward, terminated, truncated, info = env.step(action)
                tool_time += time.perf_counter() - t0
                paid.append(info.get("process_reward"))
                done = terminated or truncated
            traj = env.unwrapped.trajectory
            verdict = info["verdict"]
            key = (spec.env_id, spec.split, spec.difficulty)
            if key not in self._versions:
                self._versions[key] = versions(env, spec.env_id)
            row["versions"] = self._versions[key]
            if self.transcripts:
                row["transcript"] = {
                    "messages": env.unwrapped.messages,
                    "trajectory": trajectory_record(traj),
                }
                if any(p is not None for p in paid):
                    row["transcript"]["process_rewards"] = paid
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
    env_kwargs: dict[str, Any] | None = None,
) -> None:
    runner = EpisodeRunner(agent_options, env_kwargs=env_kwargs)
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
