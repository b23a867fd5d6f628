"""Scenes and their exact geometry: oriented boxes, frames, pinhole cameras, ray casting.

Conventions (every tool and prompt uses them):

* The world frame has z up and the floor at z = 0; lengths are metres.
* A pose maps local coordinates to its parent frame: ``p_parent = R @ p_local + t``.
* Cameras use the OpenCV optical frame (x right, y down, z forward); a camera's extrinsics are its
  pose in the world. A pixel ``(u, v)`` is a continuous image coordinate: ``u = fx * x / z + cx``,
  ``v = fy * y / z + cy``. Depth is the z coordinate in the camera frame (not the ray length).
* An object is an oriented box: centre, size (extent along its own x, y, z) and rotation. Its
  *anchor* is the centre of its top face (local +z); the anchor is what ``detect`` reports as the
  object's centroid and what tasks mean by an object's position.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

WORLD = "world"
ROBOT_BASE = "robot_base"
MIN_DEPTH = 0.05
"""Points closer to a camera than this (metres) are behind its near plane: not in view."""


def rot_z(yaw_rad: float) -> np.ndarray:
    c, s = math.cos(yaw_rad), math.sin(yaw_rad)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation (camera -> world) of an OpenCV camera at ``eye`` looking at ``target``."""
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.column_stack([right, down, forward])


def quat_to_matrix(q: tuple[float, float, float, float]) -> np.ndarray:
    """A rotation matrix from a unit quaternion ``(x, y, z, w)``."""
    x, y, z, w = q
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def rotation_angle_deg(r_a: np.ndarray, r_b: np.ndarray) -> float:
    """The geodesic angle between two rotations, in degrees."""
    cos = (np.trace(r_a.T @ r_b) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, float(cos)))))


def homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    m = np.eye(4)
    m[:3, :3] = rotation
    m[:3, 3] = translation
    return m


def invert(matrix: np.ndarray) -> np.ndarray:
    r, t = matrix[:3, :3], matrix[:3, 3]
    return homogeneous(r.T, -r.T @ t)


@dataclass(frozen=True)
class Camera:
    name: str
    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    rotation: tuple[tuple[float, ...], ...]
    translation: tuple[float, ...]

    def intrinsics(self) -> dict[str, float]:
        return {
            "fx": self.fx,
            "fy": self.fy,
            "cx": self.cx,
            "cy": self.cy,
            "width": self.width,
            "height": self.height,
        }


@dataclass(frozen=True)
class Box:
    """One object: an oriented box resting on ``support`` (table, floor, wall, or the gripper)."""

    name: str
    category: str
    size: tuple[float, float, float]
    center: tuple[float, float, float]
    rotation: tuple[tuple[float, ...], ...]
    support: str
    yaw_deg: float | None
    """Rotation about the world z axis for upright objects; ``None`` for freely rotated parts."""

    @property
    def anchor(self) -> np.ndarray:
        """The centre of the top face (local +z), in the world frame."""
        return np.asarray(self.center) + np.asarray(self.rotation) @ np.array(
            [0.0, 0.0, self.size[2] / 2]
        )

    def corners(self) -> np.ndarray:
        """The 8 corners in the world frame, shape (8, 3)."""
        half = np.asarray(self.size) / 2
        signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
        return (signs * half) @ np.asarray(self.rotation).T + np.asarray(self.center)


def _matrix(rows: Any) -> tuple[tuple[float, ...], ...]:
    return tuple(tuple(float(x) for x in row) for row in rows)


@dataclass(frozen=True)
class SceneSpec:
    """A scene as stored in the sandbox DB (JSON), before its geometry is precomputed."""

    scene_id: str
    split: str
    kind: str
    objects: tuple[Box, ...]
    cameras: tuple[Camera, ...]
    robot_rotation: tuple[tuple[float, ...], ...]
    robot_translation: tuple[float, ...]
    correspondence_seed: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "scene_id": self.scene_id,
                "split": self.split,
                "kind": self.kind,
                "objects": [b.__dict__ for b in self.objects],
                "cameras": [c.__dict__ for c in self.cameras],
                "robot_rotation": self.robot_rotation,
                "robot_translation": self.robot_translation,
                "correspondence_seed": self.correspondence_seed,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        d = json.loads(text)
        objects = tuple(
            Box(
                name=o["name"],
                category=o["category"],
                size=tuple(o["size"]),
                center=tuple(o["center"]),
                rotation=_matrix(o["rotation"]),
                support=o["support"],
                yaw_deg=o["yaw_deg"],
            )
            for o in d["objects"]
        )
        cameras = tuple(
            Camera(
                **{
                    **c,
                    "rotation": _matrix(c["rotation"]),
                    "translation": tuple(c["translation"]),
                }
            )
            for c in d["cameras"]
        )
        return cls(
            scene_id=d["scene_id"],
            split=d["split"],
            kind=d["kind"],
            objects=objects,
            cameras=cameras,
            robot_rotation=_matrix(d["robot_rotation"]),
            robot_translation=tuple(d["robot_translation"]),
            correspondence_seed=d.get("correspondence_seed", ""),
        )


