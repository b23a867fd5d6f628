"""Deterministic scene generator: sandbox_data/geometry/catalog.json -> SQLite (scenes and tasks).

A scene is a tabletop (a table, 5-14 objects on it, an optional wall shelf above it, a part held by
the robot's gripper) or a room (furniture on the floor, an optional wall shelf, a held part), with a
robot base frame and 1-3 pinhole cameras looking into it. Every draw comes from a ``random.Random``
seeded by a string, so the scenes are identical across processes and machines. Splits are by scene:
a task only ever uses the scenes of its own split.
"""

from __future__ import annotations

import functools
import json
import math
import random
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hiergym.envs.sandbox import Progress, build_database
from hiergym.sandbox_data import source_dir

from .scene import Box, Camera, SceneSpec, look_at, quat_to_matrix, rot_z

GENERATOR_VERSION = "geometry-1"
SCENES_PER_SPLIT = {"train": 60, "dev": 20, "test": 20}
TASKS_PER_SPLIT = {"train": 150, "dev": 50, "test": 50}
DIFFICULTIES = ("easy", "medium", "hard")
GAP = 0.02  # metres kept free between neighbouring footprints

SCHEMA = """
CREATE TABLE scenes (scene_id TEXT PRIMARY KEY, split TEXT NOT NULL, kind TEXT NOT NULL, payload TEXT NOT NULL);
CREATE TABLE tasks (
    task_id TEXT PRIMARY KEY, split TEXT NOT NULL, difficulty TEXT NOT NULL,
    family TEXT NOT NULL, payload TEXT NOT NULL
);
CREATE INDEX tasks_by_split ON tasks (split, difficulty, family);
"""


@functools.lru_cache(maxsize=1)
def load_catalog() -> dict[str, Any]:
    return json.loads((source_dir("geometry") / "catalog.json").read_text())


def _r(x: float, nd: int = 4) -> float:
    return round(float(x), nd)


def _size(rng: random.Random, ranges: list[list[float]]) -> tuple[float, float, float]:
    return tuple(_r(rng.uniform(lo, hi)) for lo, hi in ranges)  # type: ignore[return-value]


def _upright(
    name: str,
    category: str,
    size: tuple[float, float, float],
    xy: tuple[float, float],
    base_z: float,
    yaw_deg: float,
    support: str,
) -> Box:
    return Box(
        name=name,
        category=category,
        size=size,
        center=(_r(xy[0]), _r(xy[1]), _r(base_z + size[2] / 2, 6)),
        rotation=tuple(tuple(float(v) for v in row) for row in rot_z(math.radians(yaw_deg))),
        support=support,
        yaw_deg=yaw_deg,
    )


def _place(
    rng: random.Random,
    size: tuple[float, float, float],
    bounds: tuple[float, float, float, float],
    taken: list[tuple[float, float, float]],
) -> tuple[float, float] | None:
    """A footprint centre inside ``bounds`` (x0, x1, y0, y1) clear of every taken circle."""
    radius = math.hypot(size[0], size[1]) / 2
    x0, x1, y0, y1 = bounds
    if x1 - x0 < 2 * radius or y1 - y0 < 2 * radius:
        return None
    for _ in range(60):
        x = rng.uniform(x0 + radius, x1 - radius)
        y = rng.uniform(y0 + radius, y1 - radius)
        if all(math.hypot(x - tx, y - ty) >= radius + tr + GAP for tx, ty, tr in taken):
            taken.append((x, y, radius))
            return x, y
    return None


def _names(categories: list[str]) -> list[str]:
    """Unique object names: "mug", "mug 2", ... in order of appearance."""
    seen: dict[str, int] = {}
    out = []
    for c in categories:
        seen[c] = seen.get(c, 0) + 1
        out.append(c if seen[c] == 1 else f"{c} {seen[c]}")
    return out


def _random_rotation(rng: random.Random) -> tuple[tuple[float, ...], ...]:
    q = [rng.gauss(0, 1) for _ in range(4)]
    return tuple(tuple(float(v) for v in row) for row in quat_to_matrix(tuple(q)))  # type: ignore[arg-type]


