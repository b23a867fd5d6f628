from __future__ import annotations

import json
import math

import gymnasium as gym
import pytest

from hiergym.benchmarks.bench import bench, comparable
from hiergym.benchmarks.report import pass_k, summarize
from hiergym.benchmarks.stats import bootstrap_ci
from hiergym.cli import main


def rows_of(path):
    return [json.loads(x) for x in (path / "episodes.jsonl").read_text().splitlines()]


def test_pass_k_matches_tau_bench_definitions():
    assert pass_k(4, 2, 1) == (0.5, 0.5)
    assert pass_k(4, 2, 2) == pytest.approx((1 - 1 / 6, 1 / 6))
    assert pass_k(3, 3, 3) == (1.0, 1.0) and pass_k(3, 0, 2) == (0.0, 0.0)
    with pytest.raises(ValueError):
        pass_k(2, 1, 3)


def test_wilson_intervals_use_scipy_stats_normal_quantile_exactly():
    # stats reads the quantile from scipy.special (scipy.stats' import was a second of every
    # bench's serial CPU); a report's intervals must stay bit-identical to norm.ppf's
    from scipy.stats import norm

    from hiergym.benchmarks.stats import wilson_ci

    for confidence in (0.5, 0.8, 0.9, 0.95, 0.99, 0.999):
        z = float(norm.ppf(1 - (1 - confidence) / 2))
        for p, n in ((0.0, 18), (1.0, 18), (0.37, 41), (0.5, 3)):
            denom = 1 + z * z / n
            centre = (p + z * z / (2 * n)) / denom
            half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
            want = (max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half)))
            assert wilson_ci(p, n, confidence) == want


def test_bootstrap_ci_brackets_the_mean_and_is_seeded():
    values = [0, 1, 1, 0, 1, 1, 1, 0, 1, 1]
    lo, hi = bootstrap_ci(values)
    assert lo < 0.7 < hi and (lo, hi) == bootstrap_ci(values)
    lo, hi = bootstrap_ci([1, 1, 1])
    assert hi == 1.0 and 0.3 < lo < 0.6  # three successes say little: Wilson, not [1, 1]


def test_summary_pass_hat_k_from_rows():
    def row(seed, trial, success):
        levels = [{"name": "format", "passed": True}, {"name": "product", "passed": success}]
        return {
            "env_id": "e",
            "agent": "a",
            "split": "test",
            "difficulty": "easy",
            "seed": seed,
            "trial": trial,
            "reward": float(success),
            "success": success,
            "verdict": {"levels": levels},
            "turns": 3,
            "error": None,
        }

    rows = [row(0, 0, True), row(0, 1, True), row(1, 0, True), row(1, 1, False)]
    g = summarize(rows)["groups"][0]
    assert g["success"]["mean"] == 0.75
    assert g["pass_at_k"]["2"]["mean"] == 1.0 and g["pass_hat_k"]["2"]["mean"] == 0.5
    assert g["funnel"]["format"]["mean"] == 1.0 and g["funnel"]["product"]["mean"] == 0.75


def test_smoke_suite_with_trials_writes_every_output(tmp_path):
    code = main(
        [
            "bench",
            "--agents",
            "random,oracle",
            "--envs",
            "shopping",
            "--suite",
            "smoke",
            "--trials",
            "3",
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == 0
    rows = rows_of(tmp_path)
    assert len(rows) == 2 * 3 * 3 * 3  # agents x difficulties x episodes x trials
    summary = json.loads((tmp_path / "summary.json").read_text())
    oracle = next(g for g in summary["groups"] if g["agent"] == "oracle")
    assert oracle["pass_hat_k"]["3"]["mean"] == 1.0 and oracle["pass_at_k"]["1"]["mean"] == 1.0
    assert set(oracle["funnel"]) == set(
        gym.make("hiergym/Shopping-v0").unwrapped.verifier.level_names
    )
    assert all(len(r["ci95"]) == 2 for r in oracle["funnel"].values())
    report = (tmp_path / "report.md").read_text()
    assert (
        "## Leaderboard" in report
        and "pass^3" in report
        and "funnel_hiergym_Shopping-v0.png" in report
    )
    assert (tmp_path / "funnel_hiergym_Shopping-v0.png").read_bytes()[:4] == b"\x89PNG"
    assert summary["leaderboard"][0]["agent"] == "oracle"


def test_a_crashing_episode_is_an_error_row_not_a_dead_run(tmp_path):
    summary = bench(
        ["hiergym/Shopping-v0"],
        ["oracle", "nosuchagent"],
        episodes=1,
        out=tmp_path,
        difficulties=["easy"],
        show_progress=False,
    )
    rows = rows_of(tmp_path)
    bad = next(r for r in rows if r["agent"] == "nosuchagent")
    assert bad["error"].startswith("PluginError: unknown agent") and bad["reward"] is None
    assert {g["agent"]: g["errors"] for g in summary["groups"]} == {"nosuchagent": 1, "oracle": 0}


def test_two_workers_give_the_same_rows_as_one(tmp_path):
    kwargs = {"episodes": 2, "difficulties": ["easy", "hard"], "show_progress": False}
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], out=tmp_path / "one", workers=1, **kwargs)
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], out=tmp_path / "two", workers=2, **kwargs)
    assert [comparable(r) for r in rows_of(tmp_path / "one")] == [
        comparable(r) for r in rows_of(tmp_path / "two")
    ]


