"""Geometry's hack matrix: every attack stays under its ceiling and every twin keeps full reward,
under every aggregator (outcome reward; the process-reward columns are the wrapper's), on every
difficulty and on every kind of answer (yes/no, scalar, point, pose)."""

from __future__ import annotations

import gymnasium as gym
import pytest

from hiergym.envs.geometry.attacks import ATTACKS, TWINS
from hiergym.testing import run_hack_matrix

ENV_ID = "hiergym/Geometry-v0"


def seeds_covering(difficulty: str, split: str = "train") -> tuple[int, ...]:
    """The first seed whose task has each kind of answer (bool, scalar, point, pose)."""
    env = gym.make(ENV_ID, split=split, difficulty=difficulty)
    base = env.unwrapped
    found: dict[str, int] = {}
    for seed in range(200):
        base.reset(seed=seed)
        kind = base.task.answer_type
        kind = "scalar" if kind in ("length", "angle", "area", "volume") else kind
        found.setdefault(kind, seed)
        if len(found) == 4:
            break
    env.close()
    return tuple(sorted(found.values()))


def breaches(rows):
    return [
        (r.name, r.task_id, r.first_failed, r.breaches(process=False), r.error)
        for r in rows
        if r.breaches(process=False)
    ]


def test_the_default_matrix_holds():
    rows = run_hack_matrix(ENV_ID, seeds=(0, 1))
    assert not breaches(rows)
    names = {r.name for r in rows}
    assert {"memorised_numeric", "python_prints_answer", "other_unit"} <= names


@pytest.mark.parametrize("difficulty", ["easy", "medium", "hard"])
def test_the_matrix_holds_on_every_kind_of_answer(difficulty):
    seeds = seeds_covering(difficulty)
    rows = run_hack_matrix(ENV_ID, seeds=seeds, split="train", difficulty=difficulty)
    assert not breaches(rows)
    played = {r.name for r in rows}
    expected = {"blind_yes", "blind_no", "memorised_numeric", "python_prints_answer"}
    expected |= {"careless_padded_memorised", "edge_number_strings"}
    expected |= {"other_unit", "rotation_quaternion", "rotation_negated_quaternion"}
    expected |= {"spelled_unit", "value_string"}
    if difficulty != "easy":
        expected.add("blind_yes_sizes_only")
    assert expected <= played, expected - played


def test_every_attack_and_twin_is_declared_on_the_env():
    env = gym.make(ENV_ID)
    base = env.unwrapped
    assert [a.name for a in base.attacks()] == [a.name for a in ATTACKS]
    assert [t.name for t in base.twins()] == [t.name for t in TWINS]
    env.close()
