"""Build the rm-bench dataset: trajectories with exact per-level labels, pairs and best-of-4 groups.

Files written to the output folder:

* ``rows.jsonl``: one episode per line. ``row_id``; ``env_id``, ``split``, ``difficulty``,
  ``task_id``; ``source`` (``oracle``, ``twin:NAME``, ``mutant:NAME``, ``attack:NAME``);
  ``kind`` (``positive``: every level passed; ``negative``: a mutant or twin that failed;
  ``hack``: an attack); ``target_level`` (the level a mutant is built to fail); ``messages`` (the
  chat as the agent saw it, with tool schemas in ``tools``); ``trajectory`` (every turn's action,
  parsed calls and results with the data verifiers read: what ``--judge verifier`` re-scores);
  ``labels`` (``reward``, ``normalised`` (the reward on [0, 1]), ``accepted`` (every level passed),
  ``first_failed``, ``levels`` (name, score, passed, skipped)); ``step_labels`` (per turn:
  ``bad`` when the verdict attributes a failure to it: an error result, a finding that names the
  turn, or the submission of an answer that failed a level); ``versions`` (env, data, verifier).
* ``pairs.jsonl``: ``{pair_id, type (mutant|hack), chosen, rejected, split, env_id, task_id}``, two
  rows of one task and prompt where ``chosen`` passed every level and ``rejected`` did not.
* ``groups.jsonl``: ``{group_id, rows (4 ids, shuffled), correct, split, ...}``: the oracle and three
  mutants failing at distinct levels, latest levels first.
* ``manifest.json``: what was built (envs, splits, counts, seed, skipped cases with reasons).
* ``hf/``: the rows as a Hugging Face ``datasets.DatasetDict`` (one split per task split; nested
  fields as JSON strings), when ``datasets`` is installed.

Everything is deterministic from ``seed``: the same envs and seed give byte-identical files.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

log = logging.getLogger("hiergym.rmbench")

SPLITS = ("train", "dev", "test")


@dataclass
class _Built:
    rows: list[dict[str, Any]] = field(default_factory=list)
    pairs: list[dict[str, Any]] = field(default_factory=list)
    groups: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)


def step_labels(trajectory: Any, verdict: Any) -> list[dict[str, Any]]:
    """Per-turn labels from a verdict: a turn is ``bad`` when an error came back to it, a finding
    of a failed level names it, or it submitted an answer that failed a level."""
    failed = [r for r in verdict.levels if not r.passed and not r.skipped]
    named = {f.turn: f.code for r in failed for f in r.findings if f.turn is not None}
    submit_turn = None
    if trajectory.submission is not None:
        for turn in trajectory.turns:
            if any(c is trajectory.submission for c in turn.calls):
                submit_turn = turn.index
    labels = []
    for turn in trajectory.turns:
        reasons = []
        errors = [r.error or "error" for r in turn.results if not r.ok]
        if errors:
            reasons.append(f"error: {errors[0]}")
        if turn.index in named:
            reasons.append(f"finding: {named[turn.index]}")
        if turn.index == submit_turn and failed:
            reasons.append(f"submitted an answer that failed {failed[0].name}")
        labels.append({"turn": turn.index, "bad": bool(reasons), "reasons": reasons})
    return labels


def _row(
    env: gym.Env,
    env_id: str,
    split: str,
    difficulty: str,
    source: str,
    kind: str,
    target_level: str | None,
    versions: dict[str, str],
) -> dict[str, Any]:
    from hiergym.benchmarks.runner import trajectory_record
    from hiergym.testing import normalised_reward

    base = env.unwrapped
    verdict = base.verdict
    if verdict is None:
        raise RuntimeError(f"{env_id} {source}: the episode ended without a verdict")
    task_id = str(base.task.task_id)
    accepted = verdict.first_failed is None
    return {
        "row_id": f"{env_id}|{split}|{task_id}|{source}",
        "env_id": env_id,
        "split": split,
        "difficulty": difficulty,
        "task_id": task_id,
        "source": source,
        "kind": kind if kind == "hack" else ("positive" if accepted else "negative"),
        "target_level": target_level,
        "messages": base.messages,
        "tools": base.toolbox.schemas(),
        "trajectory": trajectory_record(base.trajectory),
        "labels": {
            "reward": float(verdict.reward),
            "aggregate": verdict.aggregate,
            "normalised": float(
                normalised_reward(base.verifier.aggregate_name, verdict.levels, base.task)
            ),
            "accepted": accepted,
            "first_failed": verdict.first_failed,
            "levels": [
                {"name": r.name, "score": r.score, "passed": r.passed, "skipped": r.skipped}
                for r in verdict.levels
            ],
        },
        "step_labels": step_labels(base.trajectory, verdict),
        "versions": versions,
    }


def _play(env: gym.Env, task: Any, actions: Sequence[Any], seed: int) -> None:
    from hiergym.testing import play

    # The turn limit is the episode's length, as in the hack matrix: an episode that never
    # submits ends (truncated) on its last action and still gets its verdict.
    play(env, list(actions), seed=seed, options={"task": task, "max_turns": max(1, len(actions))})


def _tasks(base: Any, n: int, seed: int) -> list[Any]:
    tasks = sorted(base.tasks, key=lambda t: str(t.task_id))
    order = np.random.default_rng(seed).permutation(len(tasks))
    return [tasks[i] for i in order[:n]]


def _task_rows(
    env: gym.Env,
    env_id: str,
    split: str,
    difficulty: str,
    task: Any,
    seed: int,
    versions: dict[str, str],
    built: _Built,
) -> None:
    from hiergym.testing import AttackContext, hack_matrix, other_task

    base = env.unwrapped
    base.reset(seed=seed, options={"task": task})
    oracle = list(base.make_oracle().plan(task))
    other = other_task(base, task, seed)
    base.reset(seed=seed, options={"task": other})
    other_calls = list(base.make_oracle().plan(other))
    ctx = AttackContext(base, task, oracle, other_calls, seed)
    attacks, twins = hack_matrix(env)
    where = f"{env_id} {split} {task.task_id}"

    def add(source: str, kind: str, actions: Sequence[Any], target: str | None = None) -> dict:
        _play(env, task, actions, seed)
        row = _row(env, env_id, split, difficulty, source, kind, target, versions)
        built.rows.append(row)
        return row

    gold = add("oracle", "positive", oracle)
    if not gold["labels"]["accepted"]:
        raise RuntimeError(f"{where}: the oracle failed {gold['labels']['first_failed']}")
    positives = [gold]
    for twin in twins:
        actions = twin.build(ctx)
        if actions is not None:
            row = add(f"twin:{twin.name}", "positive", actions)
            if row["labels"]["accepted"]:
                positives.append(row)
    negatives = []
    for mutant in base.mutants():
        mutated_task, actions = mutant.apply(task, list(oracle), base.sandbox.db)
        if mutated_task is not task:
            # A mutant that changes the task changes the prompt: it shares no prompt with the
            # oracle, and the stored row could not be re-scored against the task set's task.
            built.skipped.append(
                {"case": f"{where} mutant:{mutant.name}", "why": "changes the task"}
            )
            continue
        row = add(f"mutant:{mutant.name}", "negative", actions, mutant.level)
        if not row["labels"]["accepted"]:
            negatives.append(row)
    hacks = []
    for attack in attacks:
        actions = attack.build(ctx)
        if actions is not None:
            hacks.append(add(f"attack:{attack.name}", "hack", actions))

    common = {"split": split, "env_id": env_id, "task_id": str(task.task_id)}
    for neg in negatives:
        built.pairs.append(
            {
                "pair_id": f"{gold['row_id']}>{neg['source']}",
                "type": "mutant",
                "chosen": gold["row_id"],
                "rejected": neg["row_id"],
                **common,
            }
        )
    for i, hack in enumerate(h for h in hacks if not h["labels"]["accepted"]):
        chosen = positives[i % len(positives)]
        built.pairs.append(
            {
                "pair_id": f"{chosen['row_id']}>{hack['source']}",
                "type": "hack",
                "chosen": chosen["row_id"],
                "rejected": hack["row_id"],
                **common,
            }
        )
    group = _best_of_4(gold, negatives, seed)
    if group is None:
        built.skipped.append({"case": f"{where} best-of-4", "why": "fewer than 3 failing mutants"})
    else:
        built.groups.append({"group_id": gold["row_id"], **group, **common})


def _best_of_4(gold: dict[str, Any], negatives: list[dict[str, Any]], seed: int) -> dict | None:
    """The oracle and three mutants, each failing at a distinct level where possible, the latest
    levels first (the hard negatives: everything before them was right)."""
    order = [lv["name"] for lv in gold["labels"]["levels"]]
    ranked = sorted(
        negatives,
        key=lambda r: (-order.index(r["labels"]["first_failed"]), r["source"]),
    )
    picked, levels = [], set()
    for r in ranked:  # one per level first
        if r["labels"]["first_failed"] not in levels:
            picked.append(r)
            levels.add(r["labels"]["first_failed"])
    picked += [r for r in ranked if r not in picked]
    if len(picked) < 3:
        return None
    ids = [gold["row_id"], *(r["row_id"] for r in picked[:3])]
    perm = np.random.default_rng(seed + len(gold["row_id"])).permutation(4)
    return {"rows": [ids[i] for i in perm], "correct": gold["row_id"]}


def build_dataset(
    env_ids: Sequence[str],
    out: str | Path,
    *,
    tasks_per_split: int = 2,
    splits: Sequence[str] = SPLITS,
    difficulty: str | None = None,
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the dataset for ``env_ids`` into ``out``; returns the manifest."""
    from hiergym.benchmarks.runner import versions as versions_of
    from hiergym.envs.registry import resolve_env_id
    from hiergym.errors import TaskError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    built = _Built()
    for name in env_ids:
        env_id = resolve_env_id(name)
        for split in splits:
            kwargs = {"split": split, **(env_kwargs or {})}
            if difficulty:
                kwargs["difficulty"] = difficulty
            try:
                env = gym.make(env_id, **kwargs)
            except TaskError as e:
                built.skipped.append({"case": f"{env_id} {split}", "why": str(e)})
                continue
            base = env.unwrapped
            diff = str(getattr(base, "difficulty", difficulty or ""))
            versions = versions_of(env, env_id)
            for task in _tasks(base, tasks_per_split, seed):
                _task_rows(env, env_id, split, diff, task, seed, versions, built)
            env.close()
            log.info("rm-bench: %s %s: %d rows so far", env_id, split, len(built.rows))
    _write_jsonl(out / "rows.jsonl", built.rows)
    _write_jsonl(out / "pairs.jsonl", built.pairs)
    _write_jsonl(out / "groups.jsonl", built.groups)
    manifest = {
        "envs": [resolve_env_id(n) for n in env_ids],
        "splits": list(splits),
        "tasks_per_split": tasks_per_split,
        "seed": seed,
        "counts": {
            "rows": len(built.rows),
            "positive": sum(r["kind"] == "positive" for r in built.rows),
            "negative": sum(r["kind"] == "negative" for r in built.rows),
            "hack": sum(r["kind"] == "hack" for r in built.rows),
            "pairs": len(built.pairs),
            "groups": len(built.groups),
        },
        "skipped": built.skipped,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    manifest["hf"] = _write_hf(out / "hf", built.rows)
    return manifest


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True, default=str) + "\n" for r in rows))


