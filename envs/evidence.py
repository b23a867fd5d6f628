"""Evidence: what the agent saw before its submitting action, for every domain's grounding.

A grounding level asks, for every item of an answer, "which earlier response showed this, and did
it say what the answer says?" (CaRR's citations). Only results the agent received *before* the
action that submitted count: a result that came back in the submitting action itself was never
read by the agent that wrote the answer (a memorised answer plus its evidence calls in one action
is not grounded).

A domain says what one result lists with a ``told(result) -> (kind, {key: facts}) | None``
function, where the table is usually the response's own rows keyed by id, so reading a response
costs one small dict. :meth:`Evidence.first` finds the earliest response of a kind that shows a
key and remembers the turn it cited; :attr:`Evidence.cited` (pass it to ``Level.result(...,
evidence=...)``) tells process rewards which turns the answer was built on.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator
from typing import Any

Told = Callable[[Any], "tuple[Hashable, dict[Any, Any]] | None"]


def read_before_submit(turn: Any, trajectory: Any) -> bool:
    """Whether the agent had read ``turn``'s results when it submitted: False for the submitting
    action itself (its own results came back with the verdict), True for every other turn."""
    turns = trajectory.turns
    return not (trajectory.submission is not None and turns and turn is turns[-1])


def turns_before_submit(trajectory: Any) -> list[Any]:
    """The turns whose results the agent had read when it submitted (all turns if it did not)."""
    return [t for t in trajectory.turns if read_before_submit(t, trajectory)]


def seen_results(trajectory: Any, tool: str | None = None) -> Iterator[tuple[int, Any]]:
    """``(turn, result)`` for every successful result received before the submitting action,
    optionally of one tool only, in the order the agent received them."""
    for turn in turns_before_submit(trajectory):
        for r in turn.results:
            if r.ok and (tool is None or r.name == tool):
                yield turn.index, r


class Evidence:
    """The responses of one trajectory seen before submitting, grouped by kind, in order."""

    def __init__(self, trajectory: Any, told: Told):
        self.by_kind: dict[Hashable, list[tuple[int, dict[Any, Any]]]] = {}
        self.cited: set[int] = set()
        for index, r in seen_results(trajectory):
            if isinstance(r.data, dict):
                listed = told(r)
                if listed is not None:
                    self.by_kind.setdefault(listed[0], []).append((index, listed[1]))

    def first(self, kind: Hashable, key: Any, need: Any = None) -> tuple[int, Any] | None:
        """``(turn, facts)`` of the earliest response of ``kind`` that showed ``key`` (with a
        non-empty ``facts[need]`` when ``need`` is given), or None if none did. A hit is
        recorded in :attr:`cited`."""
        for turn, table in self.by_kind.get(kind, ()):
            facts = table.get(key)
            if facts is not None and (need is None or facts.get(need)):
                self.cited.add(turn)
                return turn, facts
        return None


Citations = Evidence
"""The name Travel's grounding has used since it was built."""