@dataclass
class Scene:
    """A scene with its geometry precomputed for fast, exact queries (shared read-only)."""

    spec: SceneSpec
    objects: dict[str, Box] = field(init=False)
    cameras: dict[str, Camera] = field(init=False)
    frames: dict[str, np.ndarray] = field(init=False)
    """Frame name -> 4x4 pose of that frame in the world."""

    def __post_init__(self) -> None:
        spec = self.spec
        self.objects = {b.name: b for b in spec.objects}
        self.cameras = {c.name: c for c in spec.cameras}
        self.frames = {
            WORLD: np.eye(4),
            ROBOT_BASE: homogeneous(
                np.asarray(spec.robot_rotation), np.asarray(spec.robot_translation)
            ),
        }
        for c in spec.cameras:
            self.frames[c.name] = homogeneous(np.asarray(c.rotation), np.asarray(c.translation))
        boxes = spec.objects
        self._box_names = [b.name for b in boxes]
        self._box_rt = np.stack([np.asarray(b.rotation).T for b in boxes])  # world -> box
        self._box_center = np.array([b.center for b in boxes])
        self._box_half = np.array([b.size for b in boxes]) / 2
        self._camera_cache: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._detections: dict[tuple[str, str], dict[str, Any] | None] = {}

    @property
    def scene_id(self) -> str:
        return self.spec.scene_id

    def transform(self, from_frame: str, to_frame: str) -> np.ndarray:
        """The 4x4 matrix mapping ``from_frame`` coordinates to ``to_frame`` coordinates."""
        return invert(self.frames[to_frame]) @ self.frames[from_frame]

    # ---- cameras ------------------------------------------------------------------------

    def _camera_arrays(self, camera: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(R camera->world, camera origin in world, camera origin in every box's frame)."""
        cached = self._camera_cache.get(camera)
        if cached is None:
            cam = self.cameras[camera]
            r = np.asarray(cam.rotation)
            origin = np.asarray(cam.translation)
            local_origin = np.einsum("nij,nj->ni", self._box_rt, origin - self._box_center)
            cached = (r, origin, local_origin)
            self._camera_cache[camera] = cached
        return cached

    def project(self, camera: str, points_world: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Pixels (n, 2) and depths (n,) of world points in ``camera``."""
        cam = self.cameras[camera]
        r, origin, _ = self._camera_arrays(camera)
        local = (np.atleast_2d(points_world) - origin) @ r
        z = local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = cam.fx * local[:, 0] / z + cam.cx
            v = cam.fy * local[:, 1] / z + cam.cy
        return np.column_stack([u, v]), z

    def ray(self, camera: str, u: float, v: float) -> np.ndarray:
        """The world direction of pixel (u, v), scaled so that its camera-z component is 1."""
        cam = self.cameras[camera]
        r, _, _ = self._camera_arrays(camera)
        return r @ np.array([(u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy, 1.0])

    def raycast(self, camera: str, u: float, v: float) -> tuple[float, str | None]:
        """Depth of the first surface along pixel (u, v) and the object hit (``None``: the floor).

        ``inf`` depth means the ray hits nothing. Boxes are intersected by the slab method in their
        own frames, all at once; the floor is the plane z = 0.
        """
        _, origin, local_origin = self._camera_arrays(camera)
        d = self.ray(camera, u, v)
        local_d = self._box_rt @ d
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / local_d
            t1 = (-self._box_half - local_origin) * inv
            t2 = (self._box_half - local_origin) * inv
        t_near = np.nanmax(np.minimum(t1, t2), axis=1)
        t_far = np.nanmin(np.maximum(t1, t2), axis=1)
        hits = (t_far >= t_near) & (t_near > MIN_DEPTH)
        best, name = math.inf, None
        if hits.any():
            i = int(np.argmin(np.where(hits, t_near, np.inf)))
            best, name = float(t_near[i]), self._box_names[i]
        if d[2] < 0:
            t_floor = -origin[2] / d[2]
            if MIN_DEPTH < t_floor < best:
                best, name = float(t_floor), None
        return best, name

    def detection(self, camera: str, name: str) -> dict[str, Any] | None:
        """The object's 2D box and centroid in ``camera``, or ``None`` if it is not in view."""
        key = (camera, name)
        if key in self._detections:
            return self._detections[key]
        cam = self.cameras[camera]
        box = self.objects[name]
        pixels, depths = self.project(camera, np.vstack([box.corners(), box.anchor]))
        result = None
        if (depths > MIN_DEPTH).all():
            corners = pixels[:8]
            lo = corners.min(axis=0)
            hi = corners.max(axis=0)
            clipped_lo = np.maximum(lo, 0.0)
            clipped_hi = np.minimum(hi, [cam.width, cam.height])
            u, v = pixels[8]
            in_image = 0 <= u < cam.width and 0 <= v < cam.height
            if (clipped_hi > clipped_lo).all() and in_image:
                depth, hit = self.raycast(camera, float(u), float(v))
                result = {
                    "box": [float(x) for x in (*clipped_lo, *clipped_hi)],
                    "centroid": [float(u), float(v)],
                    "truncated": bool((lo < 0).any() or (hi > [cam.width, cam.height]).any()),
                    "anchor_visible": hit == name and abs(depth - float(depths[8])) < 1e-6,
                }
        self._detections[key] = result
        return result


@functools.lru_cache(maxsize=4096)
def scene_from_json(text: str) -> Scene:
    return Scene(SceneSpec.from_json(text))
