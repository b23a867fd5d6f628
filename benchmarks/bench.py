"""Orchestration of a benchmark run: plan, run (in process, a process pool or Ray), resume, report.

Rows stream into ``episodes.jsonl`` as episodes finish, so a killed run loses at most the episodes
in flight; ``resume=True`` keeps every finished row and redoes the rest (error rows included).
Whatever executes the episodes, each row depends only on its EpisodeSpec, so a process-pool run and
a Ray run with the same seeds produce the same rows (timings aside).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from .report import write_outputs
from .runner import EpisodeRunner, EpisodeSpec, plan_episodes, read_rows, run_episodes

_WORKER: EpisodeRunner | None = None
TIMING_FIELDS = ("wall_s", "env_time_s", "traceback")


def _run_in_worker(
    spec: EpisodeSpec,
    agent_options: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run one episode in a worker process, reusing that worker's envs and agents."""
    global _WORKER
    if (
        _WORKER is None
        or _WORKER.agent_options != (agent_options or {})
        or _WORKER.env_kwargs != (env_kwargs or {})
    ):
        import hiergym  # noqa: F401 - registers the envs in a fresh worker
        from hiergym.envs.registry import shadowing_problem
        from hiergym.errors import PluginError

        problem = shadowing_problem()
        if problem:  # every episode would fail the same way: stop the run with the reason
            raise PluginError(problem)
        _WORKER = EpisodeRunner(agent_options, env_kwargs=env_kwargs)
    return _WORKER.run(spec)


def _pool_rows(
    todo: list[EpisodeSpec],
    workers: int,
    agent_options: dict[str, Any],
    env_kwargs: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
        chunk = max(1, len(todo) // (workers * 4))
        n = len(todo)
        yield from pool.map(
            _run_in_worker, todo, [agent_options] * n, [env_kwargs] * n, chunksize=chunk
        )


def _ray_rows(
    todo: list[EpisodeSpec],
    address: str,
    agent_options: dict[str, Any],
    env_kwargs: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    try:
        import ray
    except ImportError as e:
        from hiergym.errors import HiergymError

        raise HiergymError("--ray needs Ray: pip install 'hiergym[ray]'") from e
    started_here = not ray.is_initialized()
    if started_here:
        env_vars = {k: v for k, v in os.environ.items() if k.startswith(("HIERGYM_", "HF_"))}
        kwargs: dict[str, Any] = {
            "runtime_env": {"env_vars": env_vars},
            "include_dashboard": False,
            "log_to_driver": False,
        }
        if address:
            ray.init(address=address, **kwargs)
        else:
            ray.init(num_cpus=max(1, os.cpu_count() or 1), **kwargs)
    try:
        remote = ray.remote(_run_in_worker)
        pending = [remote.remote(spec, agent_options, env_kwargs) for spec in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def _live_view(progress: Any, rows: list[dict[str, Any]]) -> Any:
    from rich.console import Group
    from rich.table import Table

    table = Table(title="running results", show_edge=False)
    for col in ("env", "agent", "done", "mean reward", "success", "errors"):
        table.add_column(col)
    acc: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        acc[(r["env_id"], r["agent"])].append(r)
    for (env_id, agent), rs in sorted(acc.items()):
        ok = [r for r in rs if r.get("error") is None]
        mean = sum(r["reward"] for r in ok) / len(ok) if ok else float("nan")
        success = sum(r["success"] for r in ok) / len(ok) if ok else float("nan")
        table.add_row(
            env_id, agent, str(len(rs)), f"{mean:.3f}", f"{success:.0%}", str(len(rs) - len(ok))
        )
    return Group(progress, table)


def bench(
    env_ids: Sequence[str],
    agents: Sequence[str],
    *,
    episodes: int,
    out: Path,
    split: str = "test",
    difficulties: Sequence[str] = ("easy", "medium", "hard"),
    seed: int = 0,
    trials: int = 1,
    workers: int = 1,
    ray_address: str | None = None,
    resume: bool = False,
    show_progress: bool = True,
    agent_options: dict[str, Any] | None = None,
    on_row: Callable[[dict[str, Any]], None] | None = None,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run every (env, difficulty, agent, episode, trial); write episodes.jsonl, summary.json,
    report.md and funnel PNGs into ``out``; return the summary.

    ``ray_address``: ``None`` runs locally (``workers`` processes); ``""`` starts a local Ray
    instance; anything else connects to that Ray cluster.
    """
    out.mkdir(parents=True, exist_ok=True)
    path = out / "episodes.jsonl"
    agent_options = dict(agent_options or {})
    env_kwargs = dict(env_kwargs or {})
    specs = plan_episodes(env_ids, agents, episodes, split, difficulties, seed, trials)
    wanted = {s.key for s in specs}
    kept = (
        [r for r in read_rows(path) if r.get("key") in wanted and r.get("error") is None]
        if resume
        else []
    )
    path.write_text("".join(json.dumps(r) + "\n" for r in kept))  # drops torn lines and error rows
    transcripts = out / "transcripts.jsonl"
    if not resume:
        transcripts.write_text("")
    done = {r["key"] for r in kept}
    todo = [s for s in specs if s.key not in done]

    from rich.live import Live
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    progress = Progress(
        TextColumn("episodes"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn()
    )
    task = progress.add_task("episodes", total=len(todo))
    seen: list[dict[str, Any]] = list(kept)
    last_flush = [time.monotonic()]
    with (
        path.open("a") as sink,
        transcripts.open("a") as transcript_sink,
        (
            Live(_live_view(progress, seen), refresh_per_second=4, transient=True)
            if show_progress
            else contextlib.nullcontext()
        ) as live,
    ):

        def record(row: dict[str, Any]) -> None:
            transcript = row.pop("transcript", None)
            if transcript is not None:  # kept apart: rows stay small, transcripts can be read
                transcript_sink.write(
                    json.dumps({"key": row["key"], **transcript}, default=str) + "\n"
                )
            sink.write(json.dumps(row) + "\n")
            now = time.monotonic()
            if now - last_flush[0] > 0.5:  # a killed run loses at most half a second of rows
                sink.flush()
                transcript_sink.flush()
                last_flush[0] = now
            seen.append(row)
            progress.advance(task)
            if show_progress:
                live.update(_live_view(progress, seen))
            if on_row is not None:
                on_row(row)

        if ray_address is not None:
            for row in _ray_rows(todo, ray_address, agent_options, env_kwargs):
                record(row)
        elif workers > 1 and len(todo) > 1:
            for row in _pool_rows(todo, workers, agent_options, env_kwargs):
                record(row)
        else:
            run_episodes(todo, record, agent_options, env_kwargs)

    order = {s.key: i for i, s in enumerate(specs)}
    latest = {r["key"]: r for r in read_rows(path) if r.get("key") in wanted}
    rows = sorted(latest.values(), key=lambda r: order[r["key"]])
    path.write_text(
        "".join(json.dumps(r) + "\n" for r in rows)
    )  # spec order, whatever finished first
    config = {
        "envs": list(env_ids),
        "agents": list(agents),
        "episodes": episodes,
        "trials": trials,
        "split": split,
        "difficulties": list(difficulties),
        "seed": seed,
        "workers": workers,
        "ray": ray_address,
        "agent_options": agent_options,
        "env_kwargs": env_kwargs,
    }
    return write_outputs(rows, out, config)


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its timings: equal across executors for the same spec."""
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}
