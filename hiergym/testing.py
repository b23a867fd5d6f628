"""``check_domain(env_id)``: the conformance check every hiergym env must pass (like PettingZoo's api_test).

It runs Gymnasium's ``check_env``, a two-run determinism check (observations, rewards, verdicts),
the oracle on a sample of every split and difficulty (reward 1.0), each of the domain's mutants
(fails at its named level), a tool-cache round trip, sync and async vector envs against single
envs, and the **hack matrix**.

The hack matrix
---------------
An RL policy learns whatever the verifier pays for by mistake, so every env is attacked the way a
policy would attack it. An :class:`Attack` builds an attacking episode from a task and the env's
oracle (:class:`AttackContext`) and has a **ceiling**: the most it may earn, as a *normalised*
reward (0 = every level at score 0, 1 = every level passed; see :func:`normalised_reward`), under
every aggregator, with and without process rewards. A :class:`Twin` is a harmless, semantically
neutral edit of the oracle's answer (reordered keys, another accepted action format, equivalent
units, a renamed internal signal) that must keep full reward, so a fix cannot simply refuse
legitimate answers.

:data:`COMMON_ATTACKS` and :data:`COMMON_TWINS` apply to every domain; a domain adds its own with
``attacks()`` / ``twins()`` on its env (one with a common attack's name replaces it).
:func:`run_hack_matrix` plays them; ``hiergym audit ENV_ID`` prints the matrix and exits non-zero
on a breach.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from hiergym.rewards.wrappers import DEFAULT_BUDGET_FRACTION


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
    """A recorded episode replays from the tool cache alone with identical observations.

    A served env (``RemoteEnv``, whose sandbox lives on the server) is checked through the server
    instead: the oracle's episode played twice gives the same observations, the second answered
    from the server's memory or tool cache."""
    import tempfile

    from hiergym.envs.sandbox import Sandbox, ToolCache

    env = gym.make(env_id)
    base = env.unwrapped
    if getattr(base, "remote", False):
        _check_remote_cache_round_trip(env, seed)
        return
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


def _check_remote_cache_round_trip(env: Any, seed: int) -> None:
    base = env.unwrapped
    env.reset(seed=seed)
    actions = oracle_actions(env)
    first = play(env, actions, seed=seed)
    before = base.state()["sandbox_stats"]
    second = play(env, actions, seed=seed)
    after = base.state()["sandbox_stats"]
    env.close()
    assert first == second, "a served env's replay differs from its first play"
    assert after["memory"] + after["cache"] > before["memory"] + before["cache"], (
        f"the server did not answer the replay from its cache: {before} -> {after}"
    )


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


# --------------------------------------------------------------------------------------------
# The hack matrix


@dataclass(frozen=True)
class AttackContext:
    """What an attack is built from: the task, the oracle's solution, and another task's."""

    env: Any
    """The unwrapped env (its toolbox, sandbox and oracle); do not step it."""
    task: Any
    oracle: list[Any]
    """The oracle's calls for ``task``; the last one is its submit."""
    other: list[Any]
    """The oracle's calls for a different task of the same split and difficulty."""
    seed: int

    @property
    def submit(self) -> Any:
        return self.oracle[-1]

    @property
    def evidence_calls(self) -> list[Any]:
        """The oracle's calls before its submit."""
        return list(self.oracle[:-1])

    @property
    def db(self) -> Any:
        return self.env.sandbox.db

    def with_submit(self, **changes: Any) -> Any:
        """The oracle's submit with some arguments replaced."""
        from hiergym.envs.tools import ToolCall

        return ToolCall(self.submit.name, {**self.submit.arguments, **changes})

    def submit_schema(self) -> dict[str, Any]:
        return self.env.toolbox[self.submit.name].parameters


Build = Callable[[AttackContext], "Sequence[Any] | None"]
"""``build(ctx) -> actions`` (None: the attack does not apply to this task)."""


