from __future__ import annotations

import itertools

import pytest

from hiergym.envs.building import Cell, prove_tasks
from hiergym.errors import TaskError


def _numbers(cell: Cell):
    """An endless, seeded-looking stream per cell: (cell name, draw number)."""
    for i in itertools.count():
        yield (cell.name, i)


def test_keeps_what_the_prover_accepts_in_order_until_each_cell_is_full():
    kept = prove_tasks(
        _numbers,
        lambda c: c if c[1] % 3 else None,  # every third draw is unsolvable
        domain="demo",
        want={"train": 3, "test": 1},
        difficulties=("easy", "hard"),
    )
    assert kept == [
        *[("train/easy", 1), ("train/easy", 2), ("train/easy", 4)],
        *[("train/hard", 1), ("train/hard", 2), ("train/hard", 4)],
        ("test/easy", 1),
        ("test/hard", 1),
    ]


def test_draws_no_candidate_after_a_cell_is_full():
    drawn = []

    def candidates(cell: Cell):
        for i in range(100):
            drawn.append(i)
            yield i

    prove_tasks(candidates, lambda c: c, domain="demo", want={"dev": 2}, difficulties=("easy",))
    assert drawn == [0, 1]  # a seeded generator's later draws (and RNG state) are untouched


def test_a_generator_sees_how_many_tasks_its_cell_has_kept():
    def candidates(cell: Cell):
        while True:
            yield f"demo-{cell.split}-{cell.difficulty}-{cell.kept:04d}"

    flips = itertools.cycle([True, False])
    kept = prove_tasks(
        candidates,
        lambda c: c if next(flips) else None,
        domain="demo",
        want={"test": 3},
        difficulties=("hard",),
    )
    assert kept == ["demo-test-hard-0000", "demo-test-hard-0001", "demo-test-hard-0002"]


def test_too_few_survivors_raise_a_task_error_naming_the_cell():
    with pytest.raises(TaskError, match=r"demo: only 2 of the 3 dev/medium tasks .*5 candidates"):
        prove_tasks(
            lambda cell: iter(range(5)),
            lambda c: c if c in (1, 3) else None,
            domain="demo",
            want={"dev": 3},
            difficulties=("medium",),
        )


def test_a_prover_that_finds_a_disagreement_stops_the_build():
    def prove(c: int) -> int:
        raise RuntimeError("the oracle's plan fails the verifier")

    with pytest.raises(RuntimeError, match="fails the verifier"):
        prove_tasks(
            lambda cell: iter(range(3)), prove, domain="d", want={"a": 1}, difficulties=("e",)
        )


def test_progress_advances_once_per_kept_task():
    bars = []

    def progress(description, total=None):
        bars.append([description, total, 0])
        return lambda n=1: bars[-1].__setitem__(2, bars[-1][2] + n)

    prove_tasks(
        lambda cell: iter(range(10)),
        lambda c: c if c % 2 else None,
        domain="demo",
        want={"train": 2, "test": 1},
        difficulties=("easy",),
        progress=progress,
    )
    assert bars == [["demo: tasks (oracle-proven)", 3, 3]]
