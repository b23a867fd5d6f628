"""``hiergym export RUN_DIR --format sft|preference|levels``: training data from a run."""

from __future__ import annotations

import argparse


def _run(args: argparse.Namespace) -> int:
    from hiergym.export import export

    out, n = export(args.run_dir, args.format, args.out, margin=args.margin)
    print(
        f"export: {n} {args.format} rows -> {out / (args.format + '.jsonl')}"
        + (f" and the dataset {out / args.format} (datasets.load_from_disk)" if n else "")
    )
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="training data from a bench or rollouts run: SFT, preference pairs, level labels",
        description=(
            "Write RUN_DIR's episodes as JSONL and a Hugging Face dataset: sft (successful "
            "episodes: messages + tool schemas), preference (pairs within a task's group), "
            "levels (per-level labels)."
        ),
    )
    p.add_argument(
        "run_dir", help="a hiergym bench output folder or a rollouts.collect(out=...) one"
    )
    p.add_argument("--format", required=True, choices=["sft", "preference", "levels"])
    p.add_argument("--out", default=None, help="output folder (default RUN_DIR/export)")
    p.add_argument(
        "--margin",
        type=float,
        default=0.0,
        help="preference: least reward difference for a pair (default 0: any difference)",
    )
    p.set_defaults(fn=_run)
