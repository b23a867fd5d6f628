"""A planner's tool calls: run through the tools, recorded once each, in order.

An oracle must reach its plan through the tools, so that replaying its calls in an episode shows
the agent (and the grounding level) everything the plan relies on. :class:`CallRecorder` runs a
tool, remembers the answer, and records each distinct call once, in the order first made.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hiergym.envs.tools import ToolCall


class CallRecorder:
    def __init__(self, state: Any):
        self.state = state
        self.calls: list[ToolCall] = []
        self._answers: dict[tuple[str, str], Any] = {}

    def call(self, tool: Any, **arguments: Any) -> Any:
        """``tool``'s answer to ``arguments`` (a ToolError propagates and records nothing)."""
        call = ToolCall(tool.name, arguments)
        key = (call.name, call.canonical_arguments())
        if key not in self._answers:
            self._answers[key] = tool.fn(self.state, **arguments)
            self.calls.append(call)
        return self._answers[key]

    def pages(
        self, tool: Any, limit: int, page_size: int, **arguments: Any
    ) -> list[dict[str, Any]]:
        """The results of up to ``limit`` pages of a paged search, stopping at the last page."""
        out: list[dict[str, Any]] = []
        for page in range(1, limit + 1):
            found = self.call(tool, **arguments, page=page)
            out += found["results"]
            if page * page_size >= found["total"]:
                break
        return out


def prove(calls: list[ToolCall], state: Any, toolbox: Any, verifier: Any, task: Any) -> None:
    """Play a planner's calls (the last one submits) through the tools and verify the trajectory;
    raise unless every level passes with reward 1.0. A task is served only once this holds, so an
    oracle/verifier disagreement stops the build instead of silently dropping the task."""
    from hiergym.envs.core import Trajectory, Turn

    trajectory = Trajectory(task)
    for i, call in enumerate(calls):
        trajectory.turns.append(Turn(i, "", (call,), (toolbox.run(call, state),)))
    trajectory.submission = calls[-1]
    trajectory.end = "submitted"
    verdict = verifier.verify(trajectory, task)
    if not verdict.passed or verdict.reward < 1.0 - 1e-9:
        raise RuntimeError(
            f"the oracle's plan for {task.task_id or task} fails the verifier: {verdict.to_dict()}"
        )


class Oracle:
    """``make_oracle()``'s answer: ``plan(task)`` gives a planner's calls for the task; a served task
    the planner cannot solve is an error, since every served task must be solvable."""

    def __init__(self, sandbox: Any, planner: Callable[[Any, Any], Any]):
        self.sandbox = sandbox
        self.planner = planner

    def plan(self, task: Any) -> list[ToolCall]:
        found = self.planner(self.sandbox, task)
        if found is None:
            raise RuntimeError(
                f"the oracle cannot solve {task.task_id}; every served task must be solvable"
            )
        return found.calls
