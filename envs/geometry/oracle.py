"""Geometry oracle: solves every task through the tools, as an agent would.

It measures anchors with detect -> depth_at -> pixel_to_point (-> transform), reads sizes with
list_objects, and sends pose estimation (Kabsch, PnP), footprint clearance and convex-hull areas to
the ``python`` tool. Tool results are computed here with the same functions the env runs, so the
plan (a list of calls ending in ``submit``) is known before it is played.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np

from hiergym.envs.tools import ToolCall

from . import solvers
from .scene import WORLD
from .tasks import GeometryTask
from .tools import (
    depth_at,
    detect,
    get_camera,
    get_correspondences,
    list_objects,
    pixel_to_point,
    transform,
)
from .verifier import judge_submission


class Recorder:
    """Calls tool functions directly and records each call, so the plan replays them exactly."""

    def __init__(self, state: Any, scene: str):
        self.state = state
        self.scene = scene
        self.calls: list[ToolCall] = []
        self._objects: dict[str, Any] | None = None

    def call(self, t: Any, **arguments: Any) -> Any:
        arguments = {"scene": self.scene, **arguments}
        self.calls.append(ToolCall(t.name, arguments))
        return json.loads(json.dumps(t.fn(self.state, **arguments)))

    def python(self, call: str) -> Any:
        self.calls.append(ToolCall("python", {"code": solvers.program(call)}))
        return solvers.run_here(call)

    def objects(self) -> dict[str, Any]:
        if self._objects is None:
            listing = self.call(list_objects)
            self._objects = {o["name"]: o for o in listing["objects"]}
        return self._objects

    def anchor(self, camera: str, name: str, frame: str | None = None) -> np.ndarray:
        """An object's anchor (top-face centre) measured in ``camera``, expressed in ``frame``."""
        u, v = self.call(detect, camera=camera, object=name)["centroid"]
        depth = self.call(depth_at, camera=camera, u=u, v=v)["depth"]
        point = self.call(pixel_to_point, camera=camera, u=u, v=v, depth=depth)["point"]
        if frame is not None and frame != camera:
            point = self.call(transform, from_frame=camera, to_frame=frame, point=point)["point"]
        return np.array(point)

    def submit(self, answer: Any, unit: str | None = None, frame: str | None = None) -> None:
        args: dict[str, Any] = {"answer": answer}
        if unit is not None:
            args["unit"] = unit
        if frame is not None:
            args["frame"] = frame
        self.calls.append(ToolCall("submit", args))


def _list(values: Any, digits: int = 6) -> list[float]:
    return [round(float(x), digits) for x in values]


