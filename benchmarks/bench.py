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
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .runner import EpisodeRunner, EpisodeSpec, plan_episodes, read_rows, run_episodes

_WORKER: EpisodeRunner | None = None
TIMING_FIELDS = ("wall_s", "env_time_s", "traceback")


@dataclass(frozen=True)
class Finished:
    """One episode's outputs, serialised in the process that ran it (a bench worker, or this one
    with one worker), so the parent only writes them: the row as its episodes.jsonl line, the
    transcript as its transcripts.jsonl line (``None``: the episode has none) and its report.html
    page, packed as :func:`.html_report.build_payload` packs it from those two lines (``None``:
    made at report time)."""

    key: str
    line: str
    transcript: str | None = None
    page: str | None = None


def finish(row: dict[str, Any], run: str | None = None) -> Finished:
    """``row``'s outputs; ``run``: the name report.html gives the run (its page is made only
    then). The page is made from the lines read back, so it is the one report time would make."""
    transcript = row.pop("transcript", None)
    line = json.dumps(row)
    if transcript is None:
        return Finished(row["key"], line)
    record = json.dumps({"key": row["key"], **transcript}, default=str)
    if run is None:
        return Finished(row["key"], line, record)
    from hiergym.envs.tools import loads

    from .html_report import episode_page, pack

    page = pack(episode_page({**loads(line), "run": run}, loads(record)))
    return Finished(row["key"], line, record, page)


def _run_in_worker(
    spec: EpisodeSpec,
    agent_options: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    run: str | None = None,
) -> Finished:
    """Run one episode in a worker process, reusing that worker's envs and agents; ``run``: the
    report's name of the run (see :func:`finish`)."""
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
    return finish(_WORKER.run(spec), run)


