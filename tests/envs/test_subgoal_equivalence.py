"""Subgoals asked only on the turns that can reach them give what asking every subgoal on every
turn gave: the same subgoals reached, at the same turns, with the same ``info``, on oracle,
random, junk and attacking episodes (seeds 0-2) of every env with subgoals.

The reference is the mechanism before subgoals declared their tools, kept here: every subgoal not
yet reached is asked at every turn, over a list of its own (built from the domain's ``subgoals``
at each reset, so memos are not shared with the env's), and Shopping's checks as they were
(``_reference_shopping_subgoals``, a copy of the code before the per-task memo) and RTL's
(``_reference_rtl_subgoals``, before Subgoal.of_results). Each step of the env is compared with
the reference asked on the same turn.
"""

from __future__ import annotations

import functools
import hashlib
import json
import random
from collections.abc import Iterator
from typing import Any

import gymnasium as gym
import pytest

from hiergym.agents import RandomAgent
from hiergym.envs.tools import MAX_CALLS_PER_ACTION, ToolCall
from hiergym.testing import AttackContext, hack_matrix, oracle_actions, other_task

CASES = (  # every env with subgoals; the difficulties whose tasks hold every kind of subgoal
    ("hiergym/Shopping-v0", "easy"),
    ("hiergym/Shopping-v0", "hard"),
    ("hiergym/ShoppingList-v0", "easy"),
    ("hiergym/Travel-v0", "easy"),
    ("hiergym/Travel-v0", "hard"),
    ("hiergym/Geometry-v0", "easy"),
    ("hiergym/Geometry-v0", "medium"),
    ("hiergym/Geometry-v0", "hard"),
    ("hiergym/RTL-v0", "easy"),
)
SEEDS = (0, 1, 2)
RANDOM_STEPS = 12
JUNK_STEPS = 10


def _reference_shopping_subgoals(db: Any) -> list[Any]:
    """Shopping's subgoals as they were before the per-task memo and the declared tools."""
    from hiergym.envs.core import Subgoal
    from hiergym.envs.evidence import read_before_submit
    from hiergym.envs.shopping.tools import load_product
    from hiergym.envs.shopping.verifier import product_match

    product = functools.lru_cache(maxsize=4096)(functools.partial(load_product, db))

    def calls(turn: Any, trajectory: Any, name: str) -> list[tuple[Any, Any]]:
        if not read_before_submit(turn, trajectory):
            return []
        return [
            (c, r)
            for c, r in zip(turn.calls, turn.results, strict=False)
            if c.name == name and r.ok
        ]

    def found(turn: Any, trajectory: Any, task: Any) -> bool:
        task = getattr(task, "base", task)
        for _, result in calls(turn, trajectory, "view_product"):
            doc = product(str(result.data["product_id"]))
            if (
                doc is not None
                and doc["product_type"] == task.product_type
                and doc["category"] == task.category
                and all(a in doc["attributes"] for a in task.attributes)
            ):
                return True
        return False

    def chose(turn: Any, trajectory: Any, task: Any) -> bool:
        task = getattr(task, "base", task)
        for _, result in calls(turn, trajectory, "select_options"):
            doc = product(str(result.data["product_id"]))
            if doc is not None and product_match(task, doc, result.data["options"])[0] >= 1.0:
                return True
        return False

    return [
        Subgoal(
            "found_product", found, 0.5, "opened a product of the asked type with every attribute"
        ),
        Subgoal("chose_variant", chose, 0.5, "selected options that earn the full product reward"),
    ]


def _reference_rtl_subgoals() -> list[Any]:
    """RTL's subgoals as they were before Subgoal.of_results and the declared tools."""
    from hiergym.envs.core import Subgoal
    from hiergym.envs.evidence import read_before_submit

    def tool_ok(name: str) -> Any:
        def reached(turn: Any, trajectory: Any, task: Any) -> bool:
            return read_before_submit(turn, trajectory) and any(
                c.name == name and r.ok and isinstance(r.data, dict) and r.data.get("ok") is True
                for c, r in zip(turn.calls, turn.results, strict=False)
            )

        return reached

    return [
        Subgoal("compiles", tool_ok("compile"), 0.25, "a design that compiles"),
        Subgoal("matches_reference", tool_ok("simulate"), 0.75, "a design that simulates right"),
    ]