def _cameras(
    rng: random.Random,
    catalog: dict[str, Any],
    eyes: list[np.ndarray],
    targets: list[np.ndarray],
) -> tuple[Camera, ...]:
    spec = catalog["cameras"]
    cams = []
    for name, eye, target in zip(spec["names"], eyes, targets, strict=False):
        f = _r(rng.uniform(*spec["focal"]), 2)
        rotation = look_at(eye, target)
        cams.append(
            Camera(
                name=name,
                fx=f,
                fy=f,
                cx=_r(spec["width"] / 2 + rng.uniform(-4, 4), 2),
                cy=_r(spec["height"] / 2 + rng.uniform(-4, 4), 2),
                width=spec["width"],
                height=spec["height"],
                rotation=tuple(tuple(float(v) for v in row) for row in rotation),
                translation=tuple(_r(v) for v in eye),
            )
        )
    return tuple(cams)


def _part(rng: random.Random, catalog: dict[str, Any], center: np.ndarray) -> Box:
    category = rng.choice(sorted(catalog["parts"]))
    return Box(
        name=category,
        category=category,
        size=_size(rng, catalog["parts"][category]),
        center=tuple(_r(v) for v in center),
        rotation=_random_rotation(rng),
        support="gripper",
        yaw_deg=None,
    )


def tabletop_scene(scene_id: str, split: str, rng: random.Random) -> SceneSpec:
    catalog = load_catalog()
    spec = catalog["tabletop"]
    tw, td, th = _size(rng, spec["table"]["size"])
    table = _upright("table", "table", (tw, td, th), (0.0, 0.0), 0.0, 0.0, "floor")
    objects = [table]
    taken: list[tuple[float, float, float]] = []
    shelf = None
    if rng.random() < 0.7:
        size = _size(rng, spec["shelf"]["size"])
        base = th + rng.uniform(*spec["shelf"]["clearance"])
        x = rng.uniform(-tw / 2 + size[0] / 2, tw / 2 - size[0] / 2)
        shelf = _upright("wall shelf", "shelf", size, (x, td / 2 - size[1] / 2), base, 0.0, "wall")
    n = rng.randint(*spec["count"])
    categories = [rng.choice(sorted(spec["objects"])) for _ in range(n)]
    margin = 0.03
    bounds = (-tw / 2 + margin, tw / 2 - margin, -td / 2 + margin, td / 2 - margin)
    for name, category in zip(_names(categories), categories, strict=True):
        size = _size(rng, spec["objects"][category])
        xy = _place(rng, size, bounds, taken)
        if xy is not None:
            yaw = _r(rng.uniform(-180, 180), 2)
            objects.append(_upright(name, category, size, xy, th, yaw, "table"))
    if shelf is not None:
        objects.append(shelf)
    robot_yaw = 90.0 + rng.uniform(-20, 20)
    robot_xy = (rng.uniform(-tw / 4, tw / 4), -td / 2 - 0.12)
    robot_t = (robot_xy[0], robot_xy[1], th)
    objects.append(
        _part(rng, catalog, np.array([robot_xy[0], -td / 4, th + rng.uniform(0.3, 0.45)]))
    )
    eyes, targets = [], []
    n_cams = rng.randint(1, 3)
    azimuths = rng.sample([-90.0, -45.0, 0.0, 45.0, 90.0, 135.0, -135.0], n_cams)
    for az in azimuths:
        dist = rng.uniform(*spec["camera_distance"]) + td / 2
        a = math.radians(az - 90)  # azimuth 0 looks from the robot's side (-y) towards +y
        eye = np.array(
            [dist * math.cos(a), dist * math.sin(a), th + rng.uniform(*spec["camera_height"])]
        )
        targets.append(np.array([rng.uniform(-0.1, 0.1), rng.uniform(-0.1, 0.1), th]))
        eyes.append(eye)
    return SceneSpec(
        scene_id=scene_id,
        split=split,
        kind="tabletop",
        objects=tuple(objects),
        cameras=_cameras(rng, catalog, eyes, targets),
        robot_rotation=tuple(
            tuple(float(v) for v in row) for row in rot_z(math.radians(robot_yaw))
        ),
        robot_translation=tuple(_r(v) for v in robot_t),
        correspondence_seed=f"{scene_id}/{rng.random():.12f}",
    )


