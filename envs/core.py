"""The tool-env core: ToolEnv, its trajectory, and the task set every domain serves from.

One episode: ``reset(seed)`` picks a task as a pure function of (split, difficulty, seed) and returns
its prompt; each ``step(action)`` parses the agent's text into tool calls, runs them through the
sandbox, records a :class:`Turn` and returns the tool results as the next observation. The domain's
``submit`` tool ends the episode (``terminated``), running out of turns truncates it; both run the
verifier, whose :class:`~hiergym.rewards.levels.Verdict` lands in ``info["verdict"]``.

A domain subclasses :class:`ToolEnv` and only wires its parts (``make_*`` hooks); rules live in the
domain's tools.py and verifier.py.
"""

from __future__ import annotations

import copy
import re
import string
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from hiergym.errors import SandboxError, TaskError, ToolError, did_you_mean
from hiergym.rewards.levels import Finding, HierarchicalVerifier, Verdict

from .evidence import read_before_submit
from .sandbox import LiveBackend, Mode, Sandbox
from .spaces import ObservationText
from .tools import (
    MAX_ACTION_CHARS,
    ActionParseError,
    Toolbox,
    ToolCall,
    ToolResult,
    action_repr,
    error_result,
    frozen_slots,
    mutable_twin,
    parse_action,
    prose_of,
    render_result,
    render_text,
)

CHARSET = string.printable
"""Observation and action characters: printable ASCII with whitespace (Text's default has no space).
Anything else in an observation is escaped (``\\u00e9``), so observations always lie in the space."""
MAX_OBSERVATION_CHARS = 100_000
_CONTROL = {c: "?" for c in range(32) if chr(c) not in "\t\n\r\x0b\x0c"} | {127: "?"}
_HAS_CONTROL = re.compile("[" + "".join(re.escape(chr(c)) for c in _CONTROL) + "]")


def to_observation(text: str) -> str:
    """Escape characters outside :data:`CHARSET` and cap the length."""
    if not text.isascii():
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    if _HAS_CONTROL.search(text) is not None:  # one C scan; translating is the rare case
        text = text.translate(_CONTROL)
    if len(text) > MAX_OBSERVATION_CHARS:
        text = text[: MAX_OBSERVATION_CHARS - 40] + "... [observation truncated]"
    return text


def _is_json_rendered(result: ToolResult) -> bool:
    """A successful result whose content is ``json.dumps`` of its data (ensure_ascii: printable
    ASCII, control characters escaped) within MAX_RESULT_CHARS: already an observation, which
    :func:`to_observation` would return unchanged (eight of them stay under the length cap)."""
    data = result.data
    return result.ok and data is not None and not isinstance(data, str)


# --------------------------------------------------------------------------------------------
# Tasks


class Task(Protocol):
    task_id: str
    split: str
    difficulty: str


class TaskSet:
    """The tasks of one (split, difficulty), served by index from a seeded RNG."""

    def __init__(self, tasks: Sequence[Any], split: str, difficulty: str):
        if not tasks:
            raise TaskError(f"no tasks for split={split!r}, difficulty={difficulty!r}")
        self.tasks = list(tasks)
        self.split = split
        self.difficulty = difficulty
        self._by_id = {t.task_id: t for t in self.tasks}

    def __len__(self) -> int:
        return len(self.tasks)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.tasks)

    def sample(self, rng: np.random.Generator) -> Any:
        return self.tasks[int(rng.integers(len(self.tasks)))]

    def get(self, task_id: str) -> Any:
        try:
            return self._by_id[task_id]
        except KeyError:
            raise TaskError(
                f"no task {task_id!r} in split={self.split!r}, difficulty={self.difficulty!r}"
                f"{did_you_mean(task_id, self._by_id)}"
            ) from None


