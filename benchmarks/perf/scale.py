"""Scale: N envs of every domain alive at once, in one process and across worker processes.

``python -m hiergym.benchmarks.perf scale [--quick]``: N = 64 envs per available domain (4 with
``--quick``) are made and kept alive together; then each plays oracle and random episodes in
turn, round-robin over every env, until a time budget runs out (so the run stays bounded; the
figures say how many episodes fit). Reported: RSS and PSS per env (what making the envs added,
this process and the processes it started together), the processes started (Geometry python
workers, toolchains), episodes/s, and the peak memory of the whole process tree and of its
child processes (toolchains and workers running at once), sampled every 0.1 s. The same again
across ``WORKERS`` processes (each holds N / WORKERS envs of every domain).

Target (issue 12): every domain x 64 envs together within 8 GB (the tree's peak PSS).
Memory figures read ``/proc`` (Linux); elsewhere they are absent.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

N_ENVS = 64
QUICK_ENVS = 4
WORKERS = 2
EPISODE_BUDGET_S = 150.0
QUICK_BUDGET_S = 30.0
MiB = 1024 * 1024


# ---- memory of a process tree (Linux /proc) ------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def descendants(pid: int) -> list[int]:
    found, stack = [], _children(pid)
    while stack:
        child = stack.pop()
        found.append(child)
        stack += _children(child)
    return found


def _rollup(pid: int) -> tuple[int, int]:
    """(RSS, PSS) of one process in bytes; (0, 0) when it is gone or unreadable."""
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1]) * 1024
    except OSError:
        pass
    return rss, pss


def tree_memory(pid: int) -> dict[str, int]:
    """RSS/PSS of ``pid`` and of all its descendants, and how many descendants there are."""
    own = _rollup(pid)
    kids = [_rollup(c) for c in descendants(pid)]
    return {
        "rss": own[0],
        "pss": own[1],
        "children": len(kids),
        "children_rss": sum(k[0] for k in kids),
        "children_pss": sum(k[1] for k in kids),
    }


class PeakSampler:
    """Samples :func:`tree_memory` of a pid in a thread; keeps the peaks."""

    def __init__(self, pid: int, every_s: float = 0.1) -> None:
        self.pid, self.every_s = pid, every_s
        self.peak_tree_pss = self.peak_children_pss = self.peak_children = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            m = tree_memory(self.pid)
            self.peak_tree_pss = max(self.peak_tree_pss, m["pss"] + m["children_pss"])
            self.peak_children_pss = max(self.peak_children_pss, m["children_pss"])
            self.peak_children = max(self.peak_children, m["children"])
            self._stop.wait(self.every_s)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# ---- envs and episodes ---------------------------------------------------------------------


def env_ids() -> tuple[list[str], list[str]]:
    """(available env ids, ids skipped with the reason)."""
    import hiergym
    from hiergym.envs.registry import missing_data

    ok, skipped = [], []
    for entry in hiergym.list_envs():
        reason = missing_data(entry.env_id)
        if reason:
            skipped.append(f"{entry.env_id}: {reason}")
        else:
            ok.append(entry.env_id)
    return ok, skipped


def make_envs(ids: Sequence[str], n: int) -> list[tuple[str, Any]]:
    import gymnasium as gym

    # interleaved by domain, so a round-robin cut short by its time budget has played every one
    return [
        (env_id, gym.make(env_id, split="test", difficulty=("easy", "medium", "hard")[i % 3]))
        for i in range(n)
        for env_id in ids
    ]


def play_round_robin(envs: list[tuple[str, Any]], budget_s: float, first_seed: int = 0) -> int:
    """Oracle and random episodes, one per env in turn (each env alternates the two agents),
    until ``budget_s`` has passed; returns the episodes played."""
    from hiergym.agents import load

    agents = {name: load(name) for name in ("oracle", "random")}
    deadline = time.monotonic() + budget_s
    episodes = 0
    while True:
        for i, (_, env) in enumerate(envs):
            if time.monotonic() >= deadline:
                return episodes
            name = ("oracle", "random")[(episodes // max(1, len(envs))) % 2 ^ (i % 2)]
            agent = agents[name]
            seed = first_seed + episodes
            agent.bind(env)
            if hasattr(agent, "reset"):
                agent.reset(seed)
            obs, info = env.reset(seed=seed)
            done = False
            while not done:
                obs, _, terminated, truncated, info = env.step(agent.act(obs, info))
                done = terminated or truncated
            episodes += 1


def _close(envs: list[tuple[str, Any]]) -> None:
    for _, env in envs:
        env.close()


def _per_env(before: dict[str, int], after: dict[str, int], n: int) -> dict[str, float]:
    return {
        "rss_mib_per_env": (after["rss"] - before["rss"]) / n / MiB,
        "pss_mib_per_env": (after["pss"] - before["pss"]) / n / MiB,
        "tree_pss_mib_per_env": (
            (after["pss"] + after["children_pss"]) - (before["pss"] + before["children_pss"])
        )
        / n
        / MiB,
    }


def one_process(ids: Sequence[str], n: int, budget_s: float) -> dict[str, float]:
    pid = os.getpid()
    before = tree_memory(pid)
    start = time.perf_counter()
    envs = make_envs(ids, n)
    made_s = time.perf_counter() - start
    after = tree_memory(pid)
    figures: dict[str, float] = {
        "envs": len(envs),
        "make_s": made_s,
        **_per_env(before, after, len(envs)),
        "processes_after_make": after["children"],
    }
    with PeakSampler(pid) as peak:
        start = time.perf_counter()
        episodes = play_round_robin(envs, budget_s)
        played_s = time.perf_counter() - start
    figures |= {
        "episodes": episodes,
        "episodes_per_s": episodes / played_s,
        "peak_processes": peak.peak_children,
        "peak_tree_pss_mib": peak.peak_tree_pss / MiB,
        "peak_children_pss_mib": peak.peak_children_pss / MiB,
    }
    _close(envs)
    return figures


def _worker(ids: Sequence[str], n: int, budget_s: float, first_seed: int, conn: Any) -> None:
    envs = make_envs(ids, n)
    conn.send(("made", len(envs)))
    conn.recv()  # every worker holds its envs: play
    start = time.perf_counter()
    episodes = play_round_robin(envs, budget_s, first_seed)
    conn.send(("played", episodes, time.perf_counter() - start))
    _close(envs)


def worker_processes(ids: Sequence[str], n: int, budget_s: float) -> dict[str, float]:
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    pid = os.getpid()
    before = tree_memory(pid)
    per = max(1, n // WORKERS)
    pipes, procs = [], []
    with PeakSampler(pid) as peak:
        start = time.perf_counter()
        for w in range(WORKERS):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(ids, per, budget_s, w * 1_000_000, theirs))
            proc.start()
            pipes.append(ours)
            procs.append(proc)
        made = sum(p.recv()[1] for p in pipes)
        made_s = time.perf_counter() - start
        after = tree_memory(pid)
        for p in pipes:
            p.send("play")
        played = [p.recv() for p in pipes]
        for proc in procs:
            proc.join()
    episodes = sum(r[1] for r in played)
    return {
        "workers": WORKERS,
        "envs": made,
        "make_s": made_s,
        "tree_pss_mib_per_env": (
            (after["pss"] + after["children_pss"]) - (before["pss"] + before["children_pss"])
        )
        / made
        / MiB,
        "processes_after_make": after["children"],
        "episodes": episodes,
        "episodes_per_s": episodes / max(r[2] for r in played),
        "peak_processes": peak.peak_children,
        "peak_tree_pss_mib": peak.peak_tree_pss / MiB,
        "peak_children_pss_mib": peak.peak_children_pss / MiB,
    }


def run(argv: Sequence[str] = ()) -> dict[str, Any]:
    quick = "--quick" in argv
    n = QUICK_ENVS if quick else N_ENVS
    budget = QUICK_BUDGET_S if quick else EPISODE_BUDGET_S
    ids, skipped = env_ids()
    figures: dict[str, Any] = {
        "envs_per_domain": n,
        "domains": ids,
        "skipped": skipped,
        "episode_budget_s": budget,
        "linux_proc": Path("/proc/self/smaps_rollup").exists(),
    }
    one = one_process(ids, n, budget)
    figures |= {f"one_process_{k}": round(v, 3) for k, v in one.items()}
    many = worker_processes(ids, n, budget)
    figures |= {f"workers_{k}": round(v, 3) for k, v in many.items()}
    peak_gib = max(one["peak_tree_pss_mib"], many["peak_tree_pss_mib"]) / 1024
    figures["peak_tree_pss_gib"] = round(peak_gib, 3)
    figures["within_8_gib"] = peak_gib <= 8
    return figures