def room_scene(scene_id: str, split: str, rng: random.Random) -> SceneSpec:
    catalog = load_catalog()
    spec = catalog["room"]
    w = rng.uniform(*spec["extent"][0])
    d = rng.uniform(*spec["extent"][1])
    objects: list[Box] = []
    taken: list[tuple[float, float, float]] = []
    robot_xy = (rng.uniform(-w / 4, w / 4), -d / 2 + 0.6)
    taken.append((robot_xy[0], robot_xy[1], 0.45))  # the robot's own footprint stays free
    shelf = None
    if rng.random() < 0.7:
        size = _size(rng, spec["shelf"]["size"])
        base = rng.uniform(*spec["shelf"]["clearance"])
        x = rng.uniform(-w / 2 + size[0] / 2 + 0.1, w / 2 - size[0] / 2 - 0.1)
        shelf = _upright("wall shelf", "shelf", size, (x, d / 2 - size[1] / 2), base, 0.0, "wall")
    n = rng.randint(*spec["count"])
    categories = [rng.choice(sorted(spec["objects"])) for _ in range(n)]
    bounds = (-w / 2 + 0.1, w / 2 - 0.1, -d / 2 + 0.1, d / 2 - 0.1)
    for name, category in zip(_names(categories), categories, strict=True):
        size = _size(rng, spec["objects"][category])
        xy = _place(rng, size, bounds, taken)
        if xy is not None:
            yaw = _r(rng.uniform(-180, 180), 2)
            objects.append(_upright(name, category, size, xy, 0.0, yaw, "floor"))
    if shelf is not None:
        objects.append(shelf)
    robot_yaw = 90.0 + rng.uniform(-30, 30)
    objects.append(
        _part(rng, catalog, np.array([robot_xy[0], robot_xy[1] + 0.45, rng.uniform(0.8, 1.2)]))
    )
    eyes, targets = [], []
    corners = rng.sample([(-1, -1), (1, -1), (-1, 1), (1, 1)], rng.randint(1, 3))
    for sx, sy in corners:
        eye = np.array(
            [sx * (w / 2 - 0.15), sy * (d / 2 - 0.15), rng.uniform(*spec["camera_height"])]
        )
        targets.append(np.array([rng.uniform(-0.4, 0.4), rng.uniform(-0.4, 0.4), 0.3]))
        eyes.append(eye)
    return SceneSpec(
        scene_id=scene_id,
        split=split,
        kind="room",
        objects=tuple(objects),
        cameras=_cameras(rng, catalog, eyes, targets),
        robot_rotation=tuple(
            tuple(float(v) for v in row) for row in rot_z(math.radians(robot_yaw))
        ),
        robot_translation=(_r(robot_xy[0]), _r(robot_xy[1]), 0.0),
        correspondence_seed=f"{scene_id}/{rng.random():.12f}",
    )


def generate_scenes() -> list[SceneSpec]:
    scenes = []
    for split, count in SCENES_PER_SPLIT.items():
        for i in range(count):
            scene_id = f"geo-{split}-{i:03d}"
            rng = random.Random(f"hiergym/geometry/scene/{scene_id}")
            make = tabletop_scene if rng.random() < 0.6 else room_scene
            scenes.append(make(scene_id, split, rng))
    return scenes


#: ``add_tasks(conn, scenes, progress)`` writes the tasks table: env.py passes
#: ``tasks.generate_tasks`` bound to the oracle's prover (see hiergym.envs.building).
AddTasks = Callable[[sqlite3.Connection, list[SceneSpec], Progress], None]


def build(conn: sqlite3.Connection, progress: Progress, *, add_tasks: AddTasks) -> None:
    """The whole geometry sandbox: scenes, then the tasks ``add_tasks`` writes (the env passes the
    task generator bound to the oracle's prover, so every task is proven solvable)."""
    conn.executescript(SCHEMA)
    scenes = generate_scenes()
    advance = progress("geometry: scenes", total=len(scenes))
    for s in scenes:
        conn.execute(
            "INSERT INTO scenes VALUES (?,?,?,?)", (s.scene_id, s.split, s.kind, s.to_json())
        )
        advance(1)
    conn.commit()
    add_tasks(conn, scenes, progress)
    conn.commit()


def database_path(*, add_tasks: AddTasks) -> Path:
    """The sandbox DB, built first (with ``add_tasks`` writing its tasks) if this data version is
    new."""
    return build_database(
        "geometry",
        source_dir("geometry"),
        functools.partial(build, add_tasks=add_tasks),
        GENERATOR_VERSION,
        code_dir=Path(__file__).parent,
    )