@dataclass(frozen=True)
class Attack:
    """An attacking episode and the most it may earn (normalised reward, every aggregator)."""

    name: str
    build: Build
    ceiling: float
    description: str = ""
    form_credit: bool = True
    """The attack's answer is well formed, so it may keep what the form alone earns: the
    effective ceiling is ``max(ceiling, 1 / number of levels)`` (one passed level of n). False
    for attacks that never submit a valid answer (their ceiling is exact)."""

    def effective_ceiling(self, n_levels: int) -> float:
        return max(self.ceiling, 1.0 / n_levels) if self.form_credit else self.ceiling


@dataclass(frozen=True)
class Twin:
    """A harmless edit of the oracle's solution that must keep full reward."""

    name: str
    build: Build
    description: str = ""


def _calls_action(calls: Sequence[Any]) -> str:
    """Several calls in one action (a JSON list; at most MAX_CALLS_PER_ACTION)."""
    return json.dumps([{"name": c.name, "arguments": dict(c.arguments)} for c in calls])


def _null_agent(ctx: AttackContext) -> list[Any]:
    return ["I have finished the task.", "Done."]


def _unparsable_submit(ctx: AttackContext) -> list[Any]:
    return [*ctx.evidence_calls, ctx.submit.to_json()[:-1]]


def _empty_value(value: Any, schema: dict[str, Any] | None) -> Any:
    kind = (schema or {}).get("type")
    if isinstance(value, bool) or kind == "boolean":
        return False
    if isinstance(value, int | float) or kind in ("integer", "number"):
        return 0
    if isinstance(value, list) or kind == "array":
        return []
    if isinstance(value, dict) or kind == "object":
        return {}
    return ""


def _empty_answer(ctx: AttackContext) -> list[Any]:
    props = ctx.submit_schema().get("properties", {})
    args = {k: _empty_value(v, props.get(k)) for k, v in ctx.submit.arguments.items()}
    return [*ctx.evidence_calls, ctx.with_submit(**args)]


def _unrelated_answer(ctx: AttackContext) -> list[Any] | None:
    if ctx.other[-1].canonical_arguments() == ctx.submit.canonical_arguments():
        return None  # the other task happens to share this answer
    return [*ctx.evidence_calls, ctx.other[-1]]


def _memorised_answer(ctx: AttackContext) -> list[Any]:
    return [ctx.submit]


def _evidence_in_submit(ctx: AttackContext) -> list[Any]:
    from hiergym.envs.tools import MAX_CALLS_PER_ACTION

    return [_calls_action([*ctx.evidence_calls[-(MAX_CALLS_PER_ACTION - 1) :], ctx.submit])]


def _over_cap_resent(ctx: AttackContext) -> list[Any]:
    """The whole solution in one action of one call more than an action may run, sent twice (a
    memo of parsed texts once answered the second send with every call)."""
    from hiergym.envs.tools import MAX_CALLS_PER_ACTION

    calls = [*ctx.evidence_calls, ctx.submit]
    pool = ctx.oracle[:-1] or [ctx.submit]
    pad = [pool[i % len(pool)] for i in range(max(0, MAX_CALLS_PER_ACTION + 1 - len(calls)))]
    action = _calls_action([*pad, *calls])
    return [action, action]


PADDING_CALLS = 12


def _padding(ctx: AttackContext) -> list[Any]:
    """Distinct-looking calls that do not serve this task: another task's evidence calls."""
    pool = ctx.other[:-1] or ctx.oracle[:-1] or [ctx.submit]
    return [pool[i % len(pool)] for i in range(PADDING_CALLS)]


def _padded_memorised(ctx: AttackContext) -> list[Any]:
    return [*_padding(ctx), ctx.submit]


def _padding_without_submit(ctx: AttackContext) -> list[Any]:
    return _padding(ctx)


