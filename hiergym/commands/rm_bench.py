"""``hiergym rm-bench build|eval|train-prm``: a reward-model benchmark from exact hierarchical
verdicts, and a process reward model trained on its step labels."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _build(args: argparse.Namespace) -> int:
    from hiergym.benchmarks.rmbench import build_dataset
    from hiergym.envs.registry import list_envs, missing_data

    if args.envs:
        names = args.envs.split(",")
    else:
        names = [e.env_id for e in list_envs() if missing_data(e.env_id) is None]
    manifest = build_dataset(
        names,
        args.out,
        tasks_per_split=args.tasks_per_split,
        splits=args.splits.split(","),
        difficulty=args.difficulty,
        seed=args.seed,
    )
    c = manifest["counts"]
    print(
        f"rm-bench: {c['rows']} rows ({c['positive']} positive, {c['negative']} negative, "
        f"{c['hack']} hack), {c['pairs']} pairs, {c['groups']} best-of-4 groups -> {args.out}"
    )
    if manifest["skipped"]:
        print(f"skipped {len(manifest['skipped'])} cases (see manifest.json)")
    return 0


def _eval(args: argparse.Namespace) -> int:
    from hiergym.benchmarks.rmbench import evaluate, format_table, load_judge
    from hiergym.benchmarks.rmbench.metrics import plot_levels

    judge = load_judge(args.judge, mode=args.mode, seed=args.seed)
    try:
        metrics = evaluate(
            args.dir,
            judge,
            splits=args.splits.split(",") if args.splits else None,
            n_boot=args.n_boot,
            seed=args.seed,
        )
    finally:
        judge.close()
    out = Path(args.out) if args.out else None
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")
        plot_levels(metrics, out / "levels.png")
    if args.json:
        json.dump(metrics, sys.stdout, sort_keys=True)
        print()
    else:
        print(format_table(metrics))
    return 0


def _train_prm(args: argparse.Namespace) -> int:
    from hiergym.benchmarks.rmbench import load_dataset
    from hiergym.errors import HiergymError

    try:
        from hiergym.rewards.prm import (
            ProcessRewardModel,
            step_auroc,
            train_prm,
            training_examples,
        )
    except ImportError as e:  # torch or transformers missing
        raise HiergymError(
            f"train-prm needs the llm extra (pip install 'hiergym[llm]'): {e}"
        ) from e
    rows = list(load_dataset(args.dir)["rows"].values())
    train = [r for r in rows if r["split"] == args.train_split]
    held = [r for r in rows if r["split"] == args.eval_split]
    if not train:
        splits = sorted({r["split"] for r in rows})
        raise HiergymError(f"no rows of split {args.train_split!r} in {args.dir} (it has {splits})")
    prm = train_prm(train, epochs=args.epochs, seed=args.seed)
    path = prm.save(args.out)
    report = {"train_rows": len(train), "saved": str(path)}
    if held and any(s["bad"] for r in held for s in r["step_labels"]):
        import numpy as np

        # the same examples train_prm saw, so the baseline has the trained model's vocabulary
        texts = [e.text for e in training_examples(train, np.random.default_rng(args.seed))]
        untrained = ProcessRewardModel.untrained(texts, seed=args.seed)
        report |= {
            "eval_split": args.eval_split,
            "eval_rows": len(held),
            "step_auroc_untrained": round(step_auroc(untrained, held), 4),
            "step_auroc": round(step_auroc(prm, held), 4),
        }
    if args.json:
        json.dump(report, sys.stdout, sort_keys=True)
        print()
    else:
        line = f"prm: trained on {len(train)} {args.train_split} rows -> {path}"
        if "step_auroc" in report:
            line += (
                f"; step AUROC on {args.eval_split}: {report['step_auroc']:.3f} "
                f"(untrained {report['step_auroc_untrained']:.3f})"
            )
        print(line)
        print(f"score it: hiergym rm-bench eval {args.dir} --judge prm:{path}")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rm-bench",
        help="build a reward-model benchmark from exact verdicts, or score a judge on it",
    )
    psub = p.add_subparsers(dest="rm_command", required=True)
    b = psub.add_parser(
        "build", help="play oracle, twin, mutant and attack episodes into a dataset"
    )
    b.add_argument("--envs", default=None, help="comma-separated env ids (default: every env)")
    b.add_argument("--out", required=True, help="the dataset folder to write")
    b.add_argument("--tasks-per-split", type=int, default=2)
    b.add_argument("--splits", default="train,dev,test")
    b.add_argument("--difficulty", default=None, help="the difficulty (default: the env's)")
    b.add_argument("--seed", type=int, default=0)
    b.set_defaults(fn=_build)
    e = psub.add_parser("eval", help="score a judge on a built dataset")
    e.add_argument("dir", help="a folder written by rm-bench build")
    e.add_argument(
        "--judge",
        required=True,
        help="verifier, random[:SEED], python:MODULE:NAME, openai:MODEL@URL, hf:PATH or prm:PATH",
    )
    e.add_argument("--mode", choices=["pointwise", "pairwise"], default="pointwise")
    e.add_argument("--splits", default=None, help="comma-separated splits (default: all)")
    e.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples for the CIs")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", default=None, help="also write metrics.json and levels.png here")
    e.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    e.set_defaults(fn=_eval)
    t = psub.add_parser("train-prm", help="train a process reward model on a dataset's step labels")
    t.add_argument("dir", help="a folder written by rm-bench build")
    t.add_argument("--out", required=True, help="the model folder to write (load it as prm:PATH)")
    t.add_argument("--train-split", default="train")
    t.add_argument("--eval-split", default="test", help="held-out split for the step AUROC")
    t.add_argument("--epochs", type=int, default=4)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--json", action="store_true", help="print the report as one JSON object")
    t.set_defaults(fn=_train_prm)