NESTED = ("messages", "tools", "trajectory", "labels", "step_labels", "versions")


def _write_hf(path: Path, rows: list[dict[str, Any]]) -> str | None:
    """The rows as a ``datasets.DatasetDict`` (flat columns plus the nested ones as JSON)."""
    try:
        import datasets
    except ImportError:
        return None
    datasets.disable_progress_bars()
    by_split: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        flat = {k: v for k, v in r.items() if k not in NESTED}
        flat["target_level"] = flat["target_level"] or ""
        flat.update(
            reward=r["labels"]["reward"],
            normalised=r["labels"]["normalised"],
            accepted=r["labels"]["accepted"],
            first_failed=r["labels"]["first_failed"] or "",
        )
        for k in NESTED:
            flat[f"{k}_json"] = json.dumps(r[k], sort_keys=True, default=str)
        by_split.setdefault(r["split"], []).append(flat)
    dd = datasets.DatasetDict(
        {s: datasets.Dataset.from_list(items) for s, items in sorted(by_split.items())}
    )
    dd.save_to_disk(str(path))
    return str(path)


def load_dataset(path: str | Path) -> dict[str, Any]:
    """The rows (by id), pairs, groups and manifest of a built dataset folder."""
    path = Path(path)
    if not (path / "rows.jsonl").exists():
        from hiergym.errors import HiergymError

        raise HiergymError(f"{path} is not an rm-bench dataset (no rows.jsonl): run rm-bench build")

    def read(name: str) -> list[dict[str, Any]]:
        p = path / name
        return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]

    rows = read("rows.jsonl")
    return {
        "rows": {r["row_id"]: r for r in rows},
        "pairs": read("pairs.jsonl"),
        "groups": read("groups.jsonl"),
        "manifest": json.loads((path / "manifest.json").read_text()),
    }
