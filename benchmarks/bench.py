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


def _worker_main(
    worker: int,
    conn: Any,
    agent_options: dict[str, Any],
    env_kwargs: dict[str, Any],
    environ: dict[str, str] | None = None,
    cwd: str | None = None,
) -> None:
    """One bench worker: runs the chunks it receives on ``conn`` with one EpisodeRunner (its envs
    and agents live as long as the worker), answering ``("row", row)`` per episode and
    ``("done", None)`` per chunk; ``None`` ends it. ``environ`` and ``cwd`` are the parent's at
    the start of the run (a forkserver was started earlier, perhaps with other ones)."""
    if environ is not None:
        for key in set(os.environ) - set(environ):
            del os.environ[key]
        os.environ.update(environ)
    if cwd is not None:
        os.chdir(cwd)
    try:
        while True:
            chunk = conn.recv()
            if chunk is None:
                break
            for spec in chunk:
                conn.send(("row", _run_in_worker(spec, agent_options, env_kwargs)))
            conn.send(("done", None))
    except Exception as e:  # a set-up failure (a shadowed package) stops the run
        with contextlib.suppress(Exception):
            conn.send(("fatal", f"{type(e).__name__}: {e}"))
    finally:
        if _WORKER is not None:
            _WORKER.close()


def _group(spec: EpisodeSpec) -> tuple[str, str, str]:
    """Episodes of one group share one env in a worker."""
    return (spec.env_id, spec.split, spec.difficulty)


