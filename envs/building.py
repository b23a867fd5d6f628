"""Build-time proving of tasks, in one place for every domain.

A domain serves only tasks its oracle has proven solvable. Proving needs the oracle (and through it
the verifier), which sit at the top of a domain's import chain::

    data -> tools -> tasks -> verifier -> oracle -> env

(a module imports only modules to its left; ``tests/envs/test_import_direction.py`` checks it). So
the files that generate tasks never import the oracle: the env, which may import everything, hands
the oracle's prover down, and this module runs it. The shape, in every built-in domain::

    # env.py (the top: wiring only)
    data.database_path(add_tasks=partial(tasks.generate_tasks, prove=oracle.prove))

    # data.py: builds the sandbox (catalog, places, scenes), then calls the ``add_tasks`` it is given
    # tasks.py: generate_tasks(conn, ..., progress, *, prove) draws candidates per cell, then
    kept = prove_tasks(candidates, partial(prove, state), domain="shopping",
                       want=TASKS_PER_SPLIT, difficulties=DIFFICULTIES, progress=progress)
    # ... and writes ``kept`` to the tasks table

    # oracle.py: prove(state, draft) -> the finished task (oracle_calls, a budget priced from the
    # oracle's plan, ...) if the oracle solves it and the verifier passes it; None to drop it

So data.py and tasks.py never import the oracle or the verifier (nor data.py the tasks), and
``data.database_path`` has no default for ``add_tasks``: only the env, which holds the prover,
opens the sandbox. A new domain follows the same shape.

``prove_tasks`` walks each cell's candidates lazily, in order, keeps those the prover accepts until
the cell has ``want`` of them, and raises :class:`~hiergym.errors.TaskError` naming the cell when
its candidates run out first. A prover that finds an oracle/verifier disagreement raises (it is a
bug, never a silently dropped task); ``None`` means only "this draw is not solvable, draw again".

Candidates come from ``candidates(cell)``, called once per cell. The :class:`Cell` it gets is live:
``cell.kept`` counts the tasks kept so far, and since the next candidate is drawn only after the
previous one is proven, a generator can read it to number its tasks (``f"...-{cell.kept:04d}"``) or
to lay out slots (Geometry: the family of task ``i`` is ``FAMILIES[i % 5]``, 200 draws per slot).
Everything is seeded by the domain, so a rebuilt sandbox has the same tasks in the same order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hiergym.errors import TaskError

from .sandbox import Progress

Candidate = TypeVar("Candidate")
Proven = TypeVar("Proven")

#: ``prove(state, candidate) -> proven task | None``: what a domain's oracle module exports.
Prover = Callable[[Any, Any], Any]


@dataclass
class Cell:
    """One (split, difficulty) of a task table while it is being proven.

    Attributes:
        split: the split ("train", "dev", "test").
        difficulty: the difficulty ("easy", "medium", "hard").
        want: how many tasks the cell needs.
        kept: tasks accepted so far (updated by :func:`prove_tasks` before the next draw).
        tried: candidates handed to the prover so far.
    """

    split: str
    difficulty: str
    want: int
    kept: int = 0
    tried: int = 0

    @property
    def name(self) -> str:
        return f"{self.split}/{self.difficulty}"


def prove_tasks(
    candidates: Callable[[Cell], Iterable[Candidate]],
    prove: Callable[[Candidate], Proven | None],
    *,
    domain: str,
    want: Mapping[str, int],
    difficulties: Sequence[str],
    progress: Progress | None = None,
) -> list[Proven]:
    """The proven tasks of every cell, cell by cell (splits in ``want``'s order, then
    ``difficulties``), each cell in the order its candidates came.

    Args:
        candidates: ``candidates(cell)`` -> the cell's candidate tasks, drawn lazily (a generator);
            no more are drawn once the cell is full.
        prove: ``prove(candidate)`` -> the finished task, or ``None`` to drop the candidate.
        domain: the domain's name, for the progress bar and errors.
        want: tasks per split, e.g. ``{"train": 240, "dev": 80, "test": 80}``.
        difficulties: the difficulties of every split.
        progress: the sandbox build's progress bar (advanced once per kept task).

    Raises:
        TaskError: a cell's candidates ran out before ``want[split]`` were proven.
    """
    cells = [Cell(s, d, n) for s, n in want.items() for d in difficulties]
    advance = (
        progress(f"{domain}: tasks (oracle-proven)", total=sum(c.want for c in cells))
        if progress is not None
        else None
    )
    kept: list[Proven] = []
    for cell in cells:
        if cell.want <= 0:
            continue
        for candidate in candidates(cell):
            cell.tried += 1
            proven = prove(candidate)
            if proven is None:
                continue
            kept.append(proven)
            cell.kept += 1
            if advance is not None:
                advance(1)
            if cell.kept == cell.want:
                break
        if cell.kept < cell.want:
            raise TaskError(
                f"{domain}: only {cell.kept} of the {cell.want} {cell.name} tasks were proven "
                f"solvable ({cell.tried} candidates tried, then the candidates ran out); expected "
                f"{cell.want}. Fix the generator's draws or the oracle, or lower the split's count."
            )
    return kept