def test_ray_run_matches_the_local_run(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    kwargs = {"episodes": 2, "difficulties": ["medium"], "show_progress": False}
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], out=tmp_path / "local", **kwargs)
    bench(
        ["hiergym/Shopping-v0"],
        ["random", "oracle"],
        out=tmp_path / "ray",
        ray_address="",
        **kwargs,
    )
    assert [comparable(r) for r in rows_of(tmp_path / "ray")] == [
        comparable(r) for r in rows_of(tmp_path / "local")
    ]


def test_report_rebuilds_and_compares_runs(tmp_path):
    for name in ("a", "b"):
        bench(
            ["hiergym/Shopping-v0"],
            ["oracle"],
            episodes=1,
            out=tmp_path / name,
            difficulties=["easy"],
            show_progress=False,
        )
    (tmp_path / "a" / "report.md").unlink()
    assert main(["report", str(tmp_path / "a")]) == 0
    assert (tmp_path / "a" / "report.md").exists()
    assert (
        main(["report", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "cmp")])
        == 0
    )
    agents = {
        g["agent"] for g in json.loads((tmp_path / "cmp" / "summary.json").read_text())["groups"]
    }
    assert agents == {"oracle (a)", "oracle (b)"}
    assert main(["report", str(tmp_path / "missing")]) == 2


def test_a_perfect_score_gets_an_honest_interval():
    from hiergym.benchmarks.stats import rate_ci

    lo, hi = rate_ci([1.0] * 18)
    assert hi == 1.0 and lo == pytest.approx(0.824, abs=0.002)  # Wilson, 18/18
    lo, hi = rate_ci([0.0] * 18)
    assert lo == 0.0 and hi == pytest.approx(0.176, abs=0.002)


def test_trials_of_one_task_are_not_independent_draws():
    from hiergym.benchmarks.stats import rate_ci

    # 6 tasks x 3 trials, each task all-pass or all-fail: as good as 6 draws, not 18
    values = [1.0] * 9 + [0.0] * 9
    tasks = [t for t in range(6) for _ in range(3)]
    clustered = rate_ci(values, tasks)
    naive = rate_ci(values)
    assert clustered[1] - clustered[0] > 1.4 * (naive[1] - naive[0])
    rewards = [0.1, 0.2, 0.3, 0.9, 0.8, 0.7] * 3
    lo_c, hi_c = rate_ci(rewards, [i % 6 for i in range(18)])
    lo_n, hi_n = rate_ci(rewards)
    assert lo_c <= lo_n + 1e-9 and hi_c >= hi_n - 1e-9


def test_report_of_two_runs_has_a_paired_comparison(tmp_path):
    from hiergym.benchmarks.report import paired_comparison

    def rows(rewards):
        return [
            {"env_id": "e", "split": "test", "difficulty": "easy", "seed": i, "agent": "a",
             "reward": r, "success": r == 1.0, "error": None}
            for i, r in enumerate(rewards)
        ]  # fmt: skip

    comp = paired_comparison(
        [("before", rows([0.0, 0.5, 1.0, 0.0])), ("after", rows([1.0, 0.5, 1.0, 1.0]))]
    )
    assert len(comp) == 1
    c = comp[0]
    assert c["tasks"] == 4 and c["reward_diff"]["mean"] == pytest.approx(0.5)
    lo, hi = c["reward_diff"]["ci95"]
    assert lo <= 0.5 <= hi and c["success_diff"]["mean"] == pytest.approx(0.5)


def test_the_console_tables_fit_80_columns_without_blank_lines(tmp_path):
    from rich.console import Console

    from hiergym.benchmarks.report import print_table, summarize

    rows = [
        {"env_id": f"hiergym/{env}-v0", "split": "test", "difficulty": "easy", "seed": s,
         "trial": t, "agent": agent, "reward": r, "success": r == 1.0, "error": None, "turns": 3,
         "verdict": {"levels": [{"name": n, "passed": r == 1.0} for n in
                                ("format", "feasibility", "grounding", "constraints", "quality")]}}
        for env in ("Travel", "TravelPlanner") for agent in ("oracle", "random:12345")
        for s in range(3) for t in range(3) for r in [1.0 if agent == "oracle" else 0.25]
    ]  # fmt: skip
    console = Console(width=80, record=True, force_terminal=False)
    print_table(summarize(rows), console)
    lines = console.export_text().splitlines()
    assert lines and all(len(line) <= 80 for line in lines), max(lines, key=len)
    assert all(line.strip() for line in lines)
    assert any("[" in line and "TravelPlanner-v0" in line for line in lines)  # not wrapped