class _Chunks:
    """The episodes to run, cut into chunks that each hold episodes of one env, handed out with
    affinity: a worker gets more of the env it already made while any is left, else the group
    with the most episodes that no worker is on, so envs are made once per worker that needs them
    and the work still spreads over every worker."""

    def __init__(self, todo: Sequence[EpisodeSpec], workers: int) -> None:
        groups: dict[tuple[str, str, str], list[EpisodeSpec]] = defaultdict(list)
        for spec in todo:
            groups[_group(spec)].append(spec)
        # chunks small enough to balance the tail, large enough to keep messages few
        size = max(1, min(8, len(todo) // (workers * 4) or 1))
        self.left: dict[tuple[str, str, str], list[list[EpisodeSpec]]] = {
            g: [specs[i : i + size] for i in range(0, len(specs), size)]
            for g, specs in groups.items()
        }
        self.on: dict[int, tuple[str, str, str] | None] = {}

    def next(self, worker: int) -> list[EpisodeSpec] | None:
        current = self.on.get(worker)
        if current is not None and self.left.get(current):
            return self._take(worker, current)
        busy = {g for w, g in self.on.items() if w != worker}
        free = [g for g, chunks in self.left.items() if chunks and g not in busy]
        rest = free or [g for g, chunks in self.left.items() if chunks]
        if not rest:
            self.on[worker] = None
            return None
        return self._take(worker, max(rest, key=lambda g: sum(map(len, self.left[g]))))

    def _take(self, worker: int, group: tuple[str, str, str]) -> list[EpisodeSpec]:
        self.on[worker] = group
        return self.left[group].pop(0)


def _start_method() -> str:
    """forkserver where the platform has it (workers fork from a server that imported hiergym
    once, never from this process, whose threads and connections a fork would copy); spawn
    elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    return "forkserver" if "forkserver" in methods else "spawn"


PRELOAD = ["hiergym", "hiergym.benchmarks.runner", "hiergym.agents"]
"""Modules the forkserver imports before it forks workers (the envs' own modules are added)."""


def _preload(todo: Sequence[EpisodeSpec]) -> list[str]:
    from hiergym.envs.registry import _ENVS

    modules = list(PRELOAD)
    for env_id in dict.fromkeys(s.env_id for s in todo):
        entry = _ENVS.get(env_id)
        if entry is not None:
            modules.append(entry.env_class.partition(":")[0])
    return modules


def _pool_rows(
    todo: list[EpisodeSpec],
    workers: int,
    agent_options: dict[str, Any],
    env_kwargs: dict[str, Any],
) -> Iterator[dict[str, Any]]:
    """Rows of ``todo`` run by ``workers`` long-lived processes, as they finish (the caller puts
    them in plan order). Each worker has its own pipe, so one that dies takes no lock with it:
    its unfinished episodes become error rows and the others go on."""
    from multiprocessing.connection import wait

    method = _start_method()
    ctx = multiprocessing.get_context(method)
    if method == "forkserver":
        ctx.set_forkserver_preload(_preload(todo))
    workers = min(workers, len(todo))
    conns, procs = [], []
    for w in range(workers):
        ours, theirs = ctx.Pipe()
        proc = ctx.Process(
            target=_worker_main,
            args=(w, theirs, agent_options, env_kwargs, dict(os.environ), os.getcwd()),
            daemon=True,
            name=f"hiergym-bench-{w}",
        )
        proc.start()
        theirs.close()
        conns.append(ours)
        procs.append(proc)
    chunks = _Chunks(todo, workers)
    pending: dict[int, list[EpisodeSpec]] = {}

    def hand_out(w: int) -> None:
        chunk = chunks.next(w)
        if chunk is None:
            pending.pop(w, None)
            with contextlib.suppress(OSError):
                conns[w].send(None)
        else:
            pending[w] = list(chunk)
            with contextlib.suppress(OSError):  # a dead worker: its pipe says so next
                conns[w].send(chunk)

    try:
        for w in range(workers):
            hand_out(w)
        while pending:
            by_conn = {conns[w]: w for w in pending}
            for conn in wait(list(by_conn)):
                w = by_conn[conn]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    procs[w].join(timeout=5)
                    reason = f"the bench worker died (exit code {procs[w].exitcode})"
                    for spec in pending.pop(w):
                        yield _lost_row(spec, reason)
                    continue
                if kind == "row":
                    pending[w] = [s for s in pending[w] if s.key != payload["key"]]
                    yield payload
                elif kind == "done":
                    hand_out(w)
                else:  # fatal: every episode would fail the same way
                    from hiergym.errors import PluginError

                    raise PluginError(payload)
        # left only when every worker died: say so for each episode
        while (chunk := chunks.next(-1)) is not None:
            for spec in chunk:
                yield _lost_row(spec, "no bench worker left alive")
    finally:
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in conns:
            conn.close()


def _lost_row(spec: EpisodeSpec, reason: str) -> dict[str, Any]:
    return {
        **spec.row(),
        "reward": None,
        "success": False,
        "verdict": None,
        "error": f"WorkerError: {reason}",
        "wall_s": 0.0,
    }


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
    transcripts_from: int | None = None
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
            transcripts_from = transcript_sink.tell()
            for row in _pool_rows(todo, workers, agent_options, env_kwargs):
                record(row)
        else:
            run_episodes(todo, record, agent_options, env_kwargs)

    order = {s.key: i for i, s in enumerate(specs)}
    if transcripts_from is not None:  # workers finish out of order: this run's part in plan order
        _sort_tail(transcripts, transcripts_from, order)
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


def _sort_tail(path: Path, offset: int, order: dict[str, int]) -> None:
    """Put the JSON lines of ``path`` past ``offset`` in plan order (by their ``key``)."""
    with path.open("rb+") as f:
        f.seek(offset)
        lines = f.read().splitlines(keepends=True)
        keyed = []
        for line in lines:
            try:
                key = json.loads(line).get("key")
            except (json.JSONDecodeError, AttributeError):
                key = None
            keyed.append((order.get(key, len(order)), line))
        keyed.sort(key=lambda kl: kl[0])  # stable: equal keys keep their order
        f.seek(offset)
        f.write(b"".join(line for _, line in keyed))
        f.truncate()


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its timings: equal across executors for the same spec."""
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}