def _worker_main(
    worker: int,
    conn: Any,
    agent_options: dict[str, Any],
    env_kwargs: dict[str, Any],
    environ: dict[str, str] | None = None,
    cwd: str | None = None,
    run: str | None = None,
) -> None:
    """One bench worker: runs the chunks it receives on ``conn`` with one EpisodeRunner (its envs
    and agents live as long as the worker), answering ``("row", finished)`` per episode and
    ``("done", None)`` per chunk; ``("pngs", (summary, out, env_ids))`` draws those envs' funnel
    PNGs, answered ``("pngs", names)``; ``None`` ends it. ``environ`` and ``cwd`` are the
    parent's at the start of the run (a forkserver was started earlier, perhaps with other
    ones)."""
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
            if chunk == ("idle", None):  # no episode left for it: ready the PNGs' imports
                with contextlib.suppress(ImportError):
                    import matplotlib.backends.backend_agg  # noqa: F401
                    import matplotlib.figure  # noqa: F401
                continue
            if isinstance(chunk, tuple):  # ("pngs", ...): the run's end
                from .plots import funnel_pngs

                summary, out, env_ids = chunk[1]
                conn.send(("pngs", funnel_pngs(summary, Path(out), env_ids)))
                continue
            for spec in chunk:
                conn.send(("row", _run_in_worker(spec, agent_options, env_kwargs, run)))
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
    and the work still spreads over every worker. Chunks shrink as the run nears its end (at most
    8 episodes, at most a quarter of each worker's share of what is left), so no worker is left
    alone with a long last chunk while the others idle."""

    def __init__(self, todo: Sequence[EpisodeSpec], workers: int) -> None:
        self.left: dict[tuple[str, str, str], list[EpisodeSpec]] = defaultdict(list)
        for spec in todo:
            self.left[_group(spec)].append(spec)
        self.remaining = len(todo)
        self.workers = max(1, workers)
        self.on: dict[int, tuple[str, str, str] | None] = {}

    def next(self, worker: int) -> list[EpisodeSpec] | None:
        current = self.on.get(worker)
        if current is not None and self.left.get(current):
            return self._take(worker, current)
        busy = {g for w, g in self.on.items() if w != worker}
        free = [g for g, specs in self.left.items() if specs and g not in busy]
        rest = free or [g for g, specs in self.left.items() if specs]
        if not rest:
            self.on[worker] = None
            return None
        return self._take(worker, max(rest, key=lambda g: len(self.left[g])))

    def _take(self, worker: int, group: tuple[str, str, str]) -> list[EpisodeSpec]:
        self.on[worker] = group
        size = max(1, min(8, self.remaining // (self.workers * 4)))
        chunk, self.left[group] = self.left[group][:size], self.left[group][size:]
        self.remaining -= len(chunk)
        return chunk


_WARM_PARENT: list[int] = []
"""The pid of the process :func:`start_workers_early` readied as the next run's workers' parent
(the next pool takes it: later runs in the same process start their workers as before)."""


def _start_method() -> str:
    """How bench workers start: ``fork`` from this process where it was readied for that by
    :func:`start_workers_early` (the CLI, on Linux) and still runs a single thread, so workers
    inherit its imports instead of paying for them again; else ``forkserver`` where the platform
    has it (workers fork from a server that imported hiergym once, never from a caller's process,
    whose threads and connections a fork would copy); ``spawn`` elsewhere."""
    methods = multiprocessing.get_all_start_methods()
    if os.getpid() in _WARM_PARENT and "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


PRELOAD = [
    "hiergym",
    "hiergym.benchmarks.runner",
    "hiergym.benchmarks.bench",
    "hiergym.benchmarks.html_report",
    "hiergym.agents",
]
"""Modules the workers' parent imports before it forks workers (the envs' own modules are added)."""


def _preload(env_ids: Sequence[str]) -> list[str]:
    from hiergym.envs.registry import _ENVS

    modules = list(PRELOAD)
    for env_id in dict.fromkeys(env_ids):
        entry = _ENVS.get(env_id)
        if entry is not None:
            modules.append(entry.env_class.partition(":")[0])
    return modules


def start_workers_early(env_ids: Sequence[str]) -> None:
    """Ready the parent of this run's bench workers now, before the caller's own start-up goes on.

    On Linux this process becomes the parent: it imports what the workers need (the CLI's checks
    import every env module anyway) and the workers fork from it, so a run pays for its imports
    once, and its first episodes start as soon as the checks end instead of when a second
    interpreter has imported everything again (1.3 s of CPU on 2 cores). An env class's
    ``warm_parent()`` starts here what its envs' forks share (Geometry: its python zygote, so the
    workers share one). For the CLI only, which starts no thread and opens no sandbox before its
    workers; it holds for the next run only, and a process that starts a thread in between gets a
    forkserver after all (:func:`_start_method`).
    Elsewhere the forkserver starts now with its imports, in parallel with the caller. Nothing
    where workers are spawned."""
    methods = multiprocessing.get_all_start_methods()
    if sys.platform == "linux" and "fork" in methods:
        import importlib

        from hiergym.envs.registry import _ENVS, load_class
        from hiergym.errors import PluginError

        for module in PRELOAD:
            importlib.import_module(module)
        for env_id in dict.fromkeys(env_ids):  # each env's module, and what its forks share
            entry = _ENVS.get(env_id)
            try:
                env_class = load_class(entry.env_class) if entry is not None else None
            except PluginError:
                continue  # a broken plugin: the caller's checks say so, with the reason
            warm = getattr(env_class, "warm_parent", None)
            if warm is not None:
                warm()  # Geometry: its python zygote
        _WARM_PARENT[:] = [os.getpid()]
        return
    if "forkserver" not in methods:
        return
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_preload(env_ids))
    forkserver.ensure_running()


class _Pool:
    """``workers`` long-lived bench processes, each with its own pipe, so one that dies takes no
    lock with it: its unfinished episodes become error rows and the others go on. They stay up
    after the last episode to draw the report's funnel PNGs (:meth:`draw_pngs`) while this
    process builds report.html; :meth:`close` ends them."""

    def __init__(
        self,
        todo: list[EpisodeSpec],
        workers: int,
        agent_options: dict[str, Any],
        env_kwargs: dict[str, Any],
        run: str | None = None,
    ) -> None:
        method = _start_method()
        _WARM_PARENT.clear()  # for this run only
        ctx = multiprocessing.get_context(method)
        if method == "forkserver":
            ctx.set_forkserver_preload(_preload([s.env_id for s in todo]))
        self.todo = todo
        self.conns: list[Any] = []
        self.procs: list[Any] = []
        self.dead: set[int] = set()
        try:
            for w in range(min(workers, len(todo))):
                ours, theirs = ctx.Pipe()
                proc = ctx.Process(
                    target=_worker_main,
                    args=(
                        w,
                        theirs,
                        agent_options,
                        env_kwargs,
                        dict(os.environ),
                        os.getcwd(),
                        run,
                    ),
                    daemon=True,
                    name=f"hiergym-bench-{w}",
                )
                proc.start()
                theirs.close()
                self.conns.append(ours)
                self.procs.append(proc)
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> _Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _died(self, w: int) -> str:
        self.dead.add(w)
        self.procs[w].join(timeout=5)
        return f"the bench worker died (exit code {self.procs[w].exitcode})"

    def rows(self) -> Iterator[Finished]:
        """The episodes' outputs as they finish (the caller puts them in plan order)."""
        from multiprocessing.connection import wait

        chunks = _Chunks(self.todo, len(self.conns))
        pending: dict[int, list[EpisodeSpec]] = {}

        def hand_out(w: int) -> None:
            chunk = chunks.next(w)
            if chunk is None:
                pending.pop(w, None)  # idle until the PNGs or the end
                with contextlib.suppress(OSError):
                    self.conns[w].send(("idle", None))
                return
            pending[w] = list(chunk)
            with contextlib.suppress(OSError):  # a dead worker: its pipe says so next
                self.conns[w].send(chunk)

        for w in range(len(self.conns)):
            hand_out(w)
        while pending:
            by_conn = {self.conns[w]: w for w in pending}
            for conn in wait(list(by_conn)):
                w = by_conn[conn]
                try:
                    kind, payload = conn.recv()
                except (EOFError, OSError):
                    reason = self._died(w)
                    for spec in pending.pop(w):
                        yield finish(_lost_row(spec, reason))
                    continue
                if kind == "row":
                    pending[w] = [s for s in pending[w] if s.key != payload.key]
                    yield payload
                elif kind == "done":
                    hand_out(w)
                else:  # fatal: every episode would fail the same way
                    from hiergym.errors import PluginError

                    raise PluginError(payload)
        # left only when every worker died: say so for each episode
        while (chunk := chunks.next(-1)) is not None:
            for spec in chunk:
                yield finish(_lost_row(spec, "no bench worker left alive"))

    def draw_pngs(self, summary: dict[str, Any], out: Path) -> Callable[[], dict[str, str]]:
        """Start drawing the funnel PNGs of ``summary``'s envs, shared among the live workers;
        returns what waits for their names (what a worker did not draw is drawn here then)."""
        from .plots import funnel_pngs

        env_ids = sorted({g["env_id"] for g in summary["groups"]})
        live = [w for w in range(len(self.conns)) if w not in self.dead]
        asked: dict[int, list[str]] = {}
        for i, w in enumerate(live):
            share = env_ids[i :: len(live)]
            if not share:
                continue
            try:
                self.conns[w].send(("pngs", (summary, str(out), share)))
            except OSError:
                continue
            asked[w] = share

        def wait() -> dict[str, str]:
            names: dict[str, str] = {}
            failed = [e for e in env_ids if not any(e in share for share in asked.values())]
            for w, share in asked.items():
                try:
                    kind, payload = self.conns[w].recv()
                except (EOFError, OSError):
                    self._died(w)
                    kind, payload = "died", None
                if kind == "pngs":
                    names.update(payload)
                else:  # died or failed: this process draws its share
                    failed += share
            if failed:
                names.update(funnel_pngs(summary, out, failed))
            return {e: names[e] for e in env_ids if e in names}

        return wait

    def close(self) -> None:
        for conn in self.conns:
            with contextlib.suppress(OSError):
                conn.send(None)
        for proc in self.procs:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        for conn in self.conns:
            conn.close()
        self.conns, self.procs = [], []


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
    run: str | None = None,
) -> Iterator[Finished]:
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
        pending = [remote.remote(spec, agent_options, env_kwargs, run) for spec in todo]
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            yield ray.get(done[0])
    finally:
        if started_here:
            ray.shutdown()


