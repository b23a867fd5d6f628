"""Group rollouts (local and Ray) and ``hiergym export``."""

from __future__ import annotations

import json

import pytest

from hiergym.agents import LLMAgent, OracleAgent
from hiergym.cli import main
from hiergym.export import export
from hiergym.rollouts import collect, read_rollouts

from .fakes import ENV_ID, ScriptedBackend, oracle_plans

SPLIT, DIFFICULTY = "test", "easy"


@pytest.fixture(scope="module")
def plans():
    return oracle_plans(ENV_ID, SPLIT, DIFFICULTY)


def _collect(plans, backend="local", out=None, tasks=2, k=3):
    fake = ScriptedBackend(plans)
    agent = LLMAgent(fake, temperature=1.0)
    rows = collect(
        ENV_ID,
        agent,
        tasks=tasks,
        group_size=k,
        backend=backend,
        split=SPLIT,
        difficulty=DIFFICULTY,
        out=out,
    )
    return rows, fake


def test_groups_share_task_and_seed_and_step_in_one_call(plans, tmp_path):
    rows, fake = _collect(plans, out=tmp_path)
    assert len(rows) == 6
    for g in (0, 1):
        group = [r for r in rows if r["group"] == g]
        assert len({(r["task_id"], r["seed"]) for r in group}) == 1
        assert [r["member"] for r in group] == [0, 1, 2]
        # member 0 played the oracle, the others junk: the verdicts tell them apart
        assert group[0]["reward"] == 1.0 and group[0]["success"]
        assert all(r["reward"] < 1.0 and not r["success"] for r in group[1:])
        assert group[1]["levels"] == {
            lv["name"]: lv["score"] for lv in group[1]["verdict"]["levels"]
        }
    # one backend call per step of the whole group: as many calls as the longest episode's turns
    # per group, the batch shrinking as members finish (junk ends after 2 turns)
    assert fake.batch_calls == sum(max(r["turns"] for r in rows if r["group"] == g) for g in (0, 1))
    assert fake.batch_sizes[:3] == [3, 3, 1]
    junk = rows[1]
    assert junk["turns"] == 2 and junk["end"] == "submitted"
    # per-turn process rewards: the invalid first call is charged
    assert len(junk["process_rewards"]) == 2 and junk["process_rewards"][0] < 0
    assert junk["tokens"] == {"prompt": 30, "completion": 6, "requests": 2}
    assert junk["messages"][0]["role"] == "system" and junk["trajectory"]["turns"]
    assert read_rollouts(tmp_path) == json.loads(json.dumps(rows, default=str))


def test_same_rows_in_two_runs(plans):
    assert _collect(plans, tasks=1, k=2)[0] == _collect(plans, tasks=1, k=2)[0]


def test_oracle_agent_acts_per_member():
    rows = collect(ENV_ID, OracleAgent(), tasks=1, group_size=2, split=SPLIT, difficulty=DIFFICULTY)
    assert [r["reward"] for r in rows] == [1.0, 1.0]
    assert rows[0]["messages"] == rows[1]["messages"]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="group_size"):
        collect(ENV_ID, OracleAgent(), tasks=1, group_size=0)
    with pytest.raises(ValueError, match="backend"):
        collect(ENV_ID, OracleAgent(), tasks=1, backend="slurm")


def test_ray_backend_gives_the_local_rows(plans, monkeypatch):
    import os
    import shutil
    import tempfile

    ray = pytest.importorskip("ray")
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    temp = tempfile.mkdtemp(prefix="hgray")  # short: Ray's socket paths must fit 107 bytes
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _temp_dir=temp,
        log_to_driver=False,
        runtime_env={"env_vars": {"HIERGYM_HOME": os.environ["HIERGYM_HOME"]}},
    )
    try:
        remote, fake = _collect(plans, backend="ray", tasks=1, k=2)
    finally:
        ray.shutdown()
        shutil.rmtree(temp, ignore_errors=True)
    local, _ = _collect(plans, tasks=1, k=2)
    assert remote == local
    assert fake.batch_calls == max(r["turns"] for r in remote)