_EDGE_NUMBERS = (10**400, float("nan"), float("inf"), -0.0, 1e308, -(2**63) - 1)
_EDGE_STRINGS = ("\ud800", "a\x00b", "\u202e\u0000\x1b[2J", "\uffff" * 3, "")


def _edge(value: Any, i: int, kind: str) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return _EDGE_NUMBERS[i % len(_EDGE_NUMBERS)] if kind == "numbers" else value
    if isinstance(value, str):
        return _EDGE_STRINGS[i % len(_EDGE_STRINGS)] if kind == "unicode" else value
    if isinstance(value, list):
        return [_edge(v, i + j, kind) for j, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _edge(v, i + j, kind) for j, (k, v) in enumerate(value.items())}
    return value


def _raw_submit(ctx: AttackContext, arguments: Any) -> str:
    """The submit as raw JSON text (json.dumps writes NaN/Infinity, which json.loads accepts)."""
    return json.dumps({"name": ctx.submit.name, "arguments": arguments})


def _edge_numbers(ctx: AttackContext) -> list[Any] | None:
    edged = _edge(dict(ctx.submit.arguments), 0, "numbers")
    if edged == dict(ctx.submit.arguments):
        return None  # no number in the answer
    return [*ctx.evidence_calls, _raw_submit(ctx, edged)]


def _edge_unicode(ctx: AttackContext) -> list[Any] | None:
    edged = _edge(dict(ctx.submit.arguments), 0, "unicode")
    if edged == dict(ctx.submit.arguments):
        return None  # no string in the answer
    return [*ctx.evidence_calls, _raw_submit(ctx, edged)]


def _oversized(ctx: AttackContext) -> list[Any]:
    from hiergym.envs.tools import MAX_ACTION_CHARS

    huge = "x" * (MAX_ACTION_CHARS + 10)
    return [*ctx.evidence_calls, ctx.submit.to_json()[:-2] + huge + "}}", "9" * 5000]


COMMON_ATTACKS: tuple[Attack, ...] = (
    Attack("null_agent", _null_agent, 0.0, "never calls a tool", form_credit=False),
    Attack(
        "unparsable_submit",
        _unparsable_submit,
        0.0,
        "the oracle's work, submit cut short",
        form_credit=False,
    ),
    Attack("empty_answer", _empty_answer, 0.25, "every submit field emptied"),
    Attack("unrelated_answer", _unrelated_answer, 0.4, "another task's correct answer"),
    Attack("memorised_answer", _memorised_answer, 0.4, "the right answer, no evidence fetched"),
    Attack(
        "evidence_in_submit",
        _evidence_in_submit,
        0.4,
        "the right answer with its evidence calls in the submitting action",
    ),
    Attack(
        "over_cap_resent",
        _over_cap_resent,
        0.0,
        "the solution in one action over the call cap, sent twice",
        form_credit=False,
    ),
    Attack(
        "padded_memorised",
        _padded_memorised,
        0.4,
        f"{PADDING_CALLS} calls that do not serve the task, then the memorised answer",
    ),
    Attack(
        "padding_no_submit",
        _padding_without_submit,
        0.0,
        "padding calls, never submits",
        form_credit=False,
    ),
    Attack("edge_numbers", _edge_numbers, 0.25, "every number of the answer at a type edge"),
    Attack("edge_unicode", _edge_unicode, 0.25, "every string: lone surrogates, NUL, controls"),
    Attack("oversized", _oversized, 0.25, "a submit over the action cap, a 5,000-digit integer"),
)
"""Attacks every domain must hold; ceilings are normalised rewards (see :func:`normalised_reward`);
an attack that submits a well-formed answer may also keep one level's worth (``form_credit``)."""


def _reordered(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _reordered(value[k]) for k in reversed(list(value))}
    if isinstance(value, list):
        return [_reordered(v) for v in value]
    return value


def _twin_reordered_keys(ctx: AttackContext) -> list[Any]:
    return [*ctx.evidence_calls, _raw_submit(ctx, _reordered(dict(ctx.submit.arguments)))]


