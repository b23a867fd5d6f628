"""Geometry speed: geometric tool calls/s, python-tool latency (warm and cold), verdicts/s.

Targets (issue 5): >= 20,000 calls/s for the geometric tools, <= 50 ms per python call (a warm
worker), and verdicts/s reported. ``worker_start_*_cpu_ms`` (issue 12's <= 20 ms to a usable
worker): where a worker's CPU goes from its fork to its first call (see worker_start_cpu);
``python_*_call_cpu_ms``: a warm call's CPU (see call_cpu_ms). A process's first python worker
starts the zygote (the imports, ``python_cold_start_ms``); every further one is forked from it (``python_next_worker_ms``; issue
12, see ``perf execution``). Uncached figures call the tool function with distinct arguments
(depth_at ray-casts a new pixel every call); "env step" figures go through ToolEnv.step, whose
sandbox memoizes repeated calls.
"""

from __future__ import annotations

import itertools
import time
from types import SimpleNamespace

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.geometry import solvers
from hiergym.envs.geometry.pyrunner import PythonRunner
from hiergym.envs.geometry.tools import (
    depth_at,
    detect,
    get_camera,
    list_objects,
    load_scene,
    pixel_to_point,
    transform,
)
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions

from . import per_call_ms, rate


def run() -> dict[str, float]:
    env = gym.make("hiergym/Geometry-v0", split="test", difficulty="hard")
    base = env.unwrapped
    db = base.sandbox.db
    state = SimpleNamespace(db=db, memory={})
    base.reset(seed=0)
    scene_id = base.task.scene_id
    scene = load_scene(db, scene_id)
    camera = next(iter(scene.cameras))
    cam = scene.cameras[camera]
    names = itertools.cycle(scene.objects)
    pixels = itertools.cycle(
        [(u + 0.37, v + 0.53) for u in range(0, cam.width, 7) for v in range(0, cam.height, 7)]
    )
    args = {"scene": scene_id, "camera": camera}
    point = [0.1, -0.2, 1.5]

    def depth_next() -> object:
        u, v = next(pixels)
        try:
            return depth_at.fn(state, u=u, v=v, **args)
        except Exception:  # a pixel that sees nothing (sky) is a ToolError: still a full ray cast
            return None

    figures: dict[str, float] = {}
    figures["depth_at_calls_per_s"] = rate(depth_next)
    figures["detect_calls_per_s"] = rate(lambda: detect.fn(state, object=next(names), **args))
    figures["pixel_to_point_calls_per_s"] = rate(
        lambda: pixel_to_point.fn(state, u=320.5, v=240.5, depth=1.25, **args)
    )
    figures["transform_calls_per_s"] = rate(
        lambda: transform.fn(state, scene_id, camera, "robot_base", point)
    )
    figures["get_camera_calls_per_s"] = rate(lambda: get_camera.fn(state, **args))
    figures["list_objects_calls_per_s"] = rate(lambda: list_objects.fn(state, scene_id))
    figures["geometric_tools_min_calls_per_s"] = min(figures.values())

    base.reset(seed=0, options={"max_turns": 10**9})
    u, v = detect.fn(state, object=next(iter(scene.objects)), **args)["centroid"]
    step_call = ToolCall("depth_at", {**args, "u": u, "v": v})
    figures["depth_at_env_steps_per_s"] = rate(lambda: base.step(step_call))

    runner = PythonRunner()
    start = time.perf_counter()
    runner.run("print(1)")
    figures["python_cold_start_ms"] = (time.perf_counter() - start) * 1000  # the zygote's too
    second = PythonRunner()
    start = time.perf_counter()
    second.run("print(1)")
    figures["python_next_worker_ms"] = (time.perf_counter() - start) * 1000  # forked from it
    second.close()
    figures["python_warm_call_ms"] = per_call_ms(lambda: runner.run("print(1)"), min_calls=20)
    kabsch = solvers.program(
        "pose_json(kabsch([[0,0,0],[1,0,0],[0,1,0],[0,0,1]], [[1,2,3],[1,3,3],[0,2,3],[1,2,4]]))"
    )
    figures["python_kabsch_call_ms"] = per_call_ms(lambda: runner.run(kabsch), min_calls=20)
    figures["python_warm_call_cpu_ms"] = call_cpu_ms(runner, "print(1)")
    figures["python_kabsch_call_cpu_ms"] = call_cpu_ms(runner, kabsch)
    runner.close()

    base.reset(seed=3)
    for call in oracle_actions(env):
        base.step(call)
    trajectory, task = base.trajectory, base.task
    figures["verdicts_per_s"] = rate(lambda: base.verifier.verify(trajectory, task))
    seeds = itertools.count()
    figures["reset_ms"] = per_call_ms(lambda: base.reset(seed=next(seeds)))
    env.close()
    figures |= worker_start_cpu_fresh()
    return {k: round(v, 4) for k, v in figures.items()}