def solve(state: Any, task: Any) -> list[ToolCall]:
    """The oracle's calls for ``task``; the last one submits its answer."""
    rec = Recorder(state, task.scene_id)
    p = task.params
    fam, diff = task.family, task.difficulty
    if fam == "point_transform":
        point = rec.anchor(p["camera"], p["object"], task.frame)
        if diff == "hard":
            rec.submit(_list(point * 100, 4), "cm", task.frame)
        else:
            rec.submit(_list(point), "m", task.frame)
    elif fam == "distance_angle":
        if diff == "easy":
            a = rec.anchor(p["cameras"][0], p["objects"][0])
            b = rec.anchor(p["cameras"][1], p["objects"][1])
            rec.submit(round(float(np.linalg.norm(a - b)), 6), "m")
        elif diff == "medium":
            a = rec.anchor(p["cameras"][0], p["objects"][0], WORLD)
            b = rec.anchor(p["cameras"][1], p["objects"][1], WORLD)
            rec.submit(f"{math.hypot(*(a - b)[:2]) * 100:.4f} cm")
        else:
            a, v, b = (
                rec.anchor(c, o, WORLD) for c, o in zip(p["cameras"], p["objects"], strict=True)
            )
            cos = np.dot(a - v, b - v) / np.linalg.norm(a - v) / np.linalg.norm(b - v)
            rec.submit(round(math.degrees(math.acos(max(-1.0, min(1.0, cos)))), 4), "deg")
    elif fam == "pose_estimation":
        camera, part = p["camera"], p["object"]
        if diff == "hard":
            cam = rec.call(get_camera, camera=camera)["intrinsics"]
            k = [[cam["fx"], 0, cam["cx"]], [0, cam["fy"], cam["cy"]], [0, 0, 1]]
            corr = rec.call(get_correspondences, object=part, camera=camera, kind="2d-3d")
            pose = rec.python(f"pose_json(pnp({corr['model_points']}, {corr['pixels']}, {k}))")
        else:
            corr = rec.call(get_correspondences, object=part, camera=camera, kind="3d-3d")
            fit = f"kabsch({corr['model_points']}, {corr['observed']})"
            if task.frame != camera:
                m = rec.call(transform, from_frame=camera, to_frame=task.frame)["matrix"]
                fit = f"compose({m}, *{fit})"
            pose = rec.python(f"pose_json({fit})")
        rec.submit(pose, "m", task.frame)
    elif fam == "spatial_fit":
        objects = rec.objects()
        x = objects[p["object"]]
        if diff == "easy":
            y = objects[p["base"]]
            (xw, xd, _), (yw, yd, _) = x["size"], y["size"]
            fits = (xw <= yw and xd <= yd) or (xw <= yd and xd <= yw)
        elif diff == "medium":
            shelf = objects[p["shelf"]]
            top = rec.anchor(p["camera"], p["shelf"], WORLD)
            floor = objects["table"]["size"][2] if "table" in objects else 0.0
            fits = x["size"][2] <= top[2] - shelf["size"][2] - floor
        else:
            a, b = (objects[n] for n in p["objects"])
            ca = rec.anchor(p["cameras"][0], a["name"], WORLD) - [0, 0, a["size"][2] / 2]
            cb = rec.anchor(p["cameras"][1], b["name"], WORLD) - [0, 0, b["size"][2] / 2]
            out = rec.python(
                f"fits_between({_list(ca)}, {a['size']}, {a['yaw_deg']}, "
                f"{_list(cb)}, {b['size']}, {b['yaw_deg']}, {x['size']})"
            )
            fits = out["fits"]
        rec.submit("yes" if fits else "no")
    elif fam == "area_volume":
        if diff == "easy":
            size = rec.objects()[p["object"]]["size"]
            rec.submit(round(size[0] * size[1] * size[2] * 1000, 6), "L")
        elif diff == "medium":
            a, b, c = (
                rec.anchor(cam, o, WORLD) for cam, o in zip(p["cameras"], p["objects"], strict=True)
            )
            rec.submit(round(float(np.linalg.norm(np.cross(b - a, c - a)) / 2), 8), "m^2")
        else:
            points = [
                _list(rec.anchor(cam, o, WORLD)[:2])
                for cam, o in zip(p["cameras"], p["objects"], strict=True)
            ]
            area = rec.python(f"hull_area({points})")
            rec.submit(round(area * 1e4, 4), "cm^2")
    else:
        raise ValueError(f"unknown task family {fam!r}")
    return rec.calls


def prove(state: Any, task: GeometryTask) -> GeometryTask | None:
    """The build-time prover (env.py hands it to ``tasks.generate_tasks``): ``task`` with its
    ``oracle_calls`` if the oracle's submitted answer passes the verifier's comparison within half
    the tolerance, else None."""
    calls = solve(state, task)
    verdict = judge_submission(task, calls[-1].arguments)
    if verdict.passed and verdict.ratio <= 0.5:
        return replace(task, oracle_calls=len(calls))
    return None


class GeometryOracle:
    def __init__(self, sandbox: Any):
        self.sandbox = sandbox

    def plan(self, task: Any) -> list[ToolCall]:
        from types import SimpleNamespace

        return solve(SimpleNamespace(db=self.sandbox.db, memory={}), task)