def _live_view(progress: Any, rows: Iterable[dict[str, Any]]) -> Any:
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
    from hiergym.envs.tools import loads

    from .html_report import default_run
    from .report import write_outputs

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
    lines = {r["key"]: json.dumps(r) for r in kept}  # key -> its row's line; a redo replaces it
    latest = {r["key"]: r for r in kept}
    path.write_text("".join(line + "\n" for line in lines.values()))  # drops torn and error rows
    transcripts = out / "transcripts.jsonl"
    if not resume:
        transcripts.write_text("")
    todo = [s for s in specs if s.key not in latest]
    run = default_run(out)  # report.html's name of this run: the pages made as episodes end
    pages: dict[str, str] = {}

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
    order = {s.key: i for i, s in enumerate(specs)}
    spans: list[tuple[int, int, int]] = []  # (plan position, start, length) of this run's lines
    last_flush = [time.monotonic()]
    parallel = ray_address is not None or (workers > 1 and len(todo) > 1)
    pool = (
        _Pool(todo, workers, agent_options, env_kwargs, run)
        if ray_address is None and parallel
        else None
    )
    with contextlib.ExitStack() as stack:
        if pool is not None:
            stack.enter_context(pool)  # its workers draw the PNGs, then end
        with (
            path.open("a") as sink,
            transcripts.open("ab") as transcript_sink,
            (
                Live(_live_view(progress, latest.values()), refresh_per_second=4, transient=True)
                if show_progress
                else contextlib.nullcontext()
            ) as live,
        ):
            transcripts_from = transcript_sink.tell()
            written = [transcripts_from]

            def record(done: Finished) -> None:
                row = loads(done.line)
                if done.transcript is not None:  # kept apart: rows stay small
                    data = (done.transcript + "\n").encode()
                    transcript_sink.write(data)
                    spans.append((order[done.key], written[0], len(data)))
                    written[0] += len(data)
                    if done.page is not None:
                        pages[done.key] = done.page
                sink.write(done.line + "\n")
                lines[done.key] = done.line
                latest[done.key] = row
                now = time.monotonic()
                if now - last_flush[0] > 0.5:  # a killed run loses at most half a second of rows
                    sink.flush()
                    transcript_sink.flush()
                    last_flush[0] = now
                progress.advance(task)
                if show_progress:
                    live.update(_live_view(progress, latest.values()))
                if on_row is not None:
                    on_row(row)

            if ray_address is not None:
                for done in _ray_rows(todo, ray_address, agent_options, env_kwargs, run):
                    record(done)
            elif pool is not None:
                for done in pool.rows():
                    record(done)
            else:
                run_episodes(todo, lambda row: record(finish(row, run)), agent_options, env_kwargs)

        if parallel:  # episodes finish out of order: this run's transcripts in plan order
            _sort_tail(transcripts, transcripts_from, spans)
        keys = sorted(latest, key=order.__getitem__)
        rows = [latest[k] for k in keys]
        path.write_text("".join(lines[k] + "\n" for k in keys))  # spec order
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
        return write_outputs(
            rows,
            out,
            config,
            pages=pages,
            draw_pngs=pool.draw_pngs if pool is not None else None,
        )


def _sort_tail(path: Path, offset: int, spans: Sequence[tuple[int, int, int]]) -> None:
    """Put the lines of ``path`` past ``offset`` in plan order: ``spans`` are (plan position,
    start, length) of each line written there, in the order written."""
    with path.open("rb+") as f:
        f.seek(offset)
        tail = f.read()
        ordered = sorted(spans, key=lambda span: span[0])  # stable: equal keys keep their order
        f.seek(offset)
        f.write(b"".join(tail[start - offset : start - offset + n] for _, start, n in ordered))
        f.truncate()


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without its timings: equal across executors for the same spec."""
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}
