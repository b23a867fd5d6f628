"""rm-bench's per-env breakdown of the per-level balanced accuracy: levels of the same name are
pooled across envs in ``per_level_balanced_accuracy``; ``per_env_level_balanced_accuracy`` keeps
each env's failures against its own positives."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiergym.benchmarks.rmbench import evaluate, load_judge
from hiergym.benchmarks.rmbench.metrics import balanced_by_level, format_table


def _row(env: str, task: str, first_failed: str | None) -> dict:
    return {
        "env_id": env,
        "task_id": task,
        "labels": {"accepted": first_failed is None, "first_failed": first_failed},
    }


def test_pooling_blends_two_envs_that_the_breakdown_keeps_apart() -> None:
    # env A: 2 positives, 2 format failures, all judged right. env B: 2 positives accepted,
    # 2 format failures, both accepted too (the judge misses B's format failures).
    rows = {
        "a1": _row("A", "ta1", None),
        "a2": _row("A", "ta2", None),
        "a3": _row("A", "ta1", "format"),
        "a4": _row("A", "ta2", "format"),
        "b1": _row("B", "tb1", None),
        "b2": _row("B", "tb2", None),
        "b3": _row("B", "tb1", "format"),
        "b4": _row("B", "tb2", "format"),
    }
    accepted_rows = {"a1", "a2", "b1", "b2", "b3", "b4"}

    def accepted(rid: str) -> bool:
        return rid in accepted_rows

    ci = {"n_boot": 20, "seed": 0}
    pooled = balanced_by_level(rows, accepted, ci)
    # positives 4/4 accepted, format failures 2/4 rejected: 0.5 * (1 + 0.5)
    assert pooled["format"]["value"] == pytest.approx(0.75)
    per_env = {
        env: balanced_by_level({k: r for k, r in rows.items() if r["env_id"] == env}, accepted, ci)
        for env in ("A", "B")
    }
    assert per_env["A"]["format"]["value"] == pytest.approx(1.0)  # 0.5 * (2/2 + 2/2)
    assert per_env["B"]["format"]["value"] == pytest.approx(0.5)  # 0.5 * (2/2 + 0/2)
    assert per_env["A"]["format"]["n"] == 4


def test_a_level_without_positives_or_failures_is_undefined() -> None:
    rows = {"x": _row("A", "t", "format"), "y": _row("A", "u", "format")}
    out = balanced_by_level(rows, lambda rid: False, {"n_boot": 10, "seed": 0})
    assert out["format"]["value"] is None


def test_evaluate_reports_every_env_and_its_levels(rmbench_dir: Path) -> None:
    m = evaluate(rmbench_dir, load_judge("verifier"), n_boot=20)
    per_env = m["per_env_level_balanced_accuracy"]
    assert set(per_env) == {"hiergym/Shopping-v0", "hiergym/Geometry-v0"}
    for env, levels in per_env.items():
        assert levels, env
        assert all(v == 1.0 for v in levels.values()), (env, levels)
        assert set(m["intervals"]["per_env_level_balanced_accuracy"][env]) == set(levels)
    # every pooled level is some env's level, and each env's levels are among the pooled ones
    pooled = set(m["per_level_balanced_accuracy"])
    assert set().union(*(set(v) for v in per_env.values())) == pooled
    table = format_table(m)
    assert "balanced accuracy per env and level:" in table
    assert "Geometry-v0 grounding" in table