class Reference:
    """The old mechanism beside an env: its own subgoal list, asked in full at every turn. With
    ``derived``, the list is the domain's current one (each asked through its ``reached``, as
    any caller other than the env asks it)."""

    def __init__(self, env: gym.Env, derived: bool = False):
        self.base = env.unwrapped
        self.derived = derived
        self.goals: list[Any] = []
        self.done: dict[str, int] = {}

    def reset(self) -> None:
        base = self.base
        if self.derived:
            self.goals = base.subgoals()
        elif base.domain == "shopping":
            if not hasattr(self, "_shopping"):
                self._shopping = _reference_shopping_subgoals(base.sandbox.db)
            self.goals = list(self._shopping)
        elif base.domain == "rtl":
            self.goals = _reference_rtl_subgoals()
        else:  # a fresh list: its memos are its own, never the env's
            self.goals = base.subgoals()
        self.done = {}

    def step(self) -> dict[str, Any]:
        base = self.base
        trajectory = base.trajectory
        turn = trajectory.turns[-1]
        reached = []
        for goal in self.goals:
            if goal.name not in self.done and goal.reached(turn, trajectory, base.task):
                self.done[goal.name] = turn.index
                reached.append(goal)
        return {
            "subgoals": {
                "reached": [g.name for g in reached],
                "done": dict(self.done),
                "total": len(self.goals),
            },
            "subgoal_rewards": {g.name: float(g.weight) for g in reached},
        }


def _action_text(calls: list[Any]) -> str:
    return json.dumps([{"name": c.name, "arguments": dict(c.arguments)} for c in calls])


def _probes(base: Any, oracle: list[Any]) -> list[Any]:
    """Calls around the oracle's that must reach what the oracle's reach and nothing more: each
    evidence call's arguments under every other tool, whole and cut to the other tool's
    parameters (the target named in another tool's arguments; a camera's pose asked with a depth
    query's camera), the call broken (it fails), over the per-action cap, then sent as is,
    twice; at the end every evidence call and the submit in one action."""
    tools = {name: t for name, t in base.toolbox.tools.items() if not t.terminal}
    actions: list[Any] = []
    evidence = oracle[:-1]
    for call in evidence:
        for other, tool in tools.items():
            if other == call.name:
                continue
            actions.append(ToolCall(other, dict(call.arguments)))
            schema = tool.parameters
            cut = {k: v for k, v in call.arguments.items() if k in schema.get("properties", {})}
            if cut != call.arguments and set(schema.get("required", ())) <= set(cut):
                actions.append(ToolCall(other, cut))
        broken = {k: ["not", "this"] for k in call.arguments} or {"unexpected": 1}
        actions.append(ToolCall(call.name, broken))
        actions.append(_action_text([call] * (MAX_CALLS_PER_ACTION + 1)))
        actions += [call, call]
    actions.append(_action_text([*evidence[-(MAX_CALLS_PER_ACTION - 1) :], oracle[-1]]))
    return actions


_JUNK = (
    "",
    "hello",
    '{"name": "view_product", "arguments": {',
    '{"name": "nope", "arguments": {}}',
    "<tool_call>{not json}</tool_call>",
    '[{"name": "search", "arguments": {"query": 3}}]',
    '{"name": "submit"}',
    "\x00\ud800",
)


def _junk(oracle: list[Any], seed: int) -> list[Any]:
    """Unparsable and invalid actions mixed with pieces of the oracle's calls, seeded."""
    rng = random.Random(f"junk/{seed}")
    actions: list[Any] = []
    for _ in range(JUNK_STEPS):
        kind = rng.randrange(4)
        if kind == 0:
            actions.append(rng.choice(_JUNK))
        elif kind == 1:
            call = rng.choice(oracle)
            text = _action_text([call])
            cut = rng.randrange(1, len(text))
            actions.append(text[:cut])  # a call cut short
        elif kind == 2:
            call = rng.choice(oracle[:-1] or oracle)
            actions.append(ToolCall(call.name, {**call.arguments, "extra": rng.random()}))
        else:
            call = rng.choice(oracle[:-1] or oracle)
            actions.append(_action_text([call, ToolCall("no_such_tool", {})]))
    return actions


