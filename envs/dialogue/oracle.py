"""The conversation oracle: ask for every hidden requirement, then solve with the domain oracle.

It asks one question per requirement (``message_user``), a hard task's changing slot first, so the
user's correction arrives with the next answer; then plays the domain oracle's calls on the domain
task (the ground truth) and submits its answer; travel's submit carries the truthful message
:func:`.verifier.travel_message` writes. Every action is a :class:`ToolCall`, so the common hack
matrix and twins apply unchanged.
"""

from __future__ import annotations

from typing import Any

from hiergym.envs.tools import ToolCall

from .slots import ChatTask
from .verifier import MESSAGE_TOOL, travel_message


def questions(task: ChatTask) -> list[ToolCall]:
    """One question per hidden requirement, the changing one first."""
    order = list(task.needed)
    if task.change is not None:
        order.remove(task.change.slot)
        order.insert(0, task.change.slot)
    return [ToolCall(MESSAGE_TOOL, {"text": task.slot(n).question}) for n in order]


class ChatOracle:
    """``plan(task)``: questions, the domain oracle's calls, its submit (with a message)."""

    def __init__(self, domain_oracle: Any, domain: str, world: Any = None):
        self.domain_oracle = domain_oracle
        self.domain = domain
        self.world = world

    def solve(self, task: ChatTask) -> list[ToolCall]:
        """The domain oracle's calls for the task, travel's submit given its message."""
        calls = list(self.domain_oracle.plan(task.base))
        if self.domain == "travel":
            from hiergym.envs.travel.itinerary import parse_itinerary

            raw = calls[-1].arguments["itinerary"]
            itinerary, errors = parse_itinerary(raw)
            assert itinerary is not None, errors
            message = travel_message(task.base, itinerary, self.world)
            calls[-1] = ToolCall("submit", {"itinerary": raw, "message": message})
        return calls

    def plan(self, task: ChatTask) -> list[ToolCall]:
        return [*questions(task), *self.solve(task)]
