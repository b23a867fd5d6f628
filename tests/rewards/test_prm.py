"""The learned process reward model: HRM-style examples, training that beats an untrained model on
held-out tasks, and its two plugs (a ProcessReward check and an rm-bench judge)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from hiergym.benchmarks.rmbench import evaluate, load_dataset
from hiergym.benchmarks.rmbench.judges import PRMJudge
from hiergym.benchmarks.runner import trajectory_record
from hiergym.rewards.prm import (
    ProcessRewardModel,
    examples_from_row,
    step_auroc,
    train_prm,
)
from hiergym.rewards.wrappers import DEFAULT_CHECKS, ProcessReward
from hiergym.testing import oracle_actions


def _row(labels: list[bool]) -> dict:
    turns = [
        {
            "index": i,
            "action": "",
            "calls": [{"name": f"tool{i}", "arguments": {"x": i}, "id": f"c{i}"}],
            "results": [{"ok": True, "content": f"r{i}"}],
        }
        for i in range(len(labels))
    ]
    return {
        "env_id": "e",
        "task_id": "t",
        "messages": [{"role": "user", "content": "the task"}],
        "trajectory": {"turns": turns},
        "step_labels": [{"turn": i, "bad": bad} for i, bad in enumerate(labels)],
    }


def test_hrm_examples_merge_consecutive_steps_and_compress_nodes() -> None:
    row = _row([False, True, False])  # good, bad, good
    plain = examples_from_row(row)
    assert [e.good for e in plain] == [True, False, True, False, False]  # 3 steps, 2 merged pairs
    assert "tool0" in plain[3].text and "tool1" in plain[3].text
    compressed = examples_from_row(row, np.random.default_rng(0), compress=1.0)
    # compress=1 merges every node into one: bad, since one of its steps is
    assert [e.good for e in compressed[5:]] == [False]
    assert all(t in compressed[5].text for t in ("tool0", "tool1", "tool2"))


VOCAB = """
import json, sys
from hiergym.rewards.prm import _tokenizer
texts = [f"call search {{'query': 'item {i % 7} colour {i % 5}'}} result ok {i}" for i in range(300)]
print(json.dumps(sorted(_tokenizer(texts, 200).get_vocab().items(), key=lambda kv: kv[1])))
"""


def test_the_same_texts_give_the_same_vocabulary_in_every_process() -> None:
    # the tokenizers library's WordPiece trainer broke ties by hash order: a new vocabulary, so a
    # new model, in each process for the same seed
    runs = [
        subprocess.run(
            [sys.executable, "-c", VOCAB], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(3)
    ]
    assert runs[0] == runs[1] == runs[2]
    vocab = dict(json.loads(runs[0]))
    assert len(vocab) == 200 and {"[PAD]", "[UNK]", "search", "colour"} <= set(vocab)


@pytest.fixture(scope="module")
def split_rows(rmbench_dir: Path) -> tuple[list[dict], list[dict]]:
    rows = list(load_dataset(rmbench_dir)["rows"].values())
    train = [r for r in rows if r["split"] == "train"]
    test = [r for r in rows if r["split"] == "test"]
    assert {r["task_id"] for r in train}.isdisjoint(r["task_id"] for r in test)
    return train, test


@pytest.fixture(scope="module")
def trained(split_rows: tuple[list[dict], list[dict]]) -> ProcessRewardModel:
    return train_prm(split_rows[0], seed=0)


def test_a_trained_prm_beats_an_untrained_one_on_held_out_tasks(
    split_rows: tuple[list[dict], list[dict]], trained: ProcessRewardModel
) -> None:
    train, test = split_rows
    texts = [e.text for r in train for e in examples_from_row(r, np.random.default_rng(0))]
    untrained = ProcessRewardModel.untrained(texts, seed=0)
    before = step_auroc(untrained, test)
    after = step_auroc(trained, test)
    # measured with the deterministic vocabulary (seeds 0, 1, 2): untrained 0.58, 0.48, 0.60;
    # trained 0.83, 0.87, 0.92
    assert after > before, (before, after)
    assert after > 0.7, (before, after)


def test_the_prm_saves_loads_and_judges_in_rm_bench(
    trained: ProcessRewardModel, rmbench_dir: Path, tmp_path: Path
) -> None:
    row = next(iter(load_dataset(rmbench_dir)["rows"].values()))
    trained.save(tmp_path / "prm")
    loaded = ProcessRewardModel.load(tmp_path / "prm")
    assert loaded.score_steps(row) == pytest.approx(trained.score_steps(row), abs=1e-6)
    metrics = evaluate(
        rmbench_dir, PRMJudge.load(str(tmp_path / "prm")), splits=["test"], n_boot=50
    )
    assert metrics["rows"] > 0 and 0.0 <= metrics["pairwise_accuracy"] <= 1.0
    assert set(metrics["per_level_balanced_accuracy"]) >= {"format"}


def test_the_prm_is_a_bounded_process_reward_check(trained: ProcessRewardModel) -> None:
    env = gym.make("hiergym/Shopping-v0")
    wrapped = ProcessReward(env, checks={**DEFAULT_CHECKS})
    wrapped.checks["prm"] = (trained.as_check(env), 0.05)
    env.unwrapped.reset(seed=0)
    actions = oracle_actions(env)
    task = env.unwrapped.task
    total = 0.0
    wrapped.reset(seed=0, options={"task": task})
    values = []
    for action in actions:
        _, _, terminated, truncated, info = wrapped.step(action)
        values.append(info["process"]["prm"])
        total += info["process_reward"]
        if terminated or truncated:
            break
    assert all(-1.0 <= v <= 1.0 for v in values)
    assert abs(total) <= wrapped.budget + 1e-9
    # the check is the PRM's own step score, mapped to [-1, 1]
    wrapped.reset(seed=0, options={"task": task})
    _, _, _, _, info = wrapped.step('{"name": "no_such_tool", "arguments": {}}')
    row = {
        "messages": env.unwrapped.messages,
        "trajectory": trajectory_record(env.unwrapped.trajectory),
    }
    assert info["process"]["prm"] == pytest.approx(2 * trained.score_steps(row)[0] - 1, abs=1e-5)
    env.close()


def test_rm_bench_train_prm_trains_saves_and_reports_held_out_auroc(
    rmbench_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from hiergym.cli import main

    out = tmp_path / "prm"
    assert main(["rm-bench", "train-prm", str(rmbench_dir), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["saved"] == str(out) and report["eval_split"] == "test"
    # the same seed and data as the `trained` fixture: the same model, the same figure
    assert report["step_auroc"] > report["step_auroc_untrained"] and report["step_auroc"] > 0.7
    loaded = ProcessRewardModel.load(out)
    row = next(iter(load_dataset(rmbench_dir)["rows"].values()))
    assert all(0.0 <= p <= 1.0 for p in loaded.score_steps(row))
    assert (
        main(["rm-bench", "train-prm", str(rmbench_dir), "--out", str(out), "--train-split", "x"])
        == 2
    )
    assert "no rows of split 'x'" in capsys.readouterr().err
