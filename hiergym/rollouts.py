"""Group rollouts for GRPO-style training: k episodes per task, the same task and seed, stepped together.

``collect(env_id, agent, tasks=..., group_size=k)`` runs, for every task, a *group* of ``k``
episodes on that task with the same env seed. The group's envs step in lock-step: at each step the
still-running episodes' infos go to ``agent.act_batch`` in one call (one backend request for the
whole group with a batching backend), then every env steps. Each rollout records its per-turn
rewards (the process part too, envs are made with ``process_reward=True`` unless told otherwise),
the verdict and per-level scores, the tokens its completions used, and its transcript.

``backend="ray"`` puts each env in a Ray actor (the agent stays in the driver, where its model is),
so a group's tool calls run in parallel across a cluster; the rows are the same as local ones.
Agents without ``act_batch`` (oracle, random) act per episode, one copy per group member.

``out=DIR`` writes ``DIR/rollouts.jsonl`` (one row per rollout) for ``hiergym export``.
"""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym

ROLLOUTS_FILE = "rollouts.jsonl"


class EpisodeWorker:
    """One env serving one episode at a time; in-process or as a Ray actor (same methods)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]):
        import hiergym  # noqa: F401 - registers the envs (in a Ray worker too)

        self.env_id = env_id
        self.env = gym.make(env_id, **env_kwargs)

    def reset(self, seed: int, task_id: str | None) -> tuple[str, dict[str, Any]]:
        options = {"task_id": task_id} if task_id is not None else None
        return self.env.reset(seed=seed, options=options)

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        return self.env.step(action)

    def task_ids(self, n: int | None, seed: int) -> list[str]:
        import random

        ids = [t.task_id for t in self.env.unwrapped.tasks]
        if n is None:
            return ids
        order = list(range(len(ids)))
        random.Random(seed).shuffle(order)
        return [ids[order[i % len(ids)]] for i in range(n)]

    def record(self) -> dict[str, Any]:
        from hiergym.benchmarks.runner import trajectory_record, versions

        base = self.env.unwrapped
        return {
            "messages": base.messages,
            "trajectory": trajectory_record(base.trajectory),
            "tools": base.toolbox.schemas(),
            "versions": versions(self.env, self.env_id),
        }

    def close(self) -> None:
        self.env.close()


class _Local:
    """Calls on in-process workers, shaped like calls on Ray actors."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n: int):
        self.workers = [EpisodeWorker(env_id, env_kwargs) for _ in range(n)]

    def call(self, method: str, args: Sequence[tuple[Any, ...]], which: Sequence[int]) -> list[Any]:
        return [getattr(self.workers[i], method)(*a) for i, a in zip(which, args, strict=True)]

    def close(self) -> None:
        for w in self.workers:
            w.close()


class _Ray:
    def __init__(self, env_id: str, env_kwargs: dict[str, Any], n: int):
        import ray

        self.ray = ray
        self.started_here = not ray.is_initialized()
        if self.started_here:
            env_vars = {k: v for k, v in os.environ.items() if k.startswith(("HIERGYM_", "HF_"))}
            ray.init(
                runtime_env={"env_vars": env_vars}, include_dashboard=False, log_to_driver=False
            )
        actor = ray.remote(num_cpus=0)(EpisodeWorker)  # env steps are light; don't hold a CPU each
        self.workers = [actor.remote(env_id, env_kwargs) for _ in range(n)]

    def call(self, method: str, args: Sequence[tuple[Any, ...]], which: Sequence[int]) -> list[Any]:
        refs = [
            getattr(self.workers[i], method).remote(*a) for i, a in zip(which, args, strict=True)
        ]
        return self.ray.get(refs)

    def close(self) -> None:
        for w in self.workers:
            self.ray.kill(w)
        if self.started_here:
            self.ray.shutdown()


def _member_agents(agent: Any, k: int) -> list[Any] | None:
    """Per-member copies of an agent that acts one episode at a time (None: it batches)."""
    if hasattr(agent, "act_batch"):
        return None
    return [copy.copy(agent) for _ in range(k)]


