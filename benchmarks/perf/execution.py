"""The shared execution layer (issue 12), before and after, measured in one run.

- ``worker_ready_*_ms``: from ``PythonRunner.start()`` to the answer of a first ``print(1)``, for
  a worker forked from the warm zygote and for one in a fresh interpreter (the previous design,
  still available as ``PythonRunner(zygote=False)``). Median; ``*_cpu_ms``: the CPU the worker's
  processes used to get there (load-independent; the wall figures grow with the machine's load
  average, also reported).
- ``envs64_*``: 64 Geometry envs made, reset and each answering one python call, from a cold start
  (the zygote's own import included): CPU seconds of this process and every process under it,
  and the PSS of the worker processes in all. The fresh-interpreter baseline runs
  ``HIERGYM_PERF_FRESH_ENVS`` envs (default 8: each costs ~45 MB and most of a CPU second) and is
  scaled to 64 (``envs64_fresh_*``; set the variable to 64 to measure it whole).
- ``process_20ms_*``: the cost of running ``sleep 0.02`` under the toolchain's limits, with the
  old wait (``Popen.wait(timeout)``, a doubling sleep loop) and the new one (a pidfd); the
  ratios are to the 20 ms the process takes.

Targets: worker ready <= 20 ms; 64 envs <= 3 s CPU and <= 1 GB PSS; a 20 ms process ~20 ms.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs import execution
from hiergym.envs.geometry.pyrunner import PythonRunner
from hiergym.envs.tools import ToolCall


def descendants(pid: int) -> list[int]:
    found, stack = [], [pid]
    while stack:
        p = stack.pop()
        try:
            tasks = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tasks:
            try:
                with open(f"/proc/{p}/task/{t}/children") as f:
                    kids = [int(c) for c in f.read().split()]
            except OSError:
                continue
            found.extend(kids)
            stack.extend(kids)
    return found


def pss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_s(pid: int) -> float:
    """CPU seconds of a live process: nanoseconds from ``schedstat`` where the kernel has it
    (the workers are single-threaded), else clock ticks from ``stat``."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    own, kids = (resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def fresh_zygotes() -> None:
    """Close this process's zygotes, so the next worker pays for a cold one."""
    for zygote in list(execution.Zygote._all):
        zygote.close()


def worker_ready(zygote: bool, samples: int) -> tuple[float, float]:
    """Median ms from start() to the first answer, and median CPU ms of the worker's processes."""
    times, cpus = [], []
    for _ in range(samples):
        runner = PythonRunner(zygote=zygote)
        start = time.perf_counter()
        runner.start()
        assert runner.run("print(1)").stdout == "1\n"
        times.append((time.perf_counter() - start) * 1000)
        pid = runner.pid
        assert pid is not None
        cpus.append(sum(cpu_s(p) for p in [pid, *descendants(pid)]) * 1000)
        runner.close()
    return statistics.median(times), statistics.median(cpus)


def envs_started(n: int) -> dict[str, float]:
    fresh_zygotes()
    before = own_cpu_s()
    envs = []
    for seed in range(n):
        env = gym.make("hiergym/Geometry-v0").unwrapped
        env.reset(seed=seed)
        envs.append(env)
    for env in envs:
        obs, *_ = env.step(ToolCall("python", {"code": "print(1)"}))
        assert obs == "1\n", obs
    procs = descendants(os.getpid())
    cpu = own_cpu_s() - before + sum(cpu_s(p) for p in procs)
    pss = sum(pss_mb(p) for p in procs)
    for env in envs:
        env.close()
    return {"cpu_s": cpu, "pss_mb": pss, "processes": len(procs)}


def old_run(argv: list[str], cwd: Path, limits: execution.Limits) -> float:
    """The toolchain's previous run(): prlimit, its own session, ``Popen.wait(timeout)``."""
    start = time.perf_counter()
    with open(cwd / ".stdout", "wb") as out, open(cwd / ".stderr", "wb") as err:
        proc = subprocess.Popen(
            [*execution.prlimit_argv(limits), *argv],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
        proc.wait(timeout=limits.wall_s)
    execution.read_capped(cwd / ".stdout", limits.output_bytes)
    execution.read_capped(cwd / ".stderr", limits.output_bytes)
    return time.perf_counter() - start


def new_run(argv: list[str], cwd: Path, limits: execution.Limits) -> float:
    start = time.perf_counter()
    execution.run(argv, cwd, limits)
    return time.perf_counter() - start


def run() -> dict[str, float]:
    figures: dict[str, float] = {}
    warm = gym.make("hiergym/Geometry-v0")  # the sandbox is built outside the measurements
    warm.close()

    fresh_ms, fresh_cpu = worker_ready(False, 3)
    PythonRunner().run("print(0)")  # the zygote is up before the warm measurements
    zygote_ms, zygote_cpu = worker_ready(True, 20)
    figures.update(
        worker_ready_fresh_ms=fresh_ms,
        worker_ready_zygote_ms=zygote_ms,
        worker_ready_fresh_over_zygote=fresh_ms / zygote_ms,
        worker_ready_fresh_cpu_ms=fresh_cpu,
        worker_ready_zygote_cpu_ms=zygote_cpu,
    )

    n_fresh = int(os.environ.get("HIERGYM_PERF_FRESH_ENVS", "8"))
    os.environ["HIERGYM_PYTHON_ZYGOTE"] = "0"
    try:
        fresh = envs_started(n_fresh)
    finally:
        del os.environ["HIERGYM_PYTHON_ZYGOTE"]
    after = envs_started(64)
    scale = 64 / n_fresh
    figures.update(
        envs64_fresh_cpu_s=fresh["cpu_s"] * scale,
        envs64_fresh_pss_mb=fresh["pss_mb"] * scale,
        envs64_zygote_cpu_s=after["cpu_s"],
        envs64_zygote_pss_mb=after["pss_mb"],
        envs64_zygote_processes=after["processes"],
        envs64_cpu_fresh_over_zygote=fresh["cpu_s"] * scale / after["cpu_s"],
        envs64_pss_fresh_over_zygote=fresh["pss_mb"] * scale / after["pss_mb"],
    )

    limits = execution.Limits(wall_s=10.0, memory_bytes=2048 * execution.MiB)
    argv = ["sleep", "0.02"]
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        old, new = [], []
        for _ in range(30):  # interleaved, so load affects both alike
            old.append(old_run(argv, cwd, limits))
            new.append(new_run(argv, cwd, limits))
    old_ms, new_ms = statistics.median(old) * 1000, statistics.median(new) * 1000
    figures.update(
        process_20ms_old_poll_ms=old_ms,
        process_20ms_new_wait_ms=new_ms,
        process_20ms_old_over_20ms=old_ms / 20,
        process_20ms_new_over_20ms=new_ms / 20,
        process_20ms_old_over_new=old_ms / new_ms,
        max_processes=execution.max_processes(),
        load_average_1min=os.getloadavg()[0],
    )
    return {k: round(v, 4) for k, v in figures.items()}
