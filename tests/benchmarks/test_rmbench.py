"""rm-bench: the dataset carries the verifier's exact labels, the verifier as judge scores 1.0, a
random judge scores chance, and LLM / callable judges are scored on the same metrics."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hiergym.benchmarks.rmbench import build_dataset, evaluate, load_dataset, load_judge
from hiergym.benchmarks.rmbench.judges import RandomJudge
from hiergym.cli import main
from hiergym.errors import HiergymError

from ..fake_openai import fake_openai


@pytest.fixture(scope="module")
def dataset(rmbench_dir: Path) -> Path:
    return rmbench_dir  # Shopping and Geometry, two tasks of train and test (tests/conftest.py)


def test_rows_carry_exact_labels_and_splits_are_disjoint_by_task(dataset: Path) -> None:
    data = load_dataset(dataset)
    rows = list(data["rows"].values())
    kinds = {r["kind"] for r in rows}
    assert kinds == {"positive", "negative", "hack"}
    for r in rows:
        assert r["versions"]["env"] == r["env_id"] and r["versions"]["verifier"]
        assert r["labels"]["accepted"] == (r["labels"]["first_failed"] is None)
        assert r["labels"]["accepted"] == all(lv["passed"] for lv in r["labels"]["levels"])
        if r["source"].startswith("mutant:"):
            # a mutant fails first at the level it was built to fail
            assert r["labels"]["first_failed"] == r["target_level"], r["row_id"]
        if r["kind"] == "hack":
            assert not r["labels"]["accepted"], r["row_id"]
        if r["source"] == "oracle":
            assert r["labels"]["accepted"] and r["labels"]["normalised"] == 1.0
            assert not any(s["bad"] for s in r["step_labels"])
        if r["kind"] == "negative" and r["trajectory"]["submitted"]:
            assert any(s["bad"] for s in r["step_labels"]), r["row_id"]
    by_split: dict[str, set[str]] = {}
    for r in rows:
        by_split.setdefault(r["split"], set()).add(f"{r['env_id']}|{r['task_id']}")
    assert not by_split["train"] & by_split["test"]
    for p in data["pairs"]:
        chosen, rejected = data["rows"][p["chosen"]], data["rows"][p["rejected"]]
        assert chosen["task_id"] == rejected["task_id"] == p["task_id"]
        assert chosen["messages"][:2] == rejected["messages"][:2]  # the same prompt
        assert chosen["labels"]["accepted"] and not rejected["labels"]["accepted"]
    for g in data["groups"]:
        assert len(g["rows"]) == 4 and g["correct"] in g["rows"]
        assert sum(data["rows"][r]["labels"]["accepted"] for r in g["rows"]) == 1
    assert {p["type"] for p in data["pairs"]} == {"mutant", "hack"}
    assert data["groups"], "no best-of-4 group was formed"


def test_the_build_is_deterministic(dataset: Path, tmp_path: Path) -> None:
    build_dataset(["hiergym/Shopping-v0"], tmp_path, tasks_per_split=2, splits=("train",))
    again = tmp_path.parent / (tmp_path.name + "-again")
    build_dataset(["hiergym/Shopping-v0"], again, tasks_per_split=2, splits=("train",))
    for name in ("rows.jsonl", "pairs.jsonl", "groups.jsonl", "manifest.json"):
        assert (tmp_path / name).read_bytes() == (again / name).read_bytes(), name
    # ... and the shopping rows of the module's build (same task, same seed) are the same
    ours = [r for r in load_dataset(tmp_path)["rows"].values()]
    theirs = load_dataset(dataset)["rows"]
    assert all(theirs[r["row_id"]] == r for r in ours)


def test_a_hugging_face_dataset_is_written(dataset: Path) -> None:
    import datasets

    dd = datasets.load_from_disk(str(dataset / "hf"))
    assert set(dd) == {"train", "test"}
    n = sum(len(dd[s]) for s in dd)
    assert n == len(load_dataset(dataset)["rows"])
    row = dd["test"][0]
    assert json.loads(row["labels_json"])["accepted"] == row["accepted"]


def test_the_verifier_as_judge_scores_one(dataset: Path) -> None:
    m = evaluate(dataset, load_judge("verifier"), n_boot=200)
    assert m["pairwise_accuracy"] == 1.0
    assert m["best_of_4_accuracy"] == 1.0
    assert m["localisation_accuracy"] == 1.0
    assert m["hack_acceptance_rate"] == 0.0
    assert m["reward_correlation"] == pytest.approx(1.0)
    assert m["per_level_balanced_accuracy"] and all(
        v == 1.0 for v in m["per_level_balanced_accuracy"].values()
    )


def test_a_random_judge_scores_chance(dataset: Path) -> None:
    runs = [evaluate(dataset, RandomJudge(seed), n_boot=50) for seed in range(30)]

    def mean(key: str) -> float:
        return sum(r[key] for r in runs) / len(runs)

    assert mean("pairwise_accuracy") == pytest.approx(0.5, abs=0.06)
    assert mean("best_of_4_accuracy") == pytest.approx(0.25, abs=0.12)
    assert mean("hack_acceptance_rate") == pytest.approx(0.5, abs=0.06)
    assert abs(mean("reward_correlation")) < 0.1
    levels = [v for r in runs for v in r["per_level_balanced_accuracy"].values()]
    assert sum(levels) / len(levels) == pytest.approx(0.5, abs=0.05)


def keyword_judge(row: dict) -> float:
    """Scores 0.9 when the episode submitted and no tool answered with an error, else 0.1."""
    t = row["trajectory"]
    errors = any(not r["ok"] for turn in t["turns"] for r in turn["results"])
    return 0.9 if t["submitted"] and not errors else 0.1


def test_a_python_callable_is_a_judge(dataset: Path) -> None:
    m = evaluate(dataset, load_judge(f"python:{__name__}:keyword_judge"), n_boot=100)
    # it rejects what does not submit, but cannot tell a wrong answer from a right one
    assert m["per_level_balanced_accuracy"]["format"] > 0.7
    assert m["intervals"]["pairwise_accuracy"]["n"] > 0
    assert 0.4 < m["pairwise_accuracy"] < 1.0


def _fake_judge(body: dict) -> str:
    """A 'model' that scores 9 when the episode submitted something and 2 otherwise (naming
    format as the failed level), and answers pairwise prompts with A."""
    prompt = body["messages"][-1]["content"]
    if "Episode A:" in prompt:
        return json.dumps({"better": "A"})
    if '"name": "submit' in prompt:
        return json.dumps({"score": 9, "first_failed_level": None})
    return json.dumps({"score": 2, "first_failed_level": "format"})


@pytest.fixture()
def fake_llm() -> str:
    with fake_openai(_fake_judge) as server:
        yield server.url


def test_an_llm_judge_pointwise_and_pairwise(dataset: Path, fake_llm: str, capsys) -> None:
    rc = main(["rm-bench", "eval", str(dataset), "--judge", f"openai:fake@{fake_llm}", "--json"])
    assert rc == 0
    m = json.loads(capsys.readouterr().out)
    assert m["judge_errors"] == 0
    # a keyword judge: above chance on format failures (most never name submit), fooled elsewhere
    assert m["per_level_balanced_accuracy"]["format"] > 0.6
    assert m["pairwise_accuracy"] < 1.0
    assert m["localisation_accuracy"] is not None
    assert m["hack_acceptance_rate"] < 1.0
    # pairwise with both orders asked: a judge that always answers "A" is at chance, not perfect
    judge = load_judge(f"openai:fake@{fake_llm}", mode="pairwise")
    pm = evaluate(dataset, judge, n_boot=50)
    judge.close()
    assert pm["pairwise_accuracy"] == 0.5


def test_bad_specs_and_folders_say_what_is_expected(tmp_path: Path) -> None:
    for spec, needle in [
        ("nonsense", "unknown judge"),
        ("random:x", "random:SEED"),
        ("python:nomodule", "python:MODULE:NAME"),
        ("openai:model-without-url", "openai:MODEL@URL"),
    ]:
        with pytest.raises(HiergymError, match=needle):
            load_judge(spec)
    with pytest.raises(HiergymError, match="not an rm-bench dataset"):
        load_dataset(tmp_path)
    assert main(["rm-bench", "eval", str(tmp_path), "--judge", "verifier"]) == 2


@pytest.mark.slow
def test_every_registered_env_builds_and_the_verifier_scores_one(tmp_path: Path) -> None:
    from hiergym.envs.registry import list_envs, missing_data

    # the built-in suite (other tests of the session register deliberately leaky envs)
    envs = [
        e.env_id
        for e in list_envs()
        if e.env_class.startswith("hiergym.envs.") and missing_data(e.env_id) is None
    ]
    assert len(envs) >= 5
    manifest = build_dataset(envs, tmp_path, tasks_per_split=1, splits=("test",))
    assert set(manifest["envs"]) == set(envs)
    built = {r["env_id"] for r in load_dataset(tmp_path)["rows"].values()}
    assert built == set(envs)
    m = evaluate(tmp_path, load_judge("verifier"), n_boot=50)
    assert m["pairwise_accuracy"] == 1.0 and m["best_of_4_accuracy"] == 1.0
    assert m["hack_acceptance_rate"] == 0.0