def _episodes(env: gym.Env, seed: int) -> Iterator[tuple[str, Any, list[Any] | None]]:
    """``(kind, task, actions)``; actions None: the random agent, played on the observations."""
    base = env.unwrapped
    base.reset(seed=seed)
    task = base.task
    oracle = oracle_actions(env)
    yield "oracle", task, oracle
    yield "random", task, None
    yield "junk", task, _junk(oracle, seed)
    yield "probes", task, _probes(base, oracle)
    evidence = oracle[:-1][:MAX_CALLS_PER_ACTION]
    for kind, calls in (("together", evidence), ("together_reversed", evidence[::-1])):
        if len(calls) > 1:  # one action that reaches several subgoals of different tools
            yield kind, task, [_action_text(calls), oracle[-1]]
    second = other_task(base, task, seed)
    base.reset(seed=seed, options={"task": second})
    ctx = AttackContext(base, task, oracle, list(base.make_oracle().plan(second)), seed)
    attacks, _ = hack_matrix(env)
    for attack in attacks:
        actions = attack.build(ctx)
        if actions is not None:
            yield f"attack:{attack.name}", task, list(actions)


def _play(
    env: gym.Env, ref: Reference, seed: int, task: Any, actions: list[Any] | None, *more: Reference
) -> Any:
    """Play one episode; yield each step's subgoal info and the reference's for the same turn
    (and those of ``more`` references, which must agree with it)."""
    turns = len(actions) if actions is not None else RANDOM_STEPS
    obs, info = env.reset(seed=seed, options={"task": task, "max_turns": max(1, turns)})
    for r in (ref, *more):
        r.reset()
    agent = RandomAgent(seed) if actions is None else None
    if agent is not None:
        agent.reset(seed)
    for i in range(turns):
        action = agent.act(obs, info) if agent is not None else actions[i]
        obs, reward, terminated, truncated, info = env.step(action)
        expected = ref.step()
        for r in more:
            assert r.step() == expected, (getattr(task, "task_id", "?"), i)
        yield (obs, reward, terminated, truncated, info), expected
        if terminated or truncated:
            return


def _subgoal_part(info: dict[str, Any]) -> dict[str, Any]:
    return {k: info[k] for k in ("subgoals", "subgoal_rewards")}


def trajectory_digest(env_id: str, difficulty: str = "easy") -> tuple[str, int, int]:
    """A digest of every step's observation, reward, ends and subgoal info over the episodes of
    this test (seeds 0-2), the steps played and the subgoals reached: recorded before a change
    to the subgoal mechanism and compared after it."""
    digest = hashlib.sha256()
    env = gym.make(env_id, split="test", difficulty=difficulty)
    ref = Reference(env)
    steps = reached = 0
    for seed in SEEDS:
        for kind, task, actions in _episodes(env, seed):
            for (obs, reward, terminated, truncated, info), _ in _play(
                env, ref, seed, task, actions
            ):
                part = json.dumps(_subgoal_part(info))
                digest.update(f"{kind}|{obs}|{reward!r}|{terminated}|{truncated}|{part}".encode())
                steps += 1
                reached += len(info["subgoals"]["reached"])
    env.close()
    return digest.hexdigest(), steps, reached


@pytest.mark.parametrize(("env_id", "difficulty"), CASES)
def test_subgoals_asked_by_their_tools_match_asking_every_subgoal_every_turn(
    env_id: str, difficulty: str
) -> None:
    env = gym.make(env_id, split="test", difficulty=difficulty)
    ref, derived = Reference(env), Reference(env, derived=True)
    reached = 0
    for seed in SEEDS:
        for kind, task, actions in _episodes(env, seed):
            played = _play(env, ref, seed, task, actions, derived)
            for i, ((*_, info), expected) in enumerate(played):
                got = _subgoal_part(info)
                assert json.dumps(got) == json.dumps(expected), (env_id, difficulty, seed, kind, i)
                reached += len(got["subgoals"]["reached"])
    env.close()
    assert reached > 0  # the episodes reach subgoals, so the comparison means something
