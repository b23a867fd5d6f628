from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym

from hiergym.cli import main


def test_list_shows_builtin_envs(capsys):
    assert main(["list"]) == 0
    assert "hiergym/Shopping-v0" in capsys.readouterr().out


def test_bench_writes_episodes_and_summary_with_oracle_at_one(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "bench",
            "--agents",
            "random,oracle",
            "--envs",
            "shopping",
            "--episodes",
            "2",
            "--out",
            str(out),
            "--quiet",
            "--strict",
        ]
    )
    assert code == 0
    rows = [json.loads(line) for line in (out / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 2 * 2 * 3
    assert all(r["verdict"]["levels"] for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    by_agent = {g["agent"]: g for g in summary["groups"]}
    assert (
        by_agent["oracle"]["reward"]["mean"] == 1.0 and by_agent["oracle"]["success"]["mean"] == 1.0
    )
    assert by_agent["random"]["reward"]["mean"] < 0.5
    levels = gym.make("hiergym/Shopping-v0").unwrapped.verifier.level_names
    assert set(by_agent["oracle"]["level_pass"]) == set(levels) >= {"format", "product"}
    lo, hi = by_agent["random"]["reward"]["ci95"]
    assert lo <= by_agent["random"]["reward"]["mean"] <= hi
    assert "reward [CI]" in capsys.readouterr().out


def test_bench_resume_skips_finished_episodes(tmp_path):
    out = tmp_path / "run"
    args = [
        "bench",
        "--agents",
        "oracle",
        "--envs",
        "shopping",
        "--episodes",
        "2",
        "--difficulties",
        "easy",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    lines = (out / "episodes.jsonl").read_text().splitlines()
    (out / "episodes.jsonl").write_text(lines[0] + "\n" + lines[1][:20])  # one done, one torn
    assert main([*args, "--resume"]) == 0
    rows = [json.loads(x) for x in (out / "episodes.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in rows] == [0, 1] and rows[0] == json.loads(lines[0])


def test_unknown_env_gets_a_suggestion(capsys):
    assert main(["bench", "--envs", "shoping", "--out", "/tmp/x", "--quiet"]) == 2
    assert "did you mean 'shopping'" in capsys.readouterr().err


def test_play_in_the_terminal():
    # the second call spans three lines; the verdict comes back as a short table of levels
    script = (
        '{"name": "view_cart", "arguments": {}}\n'
        '{"name": "submit",\n "arguments": {"product_id": "B0NOSUCH00",\n "options": {}, "message": "hi"}}\n'
    )
    proc = subprocess.run(
        [sys.executable, "-m", "hiergym.cli", "play", "shopping"],
        input=script,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "first failed: format; reward 0.000" in proc.stdout
    assert "  format       FAIL 0.00" in proc.stdout
    assert len(proc.stdout.splitlines()) < 40
    hint = next(line for line in proc.stdout.splitlines() if line.startswith("Type a tool call"))
    assert '"name": "search"' in hint  # a call of this env's own tools, not a made-up one


def test_data_import_travelplanner(capsys, tmp_path):
    from pathlib import Path

    shared = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "travelplanner"
    if not shared.is_dir():
        import pytest

        pytest.skip(f"TravelPlanner's data is not at {shared}")
    assert main(["data", "import", "travelplanner", str(shared)]) == 0
    assert "accommodations" in capsys.readouterr().out
    assert main(["data", "import", "travelplanner", str(tmp_path)]) == 2
    assert "expected TravelPlanner's database layout" in capsys.readouterr().err


def test_data_import_verilog_eval(capsys, tmp_path):
    from pathlib import Path

    problems = Path(__file__).resolve().parent / "envs" / "rtl" / "data" / "verilog_eval"
    assert main(["data", "import", "verilog-eval", str(problems)]) == 0
    assert "3/3 problems verified" in capsys.readouterr().out
    assert main(["data", "import", "verilog-eval", str(tmp_path)]) == 2


def test_bench_without_envs_skips_those_whose_user_data_is_absent(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HIERGYM_TRAVELPLANNER_DIR", str(tmp_path / "nowhere"))
    args = ["bench", "--agents", "random", "--episodes", "1", "--difficulties", "easy"]
    assert main([*args, "--out", str(tmp_path / "run"), "--quiet", "--strict"]) == 0
    err = capsys.readouterr().err
    assert (
        "skipping hiergym/TravelPlanner-v0: needs data: hiergym data import travelplanner DIR"
        in err
    )
    envs = {
        json.loads(x)["env_id"]
        for x in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()
    }
    assert "hiergym/Shopping-v0" in envs and "hiergym/TravelPlanner-v0" not in envs
