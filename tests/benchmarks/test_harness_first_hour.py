"""The bench harness as a new user meets it (issue 11): bad set-ups fail fast with the reason,
failed episodes make a non-zero exit, transcripts are saved, stored runs re-verify."""

from __future__ import annotations

import json
import time

import pytest

from hiergym.cli import main


def bench(tmp_path, *extra):
    return main(
        ["bench", "--envs", "shopping", "--episodes", "1", "--difficulties", "easy", "--quiet",
         "--out", str(tmp_path / "run"), *extra]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("agents", "says"),
    [
        ("orcale", "did you mean 'oracle'"),
        ("openai:no-url", "expected openai:MODEL@URL"),
        ("openai:m@http://127.0.0.1:9", "does not answer"),
        ("hf:/no/such/dir", "no such folder"),
    ],
)
def test_a_bad_agent_fails_before_the_run_with_the_reason(tmp_path, capsys, agents, says):
    start = time.monotonic()
    assert bench(tmp_path, "--agents", agents) == 2
    err = capsys.readouterr().err
    assert says in err
    assert not (tmp_path / "run" / "episodes.jsonl").exists()
    assert time.monotonic() - start < 30  # no silent retries per episode


def test_a_bad_difficulty_fails_before_the_run(tmp_path, capsys):
    code = main(
        ["bench", "--envs", "shopping", "--difficulties", "hrad", "--quiet", "--out", str(tmp_path)]
    )
    assert code == 2 and "did you mean 'hard'" in capsys.readouterr().err


def test_failed_episodes_make_a_nonzero_exit_with_their_reasons(tmp_path, capsys, monkeypatch):
    from hiergym.agents.random_agent import RandomAgent

    def broken(self, obs, info):
        raise RuntimeError("the agent fell over")

    monkeypatch.setattr(RandomAgent, "act", broken)
    assert bench(tmp_path, "--agents", "random") == 1
    err = capsys.readouterr().err
    assert "the agent fell over" in err and "--keep-going" in err
    assert bench(tmp_path, "--agents", "random", "--keep-going") == 0


def test_transcripts_are_saved_and_a_run_reverifies(tmp_path, capsys):
    assert bench(tmp_path, "--agents", "oracle,random") == 0
    run = tmp_path / "run"
    rows = [json.loads(x) for x in (run / "episodes.jsonl").read_text().splitlines()]
    transcripts = [json.loads(x) for x in (run / "transcripts.jsonl").read_text().splitlines()]
    assert {t["key"] for t in transcripts} == {r["key"] for r in rows}
    oracle = next(t for t in transcripts if "|oracle|" in t["key"])
    assert oracle["messages"][0]["role"] == "system"
    assert oracle["trajectory"]["turns"][-1]["calls"][0]["name"] == "submit"
    assert all({"env", "data", "verifier"} <= set(r["versions"]) for r in rows)
    capsys.readouterr()
    assert main(["reverify", str(run)]) == 0
    assert "0 of 2 verdicts changed" in capsys.readouterr().out
    # a stored verdict that today's verifier disagrees with is reported
    rows[0]["reward"] = 0.123
    (run / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["reverify", str(run)]) == 0
    out = capsys.readouterr().out
    assert "1 of 2 verdicts changed" in out and "0.123" in out


def test_env_args_reach_the_envs(tmp_path):
    assert bench(tmp_path, "--agents", "random", "--env-arg", "max_turns=2") == 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "episodes.jsonl").read_text().splitlines()]
    assert rows[0]["turns"] <= 2


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.startswith("hiergym ")


def test_rebuilding_a_report_in_place_keeps_the_runs_config(tmp_path, capsys):
    assert bench(tmp_path, "--agents", "random") == 0
    run = tmp_path / "run"
    before = json.loads((run / "summary.json").read_text())["config"]
    assert before["agents"] == ["random"]
    assert main(["report", str(run)]) == 0
    assert json.loads((run / "summary.json").read_text())["config"] == before


def test_funnel_plots_say_why_they_are_skipped(tmp_path, monkeypatch, caplog):
    import builtins

    from hiergym.benchmarks.plots import funnel_pngs

    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    with caplog.at_level("WARNING", logger="hiergym"):
        assert funnel_pngs({"groups": []}, tmp_path) == {}
    assert "pip install 'hiergym[plots]'" in caplog.text