def call_cpu_ms(runner: PythonRunner, code: str, calls: int = 50) -> float:
    """CPU milliseconds per python call, mean of ``calls``: this process's and the zygote's tree's
    (the worker and each call's child, reaped by it), so a loaded machine inflates it less than
    the wall figures. The worker's reap of a call's child and fork of the next happen after it
    answers; a short pause after each call lets them finish inside the measurement."""
    import resource

    from hiergym.envs import execution
    from hiergym.envs.geometry.pyrunner import WORKER, WORKER_ENV

    zygote = execution.Zygote.shared(WORKER, WORKER_ENV).pid
    assert zygote is not None and runner.run(code).ok

    def cpu_s() -> float:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime + execution.tree_cpu_seconds(zygote)[0]

    total = 0.0
    for _ in range(calls):
        before = cpu_s()
        runner.run(code)
        time.sleep(0.003)
        total += cpu_s() - before
    return total / calls * 1000


def worker_start_cpu_fresh() -> dict[str, float]:
    """:func:`worker_start_cpu` in a fresh interpreter with the workers' environment (one BLAS
    thread), so the process forked holds what a zygote holds, not this benchmark's envs."""
    import json as json_
    import os
    import subprocess
    import sys

    from hiergym.envs.geometry.pyrunner import WORKER_ENV

    code = (
        "import json; from hiergym.benchmarks.perf.geometry import worker_start_cpu; "
        "print(json.dumps(worker_start_cpu()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **WORKER_ENV},
    ).stdout
    return json_.loads(out.strip().splitlines()[-1])


def _cpu_ms() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return (usage.ru_utime + usage.ru_stime) * 1000


def worker_start_cpu(samples: int = 7) -> dict[str, float]:
    """Where a worker's CPU goes between its fork and its first call (issue 12's <= 20 ms to a
    usable worker), in this process standing in for the zygote (the allowed modules imported,
    ``gc.freeze``), medians of ``samples`` forks: the fork itself (in the parent), and in the
    child the worker's own steps: ``isolate`` (network namespace, privilege drop where root,
    Landlock, rlimits), the audit hook, and the fork of the first call's child, with a bare
    interpreter's fork beside it (the fork's cost grows with the anonymous memory it maps).
    CPU time, not wall: on a loaded machine the wall figure is mostly waiting for a core."""
    import gc
    import json as json_
    import os
    import subprocess
    import sys
    import tempfile

    from hiergym.envs import execution
    from hiergym.envs.geometry import pyworker

    modules, read_roots = pyworker.zygote_preload()
    gc.freeze()
    limits = {
        "timeout_s": 5.0,
        "lifetime_cpu_s": 600,
        "memory_mb": 512,
        "file_bytes": 1 << 20,
        "output_chars": 7500,
    }
    rows: list[dict[str, float]] = []
    for _ in range(samples):
        root = tempfile.mkdtemp(prefix="hiergym-perf-")
        read, write = os.pipe()
        before = _cpu_ms()
        pid = os.fork()
        if pid == 0:  # the worker: its own steps, timed in its own CPU
            code = 1
            try:
                os.close(read)
                marks = {"start": _cpu_ms()}
                execution.isolate(pyworker.worker_limits(limits, read_roots), root)
                marks["isolate"] = _cpu_ms()
                pyworker.install_audit_hook(root, read_roots, pyworker.Phase())
                marks["audit_hook"] = _cpu_ms()
                child = os.fork()
                if child == 0:
                    os._exit(0)
                marks["fork_call_child"] = _cpu_ms()
                os.waitpid(child, 0)
                steps = list(marks)
                out = {b: marks[b] - marks[a] for a, b in zip(steps, steps[1:], strict=False)}
                os.write(write, json_.dumps(out).encode())
                code = 0
            finally:
                os._exit(code)
        fork_ms = _cpu_ms() - before
        os.close(write)
        with os.fdopen(read) as f:
            row = json_.loads(f.read() or "{}")
        os.waitpid(pid, 0)
        subprocess.run(["rm", "-rf", root], check=False)
        rows.append({"fork_by_zygote": fork_ms, **row})
    bare = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, resource\n"
            "def cpu():\n"
            "    u = resource.getrusage(resource.RUSAGE_SELF)\n"
            "    return (u.ru_utime + u.ru_stime) * 1000\n"
            "t = []\n"
            f"for _ in range({samples}):\n"
            "    b = cpu(); p = os.fork()\n"
            "    if p == 0: os._exit(0)\n"
            "    t.append(cpu() - b); os.waitpid(p, 0)\n"
            "print(sorted(t)[len(t) // 2])",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    figures = {
        f"worker_start_{k}_cpu_ms": sorted(r[k] for r in rows)[len(rows) // 2] for k in rows[0]
    }
    figures["worker_start_on_path_cpu_ms"] = sum(
        figures[f"worker_start_{k}_cpu_ms"] for k in ("isolate", "audit_hook", "fork_call_child")
    )  # what the worker does between its arguments and "ready" (the zygote forks it ahead)
    figures["bare_interpreter_fork_cpu_ms"] = float(bare.stdout.strip())
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("RssAnon:"):
                figures["zygote_anon_mb"] = int(line.split()[1]) / 1024
    return {k: round(v, 3) for k, v in figures.items()}