def collect(
    env_id: str,
    agent: Any,
    *,
    tasks: int | Sequence[str] | None = None,
    group_size: int = 4,
    backend: str = "local",
    split: str = "train",
    difficulty: str = "easy",
    seed: int = 0,
    process_reward: bool = True,
    env_kwargs: dict[str, Any] | None = None,
    out: str | Path | None = None,
    groups_per_batch: int = 1,
) -> list[dict[str, Any]]:
    """``group_size`` rollouts of each task, stepped together; one row per rollout.

    Args:
        env_id: a hiergym id.
        agent: an ``LLMAgent`` (or anything with ``act_batch(infos, slots)``), or an agent with
            ``act`` (oracle, random), which acts per episode.
        tasks: task ids, or how many tasks to draw (seeded by ``seed``), or None for all of them.
        group_size: rollouts per task (a GRPO group): same task, same env seed.
        backend: ``"local"`` (envs in this process) or ``"ray"`` (each env a Ray actor).
        split, difficulty: which tasks.
        seed: the env seed of group ``g`` is ``seed + g``; an LLM agent samples with
            ``seed + g`` too, each member with its own seed derived from it
            (:func:`hiergym.agents.llm.member_seed`; a batched backend draws the rows of its
            one generation from one generator).
        process_reward: wrap the envs in ProcessReward (per-turn rewards in ``step_rewards``).
        env_kwargs: more ``gym.make`` arguments.
        out: a folder to write ``rollouts.jsonl`` into.
        groups_per_batch: how many groups step together (``group_size * groups_per_batch``
            envs, one ``act_batch`` call per step for all of them: e.g. a greedy evaluation,
            ``group_size=1``, of many tasks in one batched generation). The agent is reset
            once per batch with its first group's seed, so with more than one group a member's
            sampling seed is ``member_seed(that seed, its place in the batch)``.

    Returns:
        Rows with ``group`` (task index), ``member``, ``task_id``, ``seed``, ``reward``,
        ``success``, ``levels`` ({level: score}), ``verdict``, ``step_rewards``,
        ``process_rewards``, ``turns``, ``end``, ``tokens``, ``messages``, ``trajectory``,
        ``tools`` and ``versions``.
    """
    if group_size < 1:
        raise ValueError(f"group_size must be at least 1, got {group_size}")
    if backend not in ("local", "ray"):
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    kwargs = {"split": split, "difficulty": difficulty, "process_reward": process_reward}
    kwargs.update(env_kwargs or {})
    if groups_per_batch < 1:
        raise ValueError(f"groups_per_batch must be at least 1, got {groups_per_batch}")
    pool: Any = (_Local if backend == "local" else _Ray)(
        env_id, kwargs, group_size * groups_per_batch
    )
    rows: list[dict[str, Any]] = []
    sink = None
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        sink = (Path(out) / ROLLOUTS_FILE).open("w")
    try:
        members = list(range(group_size))
        if tasks is None or isinstance(tasks, int):
            task_ids = pool.call("task_ids", [(tasks, seed)], [0])[0]
        else:
            task_ids = [str(t) for t in tasks]
        for start in range(0, len(task_ids), groups_per_batch):
            batch = [
                (g, task_id, seed + g, m)
                for g, task_id in enumerate(task_ids[start : start + groups_per_batch], start)
                for m in members
            ]
            for row in _run_group(pool, agent, env_id, batch):
                row.update(split=split, difficulty=difficulty)
                rows.append(row)
                if sink is not None:
                    sink.write(json.dumps(row, default=str) + "\n")
            if sink is not None:
                sink.flush()
    finally:
        if sink is not None:
            sink.close()
        pool.close()
    return rows


def _run_group(
    pool: Any, agent: Any, env_id: str, batch: list[tuple[int, str, int, int]]
) -> list[dict[str, Any]]:
    """Episodes stepped together: ``batch`` holds (group, task id, seed, member) per env of the
    pool (env ``i`` plays ``batch[i]``)."""
    k = len(batch)
    members = list(range(k))
    copies = _member_agents(agent, k)
    if copies is not None:
        for c, w in zip(copies, members, strict=True):
            if hasattr(c, "bind"):
                c.bind(_worker_env(pool, w))
            if hasattr(c, "reset"):
                c.reset(batch[w][2])
    else:
        if hasattr(agent, "reset"):
            agent.reset(batch[0][2])
    starts = pool.call("reset", [(seed, task_id) for _, task_id, seed, _ in batch], members)
    obs = [s[0] for s in starts]
    infos = [s[1] for s in starts]
    step_rewards: list[list[float]] = [[] for _ in members]
    process: list[list[float]] = [[] for _ in members]
    tokens = [{"prompt": 0, "completion": 0, "requests": 0} for _ in members]
    verdicts: list[Any] = [None] * k
    ends: list[str | None] = [None] * k
    active = list(members)
    while active:
        if copies is None:
            actions = agent.act_batch([infos[i] for i in active], slots=active)
            for i, c in zip(active, getattr(agent, "last_completions", []), strict=False):
                tokens[i]["prompt"] += c.prompt_tokens
                tokens[i]["completion"] += c.completion_tokens
                tokens[i]["requests"] += 1
        else:
            actions = [copies[i].act(obs[i], infos[i]) for i in active]
        results = pool.call("step", [(a,) for a in actions], active)
        still = []
        for i, (o, r, terminated, truncated, info) in zip(active, results, strict=True):
            obs[i], infos[i] = o, info
            step_rewards[i].append(float(r))
            process[i].append(float(info.get("process_reward", 0.0)))
            if terminated or truncated:
                verdicts[i] = info["verdict"]
                ends[i] = "submitted" if terminated else "max_turns"
            else:
                still.append(i)
        active = still
    records = pool.call("record", [()] * k, members)
    name = getattr(agent, "name", type(agent).__name__)
    rows = []
    for i in members:
        verdict = verdicts[i]
        rec = records[i]
        group, task_id, seed, member = batch[i]
        rows.append(
            {
                "env_id": env_id,
                "agent": name,
                "group": group,
                "task_id": task_id,
                "seed": seed,
                "member": member,
                "reward": float(verdict.reward),
                "return": float(sum(step_rewards[i])),
                "success": bool(verdict.passed),
                "levels": {lv.name: float(lv.score) for lv in verdict.levels},
                "verdict": verdict.to_dict(),
                "step_rewards": step_rewards[i],
                "process_rewards": process[i],
                "turns": len(step_rewards[i]),
                "end": ends[i],
                "tokens": tokens[i],
                **rec,
            }
        )
    return rows


def _worker_env(pool: Any, i: int) -> Any:
    if isinstance(pool, _Local):
        return pool.workers[i].env
    raise ValueError(
        "an agent without act_batch (oracle, random) needs the env in this process: use "
        "backend='local', or an LLM agent with the ray backend"
    )


def read_rollouts(run_dir: str | Path) -> list[dict[str, Any]]:
    path = Path(run_dir) / ROLLOUTS_FILE
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


__all__ = ["ROLLOUTS_FILE", "EpisodeWorker", "collect", "read_rollouts"]
