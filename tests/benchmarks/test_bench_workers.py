"""Parallel bench workers (issue 12): long-lived workers that keep their envs, episodes handed out
by env, the same rows in the same order as one worker, and a worker that dies costs only its
own unfinished episodes."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading

import pytest

from hiergym.benchmarks.bench import _Chunks, bench, comparable
from hiergym.benchmarks.runner import plan_episodes

from ..fake_openai import call, completion, fake_openai

ENVS = ["hiergym/Shopping-v0", "hiergym/Travel-v0"]


def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_two_workers_write_the_same_rows_and_transcripts_in_the_same_order(tmp_path):
    kwargs = {"episodes": 2, "difficulties": ["easy", "medium"], "show_progress": False}
    bench(ENVS, ["random", "oracle"], out=tmp_path / "one", workers=1, **kwargs)
    bench(ENVS, ["random", "oracle"], out=tmp_path / "two", workers=2, **kwargs)
    one, two = (
        _lines(tmp_path / "one" / "episodes.jsonl"),
        _lines(tmp_path / "two" / "episodes.jsonl"),
    )
    assert len(one) == 16 and [comparable(r) for r in one] == [comparable(r) for r in two]
    t1 = _lines(tmp_path / "one" / "transcripts.jsonl")
    t2 = _lines(tmp_path / "two" / "transcripts.jsonl")
    assert [t["key"] for t in t1] == [t["key"] for t in t2] == [r["key"] for r in one]
    assert t1 == t2


def test_chunks_keep_a_worker_on_its_env_and_hand_out_every_episode_once():
    todo = plan_episodes(ENVS, ["random", "oracle"], 5, "test", ["easy", "hard"])
    chunks = _Chunks(todo, 2)
    seen = {0: [], 1: []}
    first = {w: chunks.next(w) for w in (0, 1)}
    assert (
        first[0][0].env_id != first[1][0].env_id or first[0][0].difficulty != first[1][0].difficulty
    )
    for w, chunk in first.items():
        seen[w] += chunk
    switches = {0: 0, 1: 0}
    while True:
        progressed = False
        for w in (0, 1):
            chunk = chunks.next(w)
            if chunk is None:
                continue
            progressed = True
            groups = {(s.env_id, s.difficulty) for s in chunk}
            assert len(groups) == 1  # a chunk never mixes envs
            if groups != {(seen[w][-1].env_id, seen[w][-1].difficulty)}:
                switches[w] += 1
            seen[w] += chunk
        if not progressed:
            break
    handed = [s.key for w in seen for s in seen[w]]
    assert sorted(handed) == sorted(s.key for s in todo)  # each once
    n_groups = 4
    assert switches[0] + switches[1] <= n_groups  # a worker leaves an env only when it is done


def _bench_worker_of(port: int) -> int | None:
    """The bench worker whose TCP connection leaves from local ``port``."""
    import psutil

    for child in multiprocessing.active_children():
        if not child.name.startswith("hiergym-bench-"):
            continue
        proc = psutil.Process(child.pid)
        conns = getattr(proc, "net_connections", proc.connections)(kind="tcp")
        if any(c.laddr and c.laddr.port == port for c in conns):
            return child.pid
    return None


def test_a_worker_that_dies_costs_only_its_unfinished_episodes(tmp_path):
    """The model kills the worker that sent its third request while that worker waits for the
    reply, so the worker dies inside an episode, deterministically: that episode (its chunk is one
    episode) is lost, the other worker plays the rest."""
    lock, seen, killed = threading.Lock(), [], []

    def model(body, client):
        with lock:
            seen.append(client)
            kill = len(seen) == 3
        if kill:
            pid = _bench_worker_of(client[1])
            assert pid is not None, "no bench worker holds the connection"
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        if not any(m["role"] == "tool" for m in body["messages"]):
            return completion(tool_calls=[call("search", {"query": "mug"})])
        return completion(tool_calls=[call("submit", {"product_id": "B0NOSUCH00", "options": {}})])

    with fake_openai(model, with_client=True) as server:
        agent = f"openai:scripted@{server.url}"
        bench(
            ["hiergym/Shopping-v0"],
            [agent],
            episodes=4,
            difficulties=["easy", "medium"],
            out=tmp_path,
            workers=2,
            show_progress=False,
        )
    rows = _lines(tmp_path / "episodes.jsonl")
    planned = [
        s.key
        for s in plan_episodes(["hiergym/Shopping-v0"], [agent], 4, "test", ["easy", "medium"])
    ]
    assert len(killed) == 1 and [r["key"] for r in rows] == planned  # every episode has its row
    lost = [r for r in rows if r["error"]]
    assert len(lost) == 1 and lost[0]["error"].startswith("WorkerError: the bench worker died")
    assert all(r["error"] is None for r in rows if r is not lost[0])  # the other played the rest


def test_workers_see_the_environment_of_the_run_not_of_the_forkserver(tmp_path, monkeypatch):
    # The forkserver may have started in an earlier run with another HIERGYM_HOME.
    kwargs = {"episodes": 1, "difficulties": ["easy"], "show_progress": False, "workers": 2}
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], out=tmp_path / "first", **kwargs)
    home = tmp_path / "home"
    monkeypatch.setenv("HIERGYM_HOME", str(home))
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], out=tmp_path / "second", **kwargs)
    rows = _lines(tmp_path / "second" / "episodes.jsonl")
    assert all(r["error"] is None for r in rows)
    assert list(home.glob("shopping-*.sqlite"))  # the workers built their sandbox there


def _rebuilt_page(out):
    """report.html of the run in ``out`` made again from its files alone (as ``hiergym report``
    does), into a fresh folder."""
    from hiergym.benchmarks import html_report
    from hiergym.benchmarks.report import summarize
    from hiergym.benchmarks.runner import read_rows

    rows = read_rows(out / "episodes.jsonl")
    again = out.parent / f"{out.name}-again"
    again.mkdir()
    summary = summarize(rows)
    summary["config"] = json.loads((out / "summary.json").read_text())["config"]
    return html_report.write_html(summary, rows, again, [(out.name, out)])


def test_pages_made_by_the_workers_are_the_pages_report_time_makes(tmp_path):
    # Each episode's report.html page is made where the episode ran (a worker, or the bench's
    # own process with one worker), from its row's and transcript's lines; it must be the page
    # report time makes from the files, byte for byte, and every env still gets its PNG.
    from .test_html_report import payload_of

    kwargs = {"episodes": 2, "difficulties": ["easy", "medium"], "show_progress": False}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        summary = bench(ENVS, ["random", "oracle"], out=out, workers=workers, **kwargs)
        made = payload_of(out / "report.html")
        again = payload_of(_rebuilt_page(out))
        assert len(made["episodes"]) == 16
        assert made["episodes"] == again["episodes"] and made["index"] == again["index"]
        assert sorted(summary["funnel_pngs"]) == ENVS
        assert all((out / name).stat().st_size > 1000 for name in summary["funnel_pngs"].values())
    one, two = (payload_of(tmp_path / f"w{w}" / "report.html") for w in (1, 2))
    assert len(one["episodes"]) == len(two["episodes"])


def test_a_resumed_run_pages_the_kept_episodes_from_their_transcripts(tmp_path):
    kwargs = {"difficulties": ["easy"], "show_progress": False, "workers": 2, "out": tmp_path}
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], episodes=1, **kwargs)
    bench(["hiergym/Shopping-v0"], ["random", "oracle"], episodes=2, resume=True, **kwargs)
    from .test_html_report import payload_of

    made = payload_of(tmp_path / "report.html")
    assert len(made["episodes"]) == 4
    assert made["episodes"] == payload_of(_rebuilt_page(tmp_path))["episodes"]


def test_chunks_shrink_to_single_episodes_at_the_end():
    todo = plan_episodes(ENVS, ["random", "oracle"], 20, "test", ["easy", "hard"])
    chunks = _Chunks(todo, 2)
    sizes = []
    while (chunk := chunks.next(len(sizes) % 2)) is not None:
        sizes.append(len(chunk))
    assert sum(sizes) == len(todo) == 160
    assert sizes[0] == 8 and sizes[-4:] == [1, 1, 1, 1]  # no long last chunk for one worker


def test_the_pngs_of_a_worker_that_died_are_drawn_by_the_bench(tmp_path):
    from hiergym.benchmarks.bench import _Pool
    from hiergym.benchmarks.report import summarize

    summary = summarize(_lines(_a_run(tmp_path)))
    todo = plan_episodes(["hiergym/Shopping-v0"], ["random"], 2, "test", ["easy"])
    with _Pool(todo, 2, {}, {}) as pool:
        os.kill(pool.procs[0].pid, signal.SIGKILL)
        pool.procs[0].join(timeout=10)
        out = tmp_path / "pngs"
        out.mkdir()
        names = pool.draw_pngs(summary, out)()
    assert sorted(names) == ENVS and all((out / n).is_file() for n in names.values())


def _a_run(tmp_path):
    out = tmp_path / "run"
    kwargs = {"episodes": 1, "difficulties": ["easy"], "show_progress": False}
    bench(ENVS, ["random", "oracle"], out=out, **kwargs)
    return out / "episodes.jsonl"


_WARM_PARENT_RUN = """
import json, sys, threading
from multiprocessing import forkserver
from pathlib import Path
from hiergym.benchmarks.bench import bench, start_workers_early
if sys.argv[2] == "thread":  # a caller that started a thread after readying itself
    stop = threading.Event()
    threading.Thread(target=stop.wait, daemon=True).start()
