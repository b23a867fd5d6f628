"""Citations: what tool responses told the agent during an episode, keyed by the item they name.

A grounding level asks, for every item of a plan, "which earlier response showed this, and did it
say what the plan says?" (CaRR's citations). Each domain says what one result tells with a
``told(result) -> [(key, facts), ...]`` function; :class:`Citations` indexes a trajectory with it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

Told = Callable[[Any], Iterable[tuple[tuple, Any]]]


class Citations:
    """``citations(trajectory) -> {key: (turn, facts)}``: the first telling of every item.

    What one result tells is memoized per result object (results are immutable and each belongs
    to one turn), so verifying a trajectory again, or a fork of it, costs dict updates only.
    """

    def __init__(self, told: Told, memo_size: int = 4096):
        self.told = told
        self.memo_size = memo_size
        self._memo: dict[int, tuple[Any, int, dict[tuple, tuple[int, Any]]]] = {}

    def __call__(self, trajectory: Any) -> dict[tuple, tuple[int, Any]]:
        index: dict[tuple, tuple[int, Any]] = {}
        memo = self._memo
        for turn in reversed(trajectory.turns):  # earlier tellings overwrite later ones
            t = turn.index
            for r in turn.results:
                if not r.ok or not isinstance(r.data, dict):
                    continue
                hit = memo.get(id(r))
                if hit is None or hit[0] is not r or hit[1] != t:
                    if len(memo) >= self.memo_size:
                        memo.clear()
                    hit = memo[id(r)] = (r, t, {key: (t, facts) for key, facts in self.told(r)})
                index.update(hit[2])
        return index
