"""Geometry speed: geometric tool calls/s, python-tool latency (warm and cold), verdicts/s.

Targets (issue 5): >= 20,000 calls/s for the geometric tools, <= 50 ms per python call (a warm
worker), and verdicts/s reported. A process's first python worker starts the zygote (the imports,
``python_cold_start_ms``); every further one is forked from it (``python_next_worker_ms``; issue
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
    runner.close()

    base.reset(seed=3)
    for call in oracle_actions(env):
        base.step(call)
    trajectory, task = base.trajectory, base.task
    figures["verdicts_per_s"] = rate(lambda: base.verifier.verify(trajectory, task))
    seeds = itertools.count()
    figures["reset_ms"] = per_call_ms(lambda: base.reset(seed=next(seeds)))
    env.close()
    return {k: round(v, 4) for k, v in figures.items()}