TASKS_TABLE_SQL = (
    "CREATE TABLE tasks (task_id TEXT PRIMARY KEY, split TEXT NOT NULL, difficulty TEXT NOT NULL, "
    "payload TEXT NOT NULL); CREATE INDEX tasks_by_split ON tasks (split, difficulty);"
)
"""The table a domain's data builder stores its generated tasks in (one JSON payload per task)."""

_TASK_SETS: dict[tuple[str, str, str], TaskSet] = {}


def load_task_table(
    db: Any, cache_key: str, split: str, difficulty: str, parse: Callable[[str], Any]
) -> TaskSet:
    """The tasks of one (split, difficulty) from a sandbox's ``tasks`` table, parsed once per process."""
    key = (cache_key, split, difficulty)
    if key not in _TASK_SETS:
        rows = db.execute(
            "SELECT payload FROM tasks WHERE split = ? AND difficulty = ? ORDER BY task_id",
            (split, difficulty),
        ).fetchall()
        _TASK_SETS[key] = TaskSet([parse(r[0]) for r in rows], split, difficulty)
    return _TASK_SETS[key]


def check_choice(kind: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise TaskError(
            f"unknown {kind} {value!r}{did_you_mean(value, choices)}; expected one of {list(choices)}"
        )
    return value


# --------------------------------------------------------------------------------------------
# Trajectory


@frozen_slots
@dataclass(frozen=True, slots=True)
class Turn:
    """One agent action and what the env answered to it."""

    index: int
    action: str
    calls: tuple[ToolCall, ...]
    results: tuple[ToolResult, ...]

    @property
    def errors(self) -> tuple[ToolResult, ...]:
        return tuple(r for r in self.results if not r.ok)


_MutableTurn = mutable_twin(Turn)


def _made_turn(
    index: int, action: str, calls: tuple[ToolCall, ...], results: tuple[ToolResult, ...]
) -> Turn:
    """``Turn(index, action, calls, results)`` without the frozen dataclass's ``__init__`` (see
    :func:`hiergym.envs.tools.mutable_twin`)."""
    turn = object.__new__(_MutableTurn)
    turn.index = index
    turn.action = action
    turn.calls = calls
    turn.results = results
    turn.__class__ = Turn
    return turn


@dataclass
class Trajectory:
    """Everything that happened in one episode; verifiers read nothing else."""

    task: Any
    turns: list[Turn] = field(default_factory=list)
    submission: ToolCall | None = None
    end: str | None = None  # "submitted" | "max_turns"

    def results(self) -> Iterator[tuple[Turn, ToolResult]]:
        for turn in self.turns:
            for r in turn.results:
                yield turn, r

    def ok_results(self, tool: str | None = None) -> Iterator[ToolResult]:
        """Successful results the agent received, optionally of one tool only."""
        for _, r in self.results():
            if r.ok and (tool is None or r.name == tool):
                yield r

    @property
    def n_calls(self) -> int:
        """Every call the agent attempted, valid or not (a parse failure counts as one)."""
        return sum(len(t.results) for t in self.turns)

    @property
    def n_invalid(self) -> int:
        return sum(len(t.errors) for t in self.turns)

    def copy(self) -> Trajectory:
        return Trajectory(self.task, list(self.turns), self.submission, self.end)


def missing_submission(trajectory: Trajectory) -> Finding:
    """The format-level finding for an episode that ended without a valid submit call."""
    parse_errors = sum(r.error == "parse_error" for _, r in trajectory.results())
    detail = f" ({parse_errors} unparsable actions)" if parse_errors else ""
    return Finding(
        "no_submission", f"the episode ended ({trajectory.end}) without a valid submit call{detail}"
    )


@dataclass(frozen=True)
class Subgoal:
    """A milestone on the way to the answer (HiPER / ArCHer subgoal boundaries): ``reached(turn,
    trajectory, task)`` says whether ``turn`` (the latest, already in ``trajectory``) completes
    it. Each subgoal counts once per episode, at the first turn that reaches it, so repeating the
    work never reaches it again. The env reports them in ``info``; nothing pays them unless a
    wrapper chooses to (``weight`` is the reward such a wrapper would pay).

    ``tools``: the tools whose successful results can complete it (a turn of searches cannot open
    a product page). The env asks ``reached`` only on turns holding a successful result of one
    of them, so the subgoal promises that, on any other turn, ``reached`` would say False given
    that it said False on every earlier one. ``None`` (the default): asked on every turn.

    ``hit``: set by :meth:`of_results` for a subgoal that one result decides."""

    name: str
    reached: Callable[[Any, Any, Any], bool]
    weight: float = 1.0
    description: str = ""
    tools: frozenset[str] | None = None
    hit: Callable[[ToolResult, Any], bool] | None = None

    def __post_init__(self) -> None:
        if self.tools is not None and not isinstance(self.tools, frozenset):
            if isinstance(self.tools, str):
                raise TypeError(f"Subgoal {self.name!r}: tools is a set of tool names, not a str")
            object.__setattr__(self, "tools", frozenset(self.tools))
        if self.hit is not None and not self.tools:
            raise ValueError(f"Subgoal {self.name!r}: a hit rule needs the tools it reads")

    @classmethod
    def of_results(
        cls,
        name: str,
        tools: Iterable[str],
        hit: Callable[[ToolResult, Any], bool],
        weight: float = 1.0,
        description: str = "",
    ) -> Subgoal:
        """A subgoal reached by a turn one of whose successful results of ``tools``, received
        before the submitting action (:func:`~hiergym.envs.evidence.read_before_submit`),
        passes ``hit(result, task)``. The env applies that rule itself, looking at the turn once
        for all such subgoals; ``reached`` says the same for any other caller."""
        names = frozenset(tools)

        def reached(turn: Any, trajectory: Any, task: Any) -> bool:
            if not read_before_submit(turn, trajectory):
                return False
            return any(r.ok and r.name in names and hit(r, task) for r in turn.results)

        return cls(name, reached, weight, description, names, hit)


class SubgoalIndex:
    """An episode's subgoals indexed by the tools that can complete them (:attr:`Subgoal.tools`):
    :meth:`asked` gives, in the subgoals' order, those a turn can reach, so a turn with no
    successful call of a subgoal's tools costs a dict lookup, not a call of its check."""

    __slots__ = ("goals", "every", "by_tool")

    def __init__(self, goals: Sequence[Subgoal]):
        self.goals = tuple(goals)
        self.every = tuple(g for g in self.goals if g.tools is None)
        names = {t for g in self.goals if g.tools is not None for t in g.tools}
        self.by_tool = {
            t: tuple(g for g in self.goals if g.tools is None or t in g.tools) for t in names
        }

    def asked(self, turn: Turn) -> tuple[Subgoal, ...]:
        # An ok result always carries its call's name (ToolEnv._play makes it from the call).
        by_tool = self.by_tool
        hit = {r.name for r in turn.results if r.ok and r.name in by_tool}
        if not hit:
            return self.every
        if len(hit) == 1:
            return by_tool[hit.pop()]
        return tuple(g for g in self.goals if g.tools is None or not g.tools.isdisjoint(hit))


@dataclass
class EpisodeState:
    """What a tool sees: the sandbox, the task, and per-episode mutable ``memory`` (a cart, say)."""

    sandbox: Sandbox
    task: Any
    memory: dict[str, Any] = field(default_factory=dict)

    @property
    def db(self) -> Any:
        return self.sandbox.db


# --------------------------------------------------------------------------------------------
# The env


def fork_env(env: gym.Env) -> gym.Env:
    """An independent copy of a *wrapped* env at the same step, wrappers included.

    ``env.unwrapped.fork()`` copies only the ToolEnv; a ``process_reward=True`` env forked that
    way would lose its ProcessReward (and its per-episode state). Here every wrapper layer is
    copied too, with its mutable per-episode state (dicts, lists, sets) copied, not shared.
    """
    if not isinstance(env, gym.Wrapper):
        if not isinstance(env, ToolEnv):
            raise TypeError(f"fork_env needs a hiergym env, got {type(env).__name__}")
        return env.fork()
    inner = fork_env(env.env)
    clone = copy.copy(env)
    for name, value in vars(env).items():
        if isinstance(value, dict | list | set):
            setattr(clone, name, copy.copy(value))
    clone.env = inner
    return clone


class ToolEnv(gym.Env[str, str]):
    """A Gymnasium env over a domain's tools, tasks and hierarchical verifier.

    Subclasses set :attr:`domain` and implement the ``make_*`` hooks and :meth:`render_prompt`.

    ``info`` after ``reset``: ``task_id``, ``turn``, ``tools`` (OpenAI function
    schemas) and the chat so far, ``messages`` (system prompt and task), also as ``new_messages``.
    After each ``step``: ``new_messages`` holds only the messages that step added (the agent's
    action and the tool results), so what crosses process boundaries stays constant per step;
    ``results`` the step's ToolResults; and, on the final step, ``messages`` (the whole chat) and
    ``verdict``. The whole chat is always at ``env.unwrapped.messages``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["ansi", "human"]}
    domain: ClassVar[str] = ""
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")
    difficulties: ClassVar[tuple[str, ...]] = ("easy", "medium", "hard")
    default_max_turns: ClassVar[int] = 30

    def __init__(
        self,
        split: str = "train",
        difficulty: str = "easy",
        *,
        max_turns: int | None = None,
        mode: Mode = "replay",
        backend: LiveBackend | None = None,
        aggregate: Any = "gated",
        aggregate_params: dict[str, Any] | None = None,
        render_mode: str | None = None,
    ):
        self.split = check_choice("split", split, self.splits)
        self.difficulty = check_choice("difficulty", difficulty, self.difficulties)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']}, got {render_mode!r}"
            )
        self.render_mode = render_mode
        self.max_turns = self.default_max_turns if max_turns is None else int(max_turns)
        if self.max_turns < 1:
            raise ValueError(f"max_turns must be at least 1, got {max_turns}")
        self.sandbox = self.make_sandbox(mode, backend)
        self.toolbox: Toolbox = self.make_toolbox()
        self.tasks: TaskSet = self.make_tasks(self.split, self.difficulty)
        self.verifier: HierarchicalVerifier = self.make_verifier(
            aggregate, **(aggregate_params or {})
        )
        self.observation_space = ObservationText(max_length=MAX_OBSERVATION_CHARS, charset=CHARSET)
        self.action_space = spaces.Text(max_length=MAX_ACTION_CHARS, charset=CHARSET)
        self.task: Any = None
        self.state: EpisodeState | None = None
        self.trajectory: Trajectory | None = None
        self.verdict: Verdict | None = None
        self._messages: list[dict[str, Any]] = []
        self._subgoal_list: list[Subgoal] = []
        self._subgoal_index = SubgoalIndex(())
        self._subgoals_done: dict[str, int] = {}
        self._last_obs = ""
        self._episode_max_turns = self.max_turns

    # ---- hooks a domain implements ------------------------------------------------------

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        raise NotImplementedError

    def make_toolbox(self) -> Toolbox:
        raise NotImplementedError

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        raise NotImplementedError

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        raise NotImplementedError

    def render_prompt(self, task: Any) -> str:
        raise NotImplementedError

    def system_prompt(self) -> str:
        return (
            f"You are an agent in the hiergym {self.domain} environment. Act only through tool calls: "
            'reply with one JSON object {"name": "<tool>", "arguments": {...}} or '
            "<tool_call>{...}</tool_call> blocks. Finish by calling submit."
        )

    @classmethod
    def missing_data(cls) -> str | None:
        """Why ``gym.make(id)`` with default arguments cannot work on this machine (data the user
        must supply is absent), or ``None``. Benchmarks and conformance tests skip such ids."""
        return None

    def make_oracle(self) -> Any:
        """A solver with ``plan(task) -> list[ToolCall]`` that reaches reward 1.0."""
        raise NotImplementedError

    def mutants(self) -> list[Any]:
        """Mutated oracle solutions and the level each must fail at (see hiergym.testing)."""
        return []

    def attacks(self) -> list[Any]:
        """The domain's own attacks for the hack matrix (:class:`hiergym.testing.Attack`), added to
        the common ones; one with a common attack's name replaces it."""
        return []

    def twins(self) -> list[Any]:
        """The domain's harmless twins of the oracle's answer (:class:`hiergym.testing.Twin`)."""
        return []

    def subgoals(self) -> list[Subgoal]:
        """The domain's subgoal boundaries (:class:`Subgoal`): when the env has any, each step's
        ``info["subgoals"]`` holds ``reached`` (the names this turn completed), ``done`` (name ->
        the turn that first completed it) and ``total``, and ``info["subgoal_rewards"]`` the
        weights of the subgoals this turn completed. Called at every ``reset``, once the task is
        drawn (``self.task``), so they may be per episode: Travel has one per day of the trip,
        Geometry one per measurement the task needs; a fork keeps its episode's list."""
        return []

    def turn_checks(self) -> list[Any]:
        """Extra per-turn checks for :class:`~hiergym.rewards.wrappers.ProcessReward`."""
        return []

    # ---- gymnasium API ------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        options = options or {}
        if "task" in options:
            task = options["task"]
        elif "task_id" in options:
            task = self.tasks.get(str(options["task_id"]))
        else:
            task = self.tasks.sample(self.np_random)
        self.task = task
        self._episode_max_turns = int(options.get("max_turns", self.max_turns))
        self.state = EpisodeState(self.sandbox, task)
        self.trajectory = Trajectory(task)
        self.verdict = None
        self._subgoal_list = self.subgoals()
        self._subgoal_index = SubgoalIndex(self._subgoal_list)
        self._subgoals_done: dict[str, int] = {}
        prompt = to_observation(self.render_prompt(task))
        self._messages = [
            {"role": "system", "content": self.system_prompt()},
            {"role": "user", "content": prompt},
        ]
        self._last_obs = prompt
        info = self._info()
        info["messages"] = list(self._messages)
        info["new_messages"] = list(self._messages)
        return prompt, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        if self.trajectory is None:
            raise gym.error.ResetNeeded("call reset() before step()")
        if self.trajectory.end is not None:
            obs = "error: the episode is over; call reset() to start a new one"
            info = self._info()
            info.pop("verdict", None)  # the verdict was paid once, on the final step
            return (
                obs,
                0.0,
                self.trajectory.end == "submitted",
                self.trajectory.end == "max_turns",
                info,
            )
        trajectory = self.trajectory
        turn = self._play(action)
        trajectory.turns.append(turn)
        reached = self._reach_subgoals(turn)
        messages = self._messages
        known = len(messages)
        self._record_messages(action, turn)
        results = turn.results
        obs = self._last_obs = self._observation(turn)
        terminated = trajectory.submission is not None
        truncated = not terminated and len(trajectory.turns) >= self._episode_max_turns
        reward = 0.0
        if terminated or truncated:
            trajectory.end = "submitted" if terminated else "max_turns"
            self.verdict = self.verifier.verify(trajectory, self.task)
            reward = self.verdict.reward
            info = self._info()
            info["results"] = results
            info["new_messages"] = messages[known:]
        else:  # what _info() gives before a verdict, in one literal (the step's hot path)
            info = {
                "task_id": getattr(self.task, "task_id", None),
                "turn": len(trajectory.turns),
                "tools": self.toolbox.schemas(),
                "results": results,
                "new_messages": messages[known:],
            }
        if self._subgoal_list:
            info["subgoals"] = {
                "reached": [g.name for g in reached] if reached else [],
                "done": self._subgoals_done.copy(),
                "total": len(self._subgoal_list),
            }
            info["subgoal_rewards"] = {g.name: float(g.weight) for g in reached} if reached else {}
        if terminated or truncated:
            info["messages"] = list(messages)
        if self.render_mode == "human":
            print(self.render())
        return obs, reward, terminated, truncated, info

    def _reach_subgoals(self, turn: Turn) -> Sequence[Subgoal]:
        """The subgoals ``turn`` (the one just appended to the trajectory) completes, marked done;
        only those its calls can reach are asked (:class:`SubgoalIndex`)."""
        index = self._subgoal_index
        results = turn.results
        one = None  # the turn's only result, ok and of a subgoal's tools: every hit rule reads it
        if len(results) == 1:  # the common turn, one call: SubgoalIndex.asked, without the call
            r = results[0]
            asked = index.by_tool.get(r.name) if r.ok else None
            if asked is None:
                asked = index.every
            else:
                one = r
        else:
            asked = index.asked(turn)
        reached: list[Subgoal] | None = None  # made only when one is (most turns reach none)
        done = self._subgoals_done
        trajectory, task = self.trajectory, self.task
        # read_before_submit(turn, trajectory) for the turn just appended: its results count
        # unless it submitted
        read = trajectory.submission is None
        for goal in asked:
            if goal.name in done:
                continue
            hit = goal.hit
            if hit is None:
                if not goal.reached(turn, trajectory, task):
                    continue
            else:  # Subgoal.of_results's rule, without a call of its reached per subgoal
                if not read:
                    continue
                if one is not None:  # asked by its name, so of this goal's tools
                    if not hit(one, task):
                        continue
                else:
                    tools = goal.tools
                    for r in results:
                        if r.ok and r.name in tools and hit(r, task):
                            break
                    else:
                        continue
            done[goal.name] = turn.index
            if reached is None:
                reached = []
            reached.append(goal)
        return reached or ()

    def render(self) -> str | None:
        if self.render_mode is None:
            return None
        lines = [
            f"[{self.spec.id if self.spec else self.domain}] task {getattr(self.task, 'task_id', '?')}"
        ]
        if self.trajectory and self.trajectory.turns:
            last = self.trajectory.turns[-1]
            lines += [
                f"turn {last.index}: {c.name}({c.canonical_arguments()[:200]})" for c in last.calls
            ]
        lines.append(self._last_obs[:2000])
        if self.verdict is not None:
            lines.append(
                f"verdict: reward={self.verdict.reward:.3f} first_failed={self.verdict.first_failed}"
            )
        return "\n".join(lines)

    # ---- beyond gymnasium ---------------------------------------------------------------

    def fork(self) -> ToolEnv:
        """An independent env at the same step: shares the read-only sandbox, copies the rest."""
        clone = copy.copy(self)
        clone._np_random = copy.deepcopy(self._np_random)
        clone._messages = list(self._messages)
        clone._subgoals_done = dict(self._subgoals_done)
        if self.trajectory is not None:
            clone.trajectory = self.trajectory.copy()
        if self.state is not None:
            clone.state = EpisodeState(
                self.sandbox, self.state.task, copy.deepcopy(self.state.memory)
            )
        return clone

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The whole chat of the episode so far."""
        return list(self._messages)

    # ---- internals ----------------------------------------------------------------------

    def _info(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "task_id": getattr(self.task, "task_id", None),
            "turn": len(self.trajectory.turns) if self.trajectory else 0,
            "tools": self.toolbox.schemas(),
        }
        if self.verdict is not None:
            info["verdict"] = self.verdict
        return info

    def _play(self, action: Any) -> Turn:
        assert self.trajectory is not None
        index = len(self.trajectory.turns)
        raw = action if isinstance(action, str) else action_repr(action)
        try:  # every call has an id: a Python call without one is named call_{index}_{i}
            calls = parse_action(action, index)
        except ActionParseError as e:
            kind = "oversized" if "the cap is" in str(e) else "parse_error"
            return Turn(index, raw[:2000], (), (error_result(kind, str(e)),))
        results = []
        tools = self.toolbox.tools
        for call in calls:
            if self.trajectory.submission is not None:
                results.append(
                    error_result(
                        "after_submit", "calls after submit are ignored", call.name, call.id
                    )
                )
                continue
            result = self.toolbox.check(call) or self._run(call)
            if result.ok and tools[call.name].terminal:
                self.trajectory.submission = call
            results.append(result)
        return _made_turn(index, raw[:2000], tuple(calls), tuple(results))

    def _run(self, call: ToolCall) -> ToolResult:
        tool = self.toolbox.tools[call.name]
        state = self.state
        compute = (lambda: tool.fn(state, **call.arguments)) if tool.fn is not None else None
        try:
            if tool.scope is None:
                data, text = self.sandbox.call_text(tool, call, compute)
            else:  # a task-dependent tool: the task's scope joins the cache key
                data, text = self.sandbox.call_text(tool, call, compute, scope=tool.scope(state))
        except (ToolError, SandboxError) as e:
            return error_result("tool_error", f"{call.name}: {e}", call.name, call.id)
        except Exception as e:  # a tool bug must not kill the agent's episode; it is logged loudly
            import logging  # imported here: a crash is rare, and logging costs import hiergym time

            logging.getLogger("hiergym").exception(
                "tool %s crashed on %s", call.name, call.canonical_arguments()[:200]
            )
            return error_result(
                "tool_crash",
                f"{call.name} failed internally ({type(e).__name__})",
                call.name,
                call.id,
            )
        if text is None:
            return render_result(call, data)
        # The JSON text the sandbox keeps is the rendered content (the same json.dumps), so a
        # cached answer is shown without encoding it again; a string result is shown as is.
        return render_text(call, data, data if isinstance(data, str) else text)

    def _observation(self, turn: Turn) -> str:
        """What the agent sees of ``turn``: its results, as an observation (results whose content
        is already one are not passed through :func:`to_observation` again)."""
        results = turn.results
        if len(results) == 1:  # the common turn
            r = results[0]
            return r.content if _is_json_rendered(r) else to_observation(r.content)
        text = "\n".join(f"[{r.name or 'error'}#{i}] {r.content}" for i, r in enumerate(results))
        return text if all(_is_json_rendered(r) for r in results) else to_observation(text)

    def _record_messages(self, action: Any, turn: Turn) -> None:
        if isinstance(action, str):
            text, calls_in_text = action, True
        elif isinstance(action, dict) and isinstance(action.get("content"), str):
            # an OpenAI assistant message: its content holds the calls only without tool_calls
            text, calls_in_text = action["content"], not action.get("tool_calls")
        else:
            text, calls_in_text = "", False
        if not turn.calls:
            self._messages.append({"role": "assistant", "content": text[:2000]})
            self._messages.append({"role": "user", "content": turn.results[0].content})
            return
        if calls_in_text:  # the calls go in tool_calls, once: not also in the content
            text = prose_of(text)
        calls = turn.calls
        if len(calls) == 1:  # the common turn: the loops below for one call
            call, result = calls[0], turn.results[0]
            self._messages += (
                {"role": "assistant", "content": text[:2000], "tool_calls": [call.to_openai()]},
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "name": call.name,
                    "content": result.content,
                },
            )
            return
        self._messages.append(
            {
                "role": "assistant",
                "content": text[:2000],
                "tool_calls": [c.to_openai() for c in calls],
            }
        )
        for call, result in zip(calls, turn.results, strict=True):
            self._messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call.id,
                    "name": call.name,
                    "content": result.content,
                }
            )