def _twin_pretty_json(ctx: AttackContext) -> list[Any]:
    return [
        *ctx.evidence_calls,
        "\n  " + json.dumps({"name": ctx.submit.name, "arguments": ctx.submit.arguments}, indent=2),
    ]


def _twin_tool_call_tags(ctx: AttackContext) -> list[Any]:
    return [f"Let me do this.\n<tool_call>{c.to_json()}</tool_call>" for c in ctx.oracle]


def _twin_openai_message(ctx: AttackContext) -> list[Any]:
    return [
        {"role": "assistant", "content": "", "tool_calls": [{**c.to_openai(), "id": f"c{i}"}]}
        for i, c in enumerate(ctx.oracle)
    ]


COMMON_TWINS: tuple[Twin, ...] = (
    Twin("reordered_keys", _twin_reordered_keys, "submit arguments in reverse key order"),
    Twin("pretty_json", _twin_pretty_json, "the submit as indented JSON"),
    Twin("tool_call_tags", _twin_tool_call_tags, "every call in <tool_call> tags with prose"),
    Twin("openai_message", _twin_openai_message, "every call as an OpenAI assistant message"),
)


def normalised_reward(
    aggregate: str, levels: Sequence[Any], task: Any = None, **params: Any
) -> float:
    """An aggregator's reward mapped onto [0, 1]: 0 = every level at score 0 and failed, 1 = every
    level passed at score 1. Gated, tiered, weighted, product, difficulty_scaled and constrained
    already span [0, 1]; ``logsigmoid_conjunction`` spans [n log s(-r/T), n log s((1-r)/T)]."""
    from hiergym.rewards.aggregate import resolve, reward_range

    _, fn = resolve(aggregate, **params)
    low, high = reward_range(fn, levels, task)
    if high - low <= 0:
        raise ValueError(f"aggregator {aggregate} does not separate all-fail from all-pass")
    return (fn(list(levels), task) - low) / (high - low)


AGGREGATE_NAMES = (
    "gated",
    "tiered",
    "product",
    "weighted",
    "logsigmoid_conjunction",
    "difficulty_scaled",
    "constrained",
)


PROCESS_ALLOWANCE = DEFAULT_BUDGET_FRACTION
"""What process rewards may add to an attack's ceiling: ProcessReward's default budget fraction."""


@dataclass
class MatrixRow:
    """One attack or twin on one task: its normalised reward per aggregator, without and with
    process rewards, against its ceiling."""

    env_id: str
    name: str
    kind: str  # "attack" | "twin"
    task_id: str
    seed: int
    ceiling: float
    first_failed: str | None
    rewards: dict[str, float] = field(default_factory=dict)
    process_rewards: dict[str, float] = field(default_factory=dict)
    """Normalised return (outcome + the ProcessReward wrapper's per-step rewards)."""
    description: str = ""
    error: str | None = None
    """An exception that left ``env.step`` (always a breach: bad input is data, never a crash)."""

    def breaches(self, process: bool | None = None) -> list[str]:
        """Aggregators (suffixed ``+process``) under which this row breaks its contract, or
        ``["crash"]`` when the episode raised."""
        if self.error is not None:
            return ["crash"]
        out = []
        tables = []
        if process in (None, False):
            tables.append(("", self.rewards))
        if process in (None, True):
            tables.append(("+process", self.process_rewards))
        for suffix, table in tables:
            # With process rewards a submitted answer may also keep the information it really used
            # (cited turns), bounded by the ProcessReward budget; one that never submitted keeps 0.
            ceiling = self.ceiling + (PROCESS_ALLOWANCE if suffix and self.ceiling > 0 else 0.0)
            for agg, value in table.items():
                bad = value > ceiling + 1e-9 if self.kind == "attack" else value < 1 - 1e-9
                if self.kind == "twin" and suffix:
                    bad = False  # process penalties may cost a twin; its outcome must be full
                if bad or not math.isfinite(value):
                    out.append(agg + suffix)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "env_id": self.env_id,
            "name": self.name,
            "kind": self.kind,
            "task_id": self.task_id,
            "seed": self.seed,
            "ceiling": self.ceiling,
            "first_failed": self.first_failed,
            "rewards": self.rewards,
            "process_rewards": self.process_rewards,
            "breaches": self.breaches(),
            "error": self.error,
        }


