"""Geometry tools: scene inventory, cameras, detection, depth, back-projection, frames,
correspondences, a sandboxed ``python`` and ``submit``.

Every answer is computed exactly from the stored scene (see ``scene.py`` for the conventions) and is
a pure function of the arguments, so results cache safely; each tool names its ``scene``.
Correspondence noise is the one random part: Gaussian, with the documented sigma, drawn from a
generator seeded by (scene, object, camera, kind), so it is the same on every call and machine.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any, Literal

import numpy as np

from hiergym.envs.tools import Toolbox, tool
from hiergym.errors import ToolError, did_you_mean

from .data import load_catalog
from .pyrunner import MAX_CODE_CHARS, PythonRunner
from .scene import WORLD, Scene, scene_from_json

_SCENES: dict[tuple[int, str], tuple[Any, Scene]] = {}
MAX_COORDINATE = 1e6


def load_scene(db: Any, scene_id: str) -> Scene:
    """The scene ``scene_id`` of this sandbox DB (parsed once per process), or a ToolError."""
    key = (id(db), scene_id)
    hit = _SCENES.get(key)
    if hit is not None and hit[0] is db:
        return hit[1]
    row = db.execute("SELECT payload FROM scenes WHERE scene_id = ?", (scene_id,)).fetchone()
    if row is None:
        raise ToolError(
            f"no scene {scene_id[:40]!r}; use the scene id from the task, e.g. 'geo-test-004'"
        )
    scene = scene_from_json(row[0])
    _SCENES[key] = (db, scene)  # holding db keeps its id from being reused
    return scene


def _scene(state: Any, scene: str) -> Scene:
    return load_scene(state.db, scene.strip())


def _camera(s: Scene, camera: str) -> str:
    if camera not in s.cameras:
        raise ToolError(
            f"scene {s.scene_id} has no camera {camera[:40]!r}{did_you_mean(camera, s.cameras)}; "
            f"its cameras: {list(s.cameras)}"
        )
    return camera


def _object(s: Scene, name: str) -> str:
    if name not in s.objects:
        raise ToolError(
            f"scene {s.scene_id} has no object {name[:40]!r}{did_you_mean(name, s.objects)}; "
            "call list_objects for the names"
        )
    return name


def _frame(s: Scene, frame: str) -> str:
    if frame not in s.frames:
        raise ToolError(
            f"scene {s.scene_id} has no frame {frame[:40]!r}{did_you_mean(frame, s.frames)}; "
            f"its frames: {list(s.frames)}"
        )
    return frame


def _finite(value: float, name: str, bound: float = MAX_COORDINATE) -> float:
    if not math.isfinite(value) or abs(value) > bound:
        raise ToolError(f"{name} must be a finite number within +-{bound:g}, got {value}")
    return float(value)


def _round(values: Any, digits: int) -> Any:
    return np.round(np.asarray(values, dtype=float), digits).tolist()


@tool
def list_objects(state: Any, scene: str) -> dict[str, Any]:
    """List a scene's objects (name, category, size, support, yaw), cameras and frames.

    Args:
        scene: the scene id from the task, e.g. "geo-test-004".
    """
    s = _scene(state, scene)
    return {
        "scene": s.scene_id,
        "kind": s.spec.kind,
        "frames": list(s.frames),
        "cameras": list(s.cameras),
        "objects": [
            {
                "name": b.name,
                "category": b.category,
                "size": list(b.size),
                "support": b.support,
                "yaw_deg": b.yaw_deg,
            }
            for b in s.spec.objects
        ],
        "notes": (
            "size is the box extent [x, y, z] in metres along the object's own axes; yaw_deg turns "
            "an upright object about the world z axis (null: a held part, rotation unknown); "
            "world z is up and the floor is z = 0"
        ),
    }


@tool
def get_camera(state: Any, scene: str, camera: str) -> dict[str, Any]:
    """A camera's intrinsics (fx, fy, cx, cy, image size) and extrinsics (its pose in the world).

    Args:
        scene: the scene id.
        camera: the camera name, e.g. "cam_front".
    """
    s = _scene(state, scene)
    cam = s.cameras[_camera(s, camera)]
    return {
        "camera": cam.name,
        "intrinsics": cam.intrinsics(),
        "extrinsics": {
            "rotation": [list(r) for r in cam.rotation],
            "translation": list(cam.translation),
            "maps": f"{cam.name} -> world: p_world = rotation @ p_camera + translation",
        },
        "convention": "OpenCV optical frame: x right, y down, z forward; metres; pixels",
    }


@tool
def detect(state: Any, scene: str, camera: str, object: str) -> dict[str, Any]:  # noqa: A002
    """Detect an object in a camera image: its 2D box and centroid (the image point of the centre of
    its top face).

    Args:
        scene: the scene id.
        camera: the camera name.
        object: the object name from list_objects, e.g. "mug".
    """
    s = _scene(state, scene)
    det = s.detection(_camera(s, camera), _object(s, object))
    if det is None:
        raise ToolError(f"{object!r} is not in view of {camera} (try another camera)")
    return {
        "object": object,
        "camera": camera,
        "box": _round(det["box"], 4),
        "centroid": _round(det["centroid"], 4),
        "truncated": det["truncated"],
        "centroid_visible": det["anchor_visible"],
    }


def _pixel(s: Scene, camera: str, u: float, v: float) -> tuple[float, float]:
    cam = s.cameras[camera]
    u, v = _finite(u, "u"), _finite(v, "v")
    if not (0 <= u <= cam.width and 0 <= v <= cam.height):
        raise ToolError(
            f"pixel ({u:g}, {v:g}) is outside the {cam.width}x{cam.height} image of {camera}"
        )
    return u, v


@tool
def depth_at(state: Any, scene: str, camera: str, u: float, v: float) -> dict[str, Any]:
    """The depth (z in the camera frame, metres) of the first surface seen at pixel (u, v).

    Args:
        scene: the scene id.
        camera: the camera name.
        u: pixel column (x), 0 at the left edge.
        v: pixel row (y), 0 at the top edge.
    """
    s = _scene(state, scene)
    _camera(s, camera)
    u, v = _pixel(s, camera, u, v)
    depth, _ = s.raycast(camera, u, v)
    if not math.isfinite(depth):
        raise ToolError(f"no surface at pixel ({u:g}, {v:g}) of {camera}: the ray hits nothing")
    return {"camera": camera, "pixel": [u, v], "depth": round(depth, 6), "unit": "m"}


@tool
def pixel_to_point(
    state: Any, scene: str, camera: str, u: float, v: float, depth: float
) -> dict[str, Any]:
    """Back-project pixel (u, v) at a depth to a 3D point in the camera frame.

    Args:
        scene: the scene id.
        camera: the camera name.
        u: pixel column.
        v: pixel row.
        depth: z in the camera frame, metres (from depth_at).
    """
    s = _scene(state, scene)
    cam = s.cameras[_camera(s, camera)]
    u, v = _finite(u, "u"), _finite(v, "v")
    depth = _finite(depth, "depth", 1e4)
    if depth <= 0:
        raise ToolError(f"depth must be positive, got {depth}")
    point = [(u - cam.cx) * depth / cam.fx, (v - cam.cy) * depth / cam.fy, depth]
    return {"frame": camera, "point": _round(point, 6), "unit": "m"}


@tool
def transform(
    state: Any, scene: str, from_frame: str, to_frame: str, point: list[float] | None = None
) -> dict[str, Any]:
    """The rigid transform between two frames (world, robot_base or a camera), and optionally a
    point mapped through it.

    Args:
        scene: the scene id.
        from_frame: the frame the point is given in, e.g. "cam_front".
        to_frame: the frame to express it in, e.g. "robot_base".
        point: [x, y, z] in from_frame, metres (optional).
    """
    s = _scene(state, scene)
    matrix = s.transform(_frame(s, from_frame), _frame(s, to_frame))
    out: dict[str, Any] = {
        "from_frame": from_frame,
        "to_frame": to_frame,
        "matrix": _round(matrix, 9),
        "maps": f"p_{to_frame} = matrix @ [p_{from_frame}, 1]",
    }
    if point is not None:
        if len(point) != 3:
            raise ToolError(f"point must be [x, y, z], got {len(point)} numbers")
        p = np.array([_finite(x, "point") for x in point])
        out["point"] = _round(matrix[:3, :3] @ p + matrix[:3, 3], 6)
        out["unit"] = "m"
    return out


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:16], 16)


MODEL_SIGNS = np.array(
    [
        (x, y, z)
        for x in (-1, 0, 1)
        for y in (-1, 0, 1)
        for z in (-1, 0, 1)
        if (x, y, z) != (0, 0, 0)
    ],
    dtype=float,
)


def correspondences(s: Scene, name: str, camera: str, kind: str) -> dict[str, Any]:
    """Model points of a held part and their noisy observations in ``camera`` (exact + noise)."""
    box = s.objects[name]
    noise = load_catalog()["noise"]
    model = MODEL_SIGNS * (np.asarray(box.size) / 2)
    world = model @ np.asarray(box.rotation).T + np.asarray(box.center)
    rng = np.random.default_rng(_seed(s.spec.correspondence_seed, name, camera, kind))
    if kind == "3d-3d":
        frame = s.transform(WORLD, camera)
        observed = world @ frame[:3, :3].T + frame[:3, 3]
        sigma = noise["correspondence_3d_sigma_m"]
        observed = observed + rng.normal(0.0, sigma, observed.shape)
        return {
            "model_points": _round(model, 6),
            "observed": _round(observed, 6),
            "observed_frame": camera,
            "noise": f"each observed coordinate has Gaussian noise, sigma {sigma} m",
        }
    pixels, depths = s.project(camera, world)
    if (depths <= 0.05).any():
        raise ToolError(f"{name!r} is not in front of {camera}")
    sigma = noise["correspondence_2d_sigma_px"]
    pixels = pixels + rng.normal(0.0, sigma, pixels.shape)
    return {
        "model_points": _round(model, 6),
        "pixels": _round(pixels, 4),
        "camera": camera,
        "noise": f"each pixel coordinate has Gaussian noise, sigma {sigma} px",
    }


@tool
def get_correspondences(
    state: Any,
    scene: str,
    object: str,
    camera: str,
    kind: Literal["3d-3d", "2d-3d"],  # noqa: A002
) -> dict[str, Any]:
    """Point correspondences for estimating a held part's pose in a camera: 26 model points (in the
    part's own frame, metres) with their observed 3D points (kind "3d-3d", camera frame) or pixels
    (kind "2d-3d"), each with documented Gaussian noise.

    Args:
        scene: the scene id.
        object: a held part's name (its support is "gripper" in list_objects).
        camera: the camera name.
        kind: "3d-3d" (for Kabsch / Umeyama) or "2d-3d" (for PnP).
    """
    s = _scene(state, scene)
    _camera(s, camera)
    _object(s, object)
    if s.objects[object].support != "gripper":
        parts = [b.name for b in s.spec.objects if b.support == "gripper"]
        raise ToolError(f"correspondences exist for held parts only; in {s.scene_id}: {parts}")
    return correspondences(s, object, camera, kind)


@tool(cache="none")
def python(state: Any, code: str) -> str:
    """Run Python 3 code and return what it prints (the last expression is printed too). Each call is
    a fresh process and namespace in a fresh temp dir; nothing persists between calls: paste in the
    numbers you need. Limits: 5 s of CPU time, 512 MiB, 7,500 characters of output, 8 files of up to 1 MiB,
    no network, no processes, no files outside the temp dir.

    Args:
        code: the program. Imports allowed: bisect, cmath, collections, decimal, fractions, functools, heapq, itertools, json, math, numpy (linalg, random, fft), random, re, scipy (linalg, optimize, spatial, spatial.transform, special), statistics.
    """
    if len(code) > MAX_CODE_CHARS:
        raise ToolError(f"the code is {len(code):,} characters; the cap is {MAX_CODE_CHARS:,}")
    runner: PythonRunner | None = state.memory.get("python")
    if runner is None:
        runner = state.memory["python"] = PythonRunner()
    result = runner.run(code)
    if not result.ok:
        shown = f"\nprinted before the error:\n{result.stdout[-2000:]}" if result.stdout else ""
        raise ToolError(f"{result.error}{shown}")
    text = result.stdout or "(no output: print the values you need)"
    if result.truncated:
        text += f"\n... [output truncated at {runner.output_chars:,} characters]"
    return text


@tool(terminal=True, cache="none")
def submit(state: Any, answer: Any, unit: str | None = None, frame: str | None = None) -> str:
    """Finish with your answer. Ends the episode.

    Args:
        answer: a number (0.42) or a string with its unit ("42 cm"); a point [x, y, z]; a pose {"rotation": 3x3 matrix or {"quaternion": [x, y, z, w]}, "translation": [x, y, z]}; or "yes" / "no".
        unit: the unit of a number, point or pose translation: m, cm or mm; deg or rad; m^2 or cm^2; m^3, cm^3 or L.
        frame: the frame a point or pose is expressed in (the one the task asks for).
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox(
    [
        list_objects,
        get_camera,
        detect,
        depth_at,
        pixel_to_point,
        transform,
        get_correspondences,
        python,
        submit,
    ]
)
