"""``check_domain(env_id)``: the conformance check every hiergym env must pass (like PettingZoo's api_test).

It runs Gymnasium's ``check_env``, a two-run determinism check (observations, rewards, verdicts),
the oracle on a sample of every split and difficulty (reward 1.0), each of the domain's mutants
(fails at its named level), and a tool-cache round trip.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class Mutant:
    """A mutated oracle solution: ``apply(task, oracle_calls, db) -> (task, actions)`` must fail at ``level``."""

    name: str
    level: str
    apply: Callable[[Any, list[Any], Any], tuple[Any, list[Any]]]


def drop_submit(task: Any, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    """The oracle's calls without its final submit: the episode runs out of turns."""
    return task, calls[:-1] or [calls[-1].to_json()[:-1]]


def break_submit_json(task: Any, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    """The oracle's calls with the submit sent as JSON missing its closing brace."""
    return task, [*calls[:-1], calls[-1].to_json()[:-1]]


NO_SUBMIT = Mutant("no_submit", "format", drop_submit)
MALFORMED_JSON = Mutant("malformed_json", "format", break_submit_json)
"""Mutants every domain whose first level is ``format`` should list."""


@dataclass(frozen=True)
class EpisodeOutcome:
    observations: list[str]
    rewards: list[float]
    verdict: dict[str, Any] | None
    terminated: bool
    truncated: bool


def play(
    env: gym.Env,
    actions: Sequence[Any],
    *,
    seed: int | None = None,
    options: dict[str, Any] | None = None,
) -> EpisodeOutcome:
    """Reset, step through ``actions`` until the episode ends, and collect what came back."""
    obs, info = env.reset(seed=seed, options=options)
    observations, rewards = [obs], []
    terminated = truncated = False
    for action in actions:
        obs, reward, terminated, truncated, info = env.step(action)
        observations.append(obs)
        rewards.append(float(reward))
        if terminated or truncated:
            break
    verdict = info.get("verdict")
    return EpisodeOutcome(
        observations, rewards, verdict.to_dict() if verdict else None, terminated, truncated
    )


def oracle_actions(env: gym.Env) -> list[Any]:
    """The oracle's calls for the env's current task (call after reset)."""
    base = env.unwrapped
    return list(base.make_oracle().plan(base.task))


def _oracle_episode(env: gym.Env, seed: int) -> EpisodeOutcome:
    env.reset(seed=seed)
    actions = oracle_actions(env)
    return play(env, actions, seed=seed)


def check_determinism(env_id: str, seed: int = 11, **kwargs: Any) -> None:
    """Two fresh envs with one seed give identical observations, rewards and verdicts."""
    runs = []
    for _ in range(2):
        env = gym.make(env_id, **kwargs)
        env.reset(seed=seed)
        from hiergym.agents.random_agent import RandomAgent

        agent = RandomAgent(seed=seed)
        obs, info = env.reset(seed=seed)
        actions = []
        for _ in range(env.unwrapped.max_turns):
            action = agent.act(obs, info)
            actions.append(action)
            obs, _, term, trunc, info = env.step(action)
            if term or trunc:
                break
        runs.append((play(env, actions, seed=seed), _oracle_episode(env, seed)))
        env.close()
    assert runs[0] == runs[1], f"{env_id}: two runs with seed {seed} differ"


_CROSS_PROCESS_SCRIPT = """
import json, sys
import gymnasium as gym
import hiergym
from hiergym.testing import oracle_actions, play
env_id, split, difficulty, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
env = gym.make(env_id, split=split, difficulty=difficulty)
env.reset(seed=seed)
out = play(env, oracle_actions(env), seed=seed)
print(json.dumps([out.observations, out.rewards, out.verdict]))
env.close()
"""


def check_cross_process_determinism(
    env_id: str, split: str = "dev", difficulty: str = "hard", seed: int = 2
) -> None:
    """Two fresh interpreters given one seed serve the same task, tool results and reward."""
    import subprocess
    import sys

    outputs = [
        subprocess.run(
            [sys.executable, "-c", _CROSS_PROCESS_SCRIPT, env_id, split, difficulty, str(seed)],
            capture_output=True,
            text=True,
            check=True,
            timeout=600,
        ).stdout
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1], f"{env_id}: two processes with seed {seed} differ"
    assert outputs[0].strip(), f"{env_id}: the subprocess printed nothing"


def check_oracle(env_id: str, per_cell: int = 3, seed: int = 0) -> int:
    """The oracle reaches reward 1.0 on ``per_cell`` tasks of every split and difficulty."""
    cls = gym.spec(env_id)
    checked = 0
    env_cls = _env_class(env_id)
    for split in env_cls.splits:
        for difficulty in env_cls.difficulties:
            env = gym.make(env_id, split=split, difficulty=difficulty)
            for i in range(per_cell):
                out = _oracle_episode(env, seed + i)
                assert out.terminated, (
                    f"{cls.id} {split}/{difficulty} seed {seed + i}: oracle did not submit"
                )
                assert out.verdict is not None and abs(out.verdict["reward"] - 1.0) < 1e-9, (
                    f"{env_id} {split}/{difficulty} seed {seed + i}: oracle reward {out.verdict}"
                )
                checked += 1
            env.close()
    return checked


def check_mutants(env_id: str, seeds: Sequence[int] = (0, 1), **kwargs: Any) -> dict[str, str]:
    """Each mutant of the oracle's solution fails, first at its named level. Returns name -> level."""
    env = gym.make(env_id, **kwargs)
    base = env.unwrapped
    mutants: list[Mutant] = base.mutants()
    assert mutants, f"{env_id} declares no mutants"
    caught: dict[str, str] = {}
    for seed in seeds:
        base.reset(seed=seed)
        calls = oracle_actions(env)
        seed_task = base.task  # each mutant starts from this task, not the one a mutant played
        for m in mutants:
            task, actions = m.apply(seed_task, list(calls), base.sandbox.db)
            out = play(
                env, actions, seed=seed, options={"task": task, "max_turns": max(1, len(actions))}
            )
            assert out.verdict is not None, f"{env_id} mutant {m.name}: no verdict"
            got = out.verdict["first_failed"]
            assert got == m.level, (
                f"{env_id} mutant {m.name}: expected to fail at {m.level!r}, failed at {got!r}: {out.verdict}"
            )
            assert out.verdict["reward"] < 1.0
            caught[m.name] = got
    env.close()
    return caught


def check_cache_round_trip(env_id: str, seed: int = 3) -> None:
    """A recorded episode replays from the tool cache alone with identical observations."""
    import tempfile

    from hiergym.envs.sandbox import Sandbox, ToolCache

    env = gym.make(env_id)
    base = env.unwrapped
    base.reset(seed=seed)
    actions = oracle_actions(env)
    with tempfile.TemporaryDirectory() as tmp:
        cache = ToolCache(f"sqlite:///{tmp}/cache.sqlite")
        original = base.sandbox
        try:
            recorder = _LocalBackend(original, base)
            base.sandbox = Sandbox(
                original.domain, original.db_path, mode="record", backend=recorder, cache=cache
            )
            recorded = play(env, actions, seed=seed)
            assert cache.count(original.domain) > 0, "record mode stored nothing"
            base.sandbox = Sandbox(original.domain, original.db_path, mode="replay", cache=cache)
            replayed = play(env, actions, seed=seed)
            stats = base.sandbox.stats
            assert stats["cache"] > 0 and stats["backend"] == 0, (
                f"replay did not answer from the cache: {stats}"
            )
        finally:
            base.sandbox = original
            cache.engine.dispose()
            ToolCache._engines.pop(cache.url, None)
    assert recorded.observations == replayed.observations, "replay differs from the recording"
    env.close()


class _LocalBackend:
    """A live backend that answers from the local tools (what a real API would, for the check)."""

    name = "local"

    def __init__(self, sandbox: Any, env: Any):
        self.sandbox, self.env = sandbox, env

    def call(self, tool: str, arguments: Any) -> Any:
        return self.env.toolbox[tool].fn(self.env.state, **arguments)


def _env_class(env_id: str) -> Any:
    from hiergym.envs.registry import load_class

    return load_class(gym.spec(env_id).kwargs["env_class"])


def check_domain(env_id: str, *, oracle_per_cell: int = 2) -> dict[str, Any]:
    """Every conformance check on one env id; raises AssertionError on the first failure."""
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=False)
    env.close()
    check_determinism(env_id)
    check_cross_process_determinism(env_id, difficulty=_env_class(env_id).difficulties[-1])
    n = check_oracle(env_id, per_cell=oracle_per_cell)
    caught = check_mutants(env_id)
    check_cache_round_trip(env_id)
    return {"oracle_episodes": n, "mutants": caught}
