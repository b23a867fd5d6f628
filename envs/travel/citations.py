"""Citations: the tool responses an agent received in an episode, by the items they name.

A grounding level asks, for every item of a plan, "which earlier response showed this, and did it
say what the plan says?" (CaRR's citations). A domain says what one result lists with a
``told(result) -> (kind, {key: facts}) | None`` function, where the table is usually the
response's own rows keyed by id, so reading a response costs one small dict. :meth:`first` then
finds the earliest response of a kind that shows a key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

Told = Callable[[Any], "tuple[Hashable, dict[Any, Any]] | None"]


class Citations:
    """The responses of one trajectory, grouped by kind, in the order the agent received them."""

    def __init__(self, trajectory: Any, told: Told):
        self.by_kind: dict[Hashable, list[tuple[int, dict[Any, Any]]]] = {}
        turns = trajectory.turns
        if trajectory.submission is not None:
            # Results that came back in the submitting action were never seen before submitting.
            turns = turns[:-1]
        for turn in turns:
            for r in turn.results:
                if r.ok and isinstance(r.data, dict):
                    listed = told(r)
                    if listed is not None:
                        self.by_kind.setdefault(listed[0], []).append((turn.index, listed[1]))

    def first(self, kind: Hashable, key: Any, need: Any = None) -> tuple[int, Any] | None:
        """``(turn, facts)`` of the earliest response of ``kind`` that showed ``key`` (with a
        non-empty ``facts[need]`` when ``need`` is given), or None if none did."""
        for turn, table in self.by_kind.get(kind, ()):
            facts = table.get(key)
            if facts is not None and (need is None or facts.get(need)):
                return turn, facts
        return None
