"""Orchestration of a benchmark run: plan, run (in-process or a process pool), resume, summarize."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .report import summarize
from .runner import EpisodeRunner, EpisodeSpec, plan_episodes, read_rows, run_episodes

_WORKER: EpisodeRunner | None = None


def _run_in_worker(spec: EpisodeSpec) -> dict[str, Any]:
    global _WORKER
    if _WORKER is None:
        import hiergym  # noqa: F401 - registers the envs in a fresh worker

        _WORKER = EpisodeRunner()
    return _WORKER.run(spec)


def bench(
    env_ids: Sequence[str],
    agents: Sequence[str],
    *,
    episodes: int,
    out: Path,
    split: str = "test",
    difficulties: Sequence[str] = ("easy", "medium", "hard"),
    seed: int = 0,
    workers: int = 1,
    resume: bool = False,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Run every (env, difficulty, agent, episode) and write ``episodes.jsonl`` and ``summary.json``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "episodes.jsonl"
    specs = plan_episodes(env_ids, agents, episodes, split, difficulties, seed)
    wanted = {s.key for s in specs}
    if resume:
        done = {
            r["key"] for r in read_rows(path) if r.get("error") is None and r.get("key") in wanted
        }
        rows = [r for r in read_rows(path) if r.get("key") in done]
        path.write_text(
            "".join(json.dumps(r) + "\n" for r in rows)
        )  # drop torn lines and error rows
    else:
        done = set()
        path.write_text("")
    todo = [s for s in specs if s.key not in done]

    from rich.progress import Progress

    with path.open("a") as sink, Progress(disable=not show_progress, transient=True) as progress:
        task = progress.add_task("episodes", total=len(todo))

        def record(row: dict[str, Any]) -> None:
            sink.write(json.dumps(row) + "\n")
            sink.flush()
            progress.advance(task)

        if workers <= 1:
            run_episodes(todo, record)
        else:
            ctx = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
                for row in pool.map(
                    _run_in_worker, todo, chunksize=max(1, len(todo) // (workers * 4))
                ):
                    record(row)

    order = {s.key: i for i, s in enumerate(specs)}
    rows = sorted(
        (r for r in read_rows(path) if r.get("key") in wanted), key=lambda r: order[r["key"]]
    )
    summary = summarize(rows)
    summary["config"] = {
        "envs": list(env_ids),
        "agents": list(agents),
        "episodes": episodes,
        "split": split,
        "difficulties": list(difficulties),
        "seed": seed,
        "workers": workers,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