start_workers_early(["hiergym/Shopping-v0"])
bench(["hiergym/Shopping-v0"], ["random", "oracle"], episodes=1, difficulties=["easy"],
      out=Path(sys.argv[1]), workers=2, show_progress=False)
print(json.dumps({"forkserver": forkserver._forkserver._forkserver_pid is not None}))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from a readied parent on Linux")
@pytest.mark.parametrize("caller", ["single-threaded", "thread"])
def test_workers_fork_from_a_readied_single_threaded_parent(tmp_path, caller):
    # The CLI readies its own process as the workers' parent (start_workers_early): workers
    # inherit its imports instead of a forkserver importing everything again. A process that
    # has started a thread since gets the forkserver (a fork would copy a thread's locks).
    out = tmp_path / caller
    done = subprocess.run(
        [sys.executable, "-c", _WARM_PARENT_RUN, str(out), caller],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    used = json.loads(done.stdout.strip().splitlines()[-1])
    assert used == {"forkserver": caller == "thread"}
    rows = _lines(out / "episodes.jsonl")
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    assert [r["reward"] for r in rows if r["agent"] == "oracle"] == [1.0]


_SHARED_ZYGOTE_RUN = """
import json, os, sys
from pathlib import Path
from hiergym.envs import execution
starts = []
start = execution.Zygote._start
def counted(self):  # inherited by every fork: a worker starting a zygote of its own shows here
    start(self)
    with open(sys.argv[2], "a") as f:
        f.write(f"{os.getpid()}\\n")
execution.Zygote._start = counted
from hiergym.benchmarks.bench import bench, start_workers_early
start_workers_early(["hiergym/Geometry-v0"])
bench(["hiergym/Geometry-v0"], ["oracle"], episodes=2, difficulties=["easy"],
      out=Path(sys.argv[1]), workers=2, show_progress=False)
print(os.getpid())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from a readied parent on Linux")
def test_geometry_workers_share_the_readied_parents_python_zygote(tmp_path):
    # start_workers_early starts Geometry's python zygote in the parent (warm_parent); both
    # workers then spawn their python workers from it: one zygote, not one per worker.
    log = tmp_path / "zygote-starts"
    done = subprocess.run(
        [sys.executable, "-c", _SHARED_ZYGOTE_RUN, str(tmp_path / "out"), str(log)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    parent = done.stdout.strip().splitlines()[-1]
    assert log.read_text().split() == [parent]
    rows = _lines(tmp_path / "out" / "episodes.jsonl")
    assert len(rows) == 2 and [r["reward"] for r in rows] == [1.0, 1.0]


_BROKEN_PLUGIN_EARLY = """
from hiergym.benchmarks import bench
from hiergym.envs.registry import register_domain
register_domain("hiergym/BrokenPlugin-v0", "hiergym_no_such_module.env:Env")
bench.start_workers_early(["hiergym/BrokenPlugin-v0", "hiergym/Shopping-v0"])
print(bench._start_method())
"""


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from a readied parent on Linux")
def test_readying_the_parent_leaves_a_broken_plugin_to_the_checks_after_it():
    # The CLI readies its process before its checks, which name a broken plugin with the reason:
    # readying must not fail first with a bare ImportError.
    done = subprocess.run(
        [sys.executable, "-c", _BROKEN_PLUGIN_EARLY], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-1] == "fork"