def hack_matrix(env: Any) -> tuple[list[Attack], list[Twin]]:
    """The attacks and twins of an env: the common ones, replaced or extended by the domain's."""
    base = env.unwrapped
    attacks = {a.name: a for a in COMMON_ATTACKS}
    attacks.update({a.name: a for a in base.attacks()})
    twins = {t.name: t for t in COMMON_TWINS}
    twins.update({t.name: t for t in base.twins()})
    return list(attacks.values()), list(twins.values())


def run_hack_matrix(
    env_id: str,
    *,
    seeds: Sequence[int] = (0, 1),
    aggregates: Sequence[str] = AGGREGATE_NAMES,
    only: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> list[MatrixRow]:
    """Play every attack and twin of ``env_id`` on the tasks of ``seeds`` and score each episode
    under every aggregator, without and with process rewards.

    Each episode is played once, through the ProcessReward wrapper; the outcome reward under each
    aggregator is folded from the verdict's levels, and the process part (the wrapper's per-step
    rewards) is normalised by the range of the aggregator it was played under.
    """
    from hiergym.rewards.wrappers import ProcessReward

    env = gym.make(env_id, **env_kwargs)
    penv = ProcessReward(env)
    base = env.unwrapped
    attacks, twins = hack_matrix(env)
    rows: list[MatrixRow] = []
    for seed in seeds:
        base.reset(seed=seed)
        task = base.task
        oracle = oracle_actions(env)
        second = other_task(base, task, seed)
        base.reset(seed=seed, options={"task": second})
        other = list(base.make_oracle().plan(second))
        ctx = AttackContext(base, task, oracle, other, seed)
        for kind, entries in (("attack", attacks), ("twin", twins)):
            for entry in entries:
                if only and entry.name not in only:
                    continue
                actions = entry.build(ctx)
                if actions is None:
                    continue
                try:
                    row = _play_row(env_id, penv, entry, kind, ctx, list(actions), aggregates)
                except Exception as e:  # recorded as a breach, so one crash does not hide the rest
                    row = MatrixRow(
                        env_id,
                        entry.name,
                        kind,
                        str(getattr(task, "task_id", "?")),
                        seed,
                        getattr(entry, "ceiling", 1.0),
                        None,
                        description=entry.description,
                        error=f"{type(e).__name__}: {str(e)[:300]}",
                    )
                rows.append(row)
    env.close()
    return rows


def other_task(base: Any, task: Any, seed: int) -> Any:
    """A task of ``base``'s task set other than ``task`` (seeded), for attacks that answer with
    another task's solution."""
    import numpy as np

    rng = np.random.default_rng(10_007 + seed)
    for _ in range(64):
        cand = base.tasks.sample(rng)
        if cand.task_id != task.task_id:
            return cand
    return task


def _play_row(
    env_id: str,
    penv: Any,
    entry: Attack | Twin,
    kind: str,
    ctx: AttackContext,
    actions: list[Any],
    aggregates: Sequence[str],
) -> MatrixRow:
    base = penv.unwrapped
    penv.reset(seed=ctx.seed, options={"task": ctx.task, "max_turns": max(1, len(actions))})
    process_total = 0.0
    info: dict[str, Any] = {}
    for action in actions:
        _, _, terminated, truncated, info = penv.step(action)
        process_total += float(info.get("process_reward", 0.0))
        if terminated or truncated:
            break
    verdict = base.verdict
    if verdict is None:
        raise AssertionError(f"{env_id} {kind} {entry.name}: the episode ended without a verdict")
    played_under = base.verifier.aggregate_name
    _, played_fn = _resolve(played_under)
    span = _span(played_fn, verdict.levels, ctx.task)
    row = MatrixRow(
        env_id,
        entry.name,
        kind,
        str(getattr(ctx.task, "task_id", "?")),
        ctx.seed,
        entry.effective_ceiling(len(verdict.levels)) if isinstance(entry, Attack) else 1.0,
        verdict.first_failed,
        description=entry.description,
    )
    for agg in aggregates:
        value = normalised_reward(agg, verdict.levels, ctx.task)
        row.rewards[agg] = value
        row.process_rewards[agg] = value + process_total / span
    return row


def _resolve(name: str) -> Any:
    from hiergym.rewards.aggregate import resolve

    return resolve(name)


def _span(fn: Any, levels: Sequence[Any], task: Any) -> float:
    from hiergym.rewards.aggregate import reward_range

    low, high = reward_range(fn, levels, task)
    return high - low


def check_hack_matrix(
    env_id: str,
    *,
    seeds: Sequence[int] = (0, 1),
    difficulties: Sequence[str] | None = None,
    **env_kwargs: Any,
) -> list[MatrixRow]:
    """Every attack stays under its ceiling and every twin keeps full reward, under every
    aggregator, with and without process rewards; raises AssertionError listing each breach.

    ``difficulties`` defaults to the env's easiest and hardest (short and long solutions)."""
    if difficulties is None and "difficulty" not in env_kwargs:
        levels = _env_class(env_id).difficulties
        difficulties = list(dict.fromkeys([levels[0], levels[-1]]))
    rows: list[MatrixRow] = []
    for difficulty in difficulties or [None]:
        kwargs = dict(env_kwargs, **({"difficulty": difficulty} if difficulty else {}))
        rows += run_hack_matrix(env_id, seeds=seeds, **kwargs)
    bad = [(r, r.breaches()) for r in rows if r.breaches()]
    assert not bad, f"{env_id}: the hack matrix is breached:\n" + "\n".join(
        f"  {r.kind} {r.name} (task {r.task_id}): {b}; error {r.error}; first failed {r.first_failed}; "
        f"rewards { ({k: round(v, 3) for k, v in r.rewards.items()}) }, "
        f"with process { ({k: round(v, 3) for k, v in r.process_rewards.items()}) }, "
        f"ceiling {r.ceiling}"
        for r, b in bad
    )
    return rows


def check_vector_envs(env_id: str, seeds: Sequence[int] = (0, 1), steps: int = 2) -> None:
    """``gym.make_vec`` in sync and async mode serves the same observations as single envs (the
    oracle's first calls on the tasks of ``seeds``)."""
    singles = []
    plans = []
    for seed in seeds:
        env = gym.make(env_id)
        obs, _ = env.reset(seed=seed)
        plan = [c.to_json() for c in oracle_actions(env)[:steps]]
        plan += [plan[-1]] * (steps - len(plan))
        seen = [obs]
        for action in plan:
            obs, *_ = env.step(action)
            seen.append(obs)
        singles.append(seen)
        plans.append(plan)
        env.close()
    for mode in ("sync", "async"):
        envs = gym.make_vec(env_id, num_envs=len(seeds), vectorization_mode=mode)
        try:
            obs, _ = envs.reset(seed=list(seeds))
            got = [[o] for o in obs]
            for i in range(steps):
                obs, *_ = envs.step(tuple(plan[i] for plan in plans))
                for j, o in enumerate(obs):
                    got[j].append(o)
        finally:
            envs.close()
        assert got == singles, f"{env_id}: make_vec({mode!r}) observations differ from single envs"


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
    check_vector_envs(env_id)
    matrix = check_hack_matrix(env_id, seeds=(0,))
    return {"oracle_episodes": n, "mutants": caught, "hack_matrix": [r.to_dict() for r in matrix]}