def mutants() -> list[Any]:
    """Mutated oracle solutions, each with the verifier level it must fail at.

    A wrong value after the right measurements fails at grounding (the answer contradicts what
    was measured); precision then scores how far off it is (partial credit, capped).

    A mutant that needs a task family (a length for the millimetre slip, a yes/no to invert)
    retargets to the first task of that family in the same split and difficulty.
    """
    from types import SimpleNamespace

    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    from .tasks import first_task

    def retarget(task: Any, calls: list[ToolCall], db: Any, family: str, answer_type: str = ""):
        if task.family == family and (not answer_type or task.answer_type == answer_type):
            return task, calls
        other = first_task(db, task.split, task.difficulty, family)
        return other, solve(SimpleNamespace(db=db, memory={}), other)

    def with_submit(calls: list[ToolCall], **changes: Any) -> list[Any]:
        return [*calls[:-1], ToolCall("submit", {**calls[-1].arguments, **changes})]

    def mm_as_cm(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "distance_angle", "length")
        sub = calls[-1].arguments
        from .units import parse_scalar

        metres = parse_scalar(sub["answer"], sub.get("unit"), "length")
        return task, with_submit(calls, answer=round(metres * 1000, 3), unit="cm")

    def wrong_frame(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "point_transform")
        # The point as measured in the camera, labelled as if it were in the task's frame.
        measured = next(c for c in calls if c.name == "pixel_to_point")
        point = pixel_to_point.fn(SimpleNamespace(db=db, memory={}), **measured.arguments)["point"]
        unit = calls[-1].arguments["unit"]
        scale = 100.0 if unit == "cm" else 1.0
        return task, with_submit(calls, answer=[round(x * scale, 6) for x in point])

    def sign_flip(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "point_transform")
        answer = list(calls[-1].arguments["answer"])
        axis = max(range(3), key=lambda i: abs(answer[i]))
        answer[axis] = -answer[axis]
        return task, with_submit(calls, answer=answer)

    def two_cm_off(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "distance_angle", "length")
        sub = calls[-1].arguments
        from .units import parse_scalar

        metres = parse_scalar(sub["answer"], sub.get("unit"), "length")
        return task, with_submit(calls, answer=round(metres + 0.02, 6), unit="m")

    def yes_no_inverted(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "spatial_fit")
        flipped = "no" if calls[-1].arguments["answer"] == "yes" else "yes"
        return task, with_submit(calls, answer=flipped)

    def no_tool_calls(task, calls, db):  # noqa: ANN001, ANN202
        return task, calls[-1:]

    def wrong_answer_type(task, calls, db):  # noqa: ANN001, ANN202
        task, calls = retarget(task, calls, db, "distance_angle", "length")
        return task, with_submit(calls, unit="deg")

    def careless_calls(task, calls, db):  # noqa: ANN001, ANN202
        bad = [
            ToolCall("detekt", {"scene": task.scene_id}),
            ToolCall("depth_at", {"scene": task.scene_id, "camera": "cam_front", "u": "left"}),
            ToolCall("list_objects", {"scene": "geo-nowhere-000"}),
        ]
        noise = [bad[i % 3] for i in range(max(3, len(calls)))]
        return task, [*noise, *calls]

    return [
        NO_SUBMIT,
        MALFORMED_JSON,
        Mutant("length_in_degrees", "format", wrong_answer_type),
        Mutant("careless_calls", "tool_use", careless_calls),
        Mutant("millimetres_as_centimetres", "grounding", mm_as_cm),
        Mutant("right_point_wrong_frame", "grounding", wrong_frame),
        Mutant("sign_flip_one_axis", "grounding", sign_flip),
        Mutant("two_centimetres_off", "grounding", two_cm_off),
        Mutant("yes_no_inverted", "grounding", yes_no_inverted),
        Mutant("correct_value_no_tool_calls", "grounding", no_tool_calls),
    ]