def test_export_formats(plans, tmp_path):
    from datasets import load_from_disk

    run = tmp_path / "run"
    rows, _ = _collect(plans, out=run)
    out, n = export(run, "sft", tmp_path / "x")
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert n == len(sft) == 2  # the two oracle members, not the junk ones
    assert all(r["reward"] == 1.0 for r in sft)
    first = sft[0]
    assert [m["role"] for m in first["messages"][:3]] == ["system", "user", "assistant"]
    call = first["messages"][2]["tool_calls"][0]["function"]
    assert isinstance(call["arguments"], dict)  # parsed, as chat templates render them
    assert {t["function"]["name"] for t in first["tools"]} >= {"search", "submit"}
    ds = load_from_disk(str(out / "sft"))
    assert len(ds) == 2 and json.loads(ds[0]["tools"]) == first["tools"]

    _, n = export(run, "preference", tmp_path / "x")
    pairs = [
        json.loads(line) for line in (tmp_path / "x" / "preference.jsonl").read_text().splitlines()
    ]
    # per group: the oracle beats each of 2 junk members; the junk pair ties (no pair)
    assert n == len(pairs) == 4
    for p in pairs:
        assert p["chosen_reward"] > p["rejected_reward"]
        assert [m["role"] for m in p["prompt"]] == ["system", "user"]
        assert p["chosen"][0]["role"] == "assistant" and p["rejected"][0]["role"] == "assistant"
        assert p["chosen"] != p["rejected"]

    _, n = export(run, "levels", tmp_path / "x")
    labels = [
        json.loads(line) for line in (tmp_path / "x" / "levels.jsonl").read_text().splitlines()
    ]
    assert n == 6
    junk = next(r for r in labels if not r["passed"])
    by_name = {lv["name"]: lv for lv in junk["levels"]}
    assert junk["first_failed"] in by_name and not by_name[junk["first_failed"]]["passed"]
    assert [lv["name"] for lv in junk["levels"]] == list(rows[0]["levels"])


def test_export_command_on_a_bench_run(tmp_path, capsys):
    from hiergym.benchmarks.bench import bench

    run = tmp_path / "bench"
    bench(
        [ENV_ID],
        ["oracle", "random"],
        episodes=1,
        out=run,
        difficulties=(DIFFICULTY,),
        show_progress=False,
    )
    assert main(["export", str(run), "--format", "preference"]) == 0
    assert "1 preference rows" in capsys.readouterr().out
    pair = json.loads((run / "export" / "preference.jsonl").read_text().splitlines()[0])
    assert pair["chosen_reward"] == 1.0 and pair["rejected_reward"] < 1.0
    assert main(["export", str(run), "--format", "sft"]) == 0
    assert main(["export", str(tmp_path), "--format", "sft"]) == 2  # not a run folder: a message
    assert "neither rollouts.jsonl" in capsys.readouterr().err


def test_groups_per_batch_step_several_groups_in_one_call(plans):
    one, _ = _collect(plans, tasks=2, k=2)
    fake = ScriptedBackend(plans)
    rows = collect(
        ENV_ID, LLMAgent(fake, temperature=1.0), tasks=2, group_size=2, split=SPLIT,
        difficulty=DIFFICULTY, groups_per_batch=2,
    )  # fmt: skip
    # the scripted backend plays the oracle at batch position 0 only: group 1's members are junk
    assert [(r["group"], r["member"]) for r in rows] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [(r["task_id"], r["seed"]) for r in rows] == [(r["task_id"], r["seed"]) for r in one]
    assert fake.batch_sizes[0] == 4  # both groups in one backend call
    assert fake.batch_calls == max(r["turns"] for r in rows)
    assert [r["reward"] for r in rows][:1] == [1.0] and all(r["reward"] < 1 for r in rows[1:])
    with pytest.raises(ValueError, match="groups_per_batch"):
        collect(ENV_ID, OracleAgent(), tasks=1, groups_per_batch=0)
