"""Geometry tasks: five families, each easy / medium / hard, over the scenes of one split.

* point_transform — an object's anchor in the world (easy), robot-base (medium) or another
  camera's frame, in centimetres (hard);
* distance_angle — distance between two anchors seen by one camera (easy), horizontal distance
  across cameras (medium), the angle at one object between two others (hard);
* pose_estimation — a held part's pose from 3D-3D correspondences in the camera frame (easy, Kabsch)
  or the robot-base frame (medium), or from 2D-3D correspondences (hard, PnP);
* spatial_fit (yes/no) — does one footprint fit on another's top (easy), does an object fit under
  the wall shelf (medium), would it stand between two others without overlap (hard);
* area_volume — a bounding-box volume (easy), the triangle of three anchors (medium), the floor
  area of the convex hull of 4-6 anchors (hard).

Ground truth is computed from the scene itself; each task is then proven solvable by the oracle
through the tools, within half the tolerance, before it is stored (the prover comes from env.py,
``oracle.prove``, through ``hiergym.envs.building.prove_tasks``: this module never imports the
oracle or the verifier). Yes/no tasks keep a margin
(3 mm to 1 cm) so that measurement rounding can never flip the answer.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

import numpy as np

from hiergym.envs.building import Cell, Prover, prove_tasks
from hiergym.envs.core import TaskSet, load_task_table
from hiergym.envs.sandbox import Progress
from hiergym.errors import TaskError

from . import solvers
from .data import DIFFICULTIES, TASKS_PER_SPLIT
from .scene import ROBOT_BASE, WORLD, Scene, SceneSpec

FAMILIES = ("point_transform", "distance_angle", "pose_estimation", "spatial_fit", "area_volume")
LENGTH_TOLERANCE = 0.01
ANGLE_TOLERANCE = 1.0
RELATIVE_TOLERANCE = 0.01
MAX_DRAWS_PER_TASK = 200


@dataclass(frozen=True)
class GeometryTask:
    task_id: str
    split: str
    difficulty: str
    family: str
    scene_id: str
    question: str
    answer_type: str  # length | angle | area | volume | point | pose | bool
    answer: Any  # canonical units: m, deg, m^2, m^3; a point in `frame`; a pose; a bool
    frame: str | None
    params: dict[str, Any]
    evidence: tuple[tuple[Any, ...], ...]
    tolerance: float
    oracle_calls: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> GeometryTask:
        d = json.loads(text)
        d["evidence"] = tuple(tuple(e) for e in d["evidence"])
        return cls(**d)


def tolerance_for(answer_type: str, answer: Any) -> float:
    """Absolute tolerance in canonical units (pose: metres; its rotation always gets 1 degree)."""
    if answer_type in ("length", "point", "pose"):
        return LENGTH_TOLERANCE
    if answer_type == "angle":
        return ANGLE_TOLERANCE
    if answer_type == "area":
        return max(1e-4, RELATIVE_TOLERANCE * abs(answer))
    if answer_type == "volume":
        return max(1e-6, RELATIVE_TOLERANCE * abs(answer))
    return 0.0


PREAMBLE = (
    "Conventions: the world frame has z up and the floor at z = 0; lengths are metres. Frames: "
    "world, robot_base and one per camera (OpenCV: x right, y down, z forward). An object's anchor "
    "is the centre of its top face: detect gives its image point (the centroid), depth_at there "
    "gives its depth, pixel_to_point turns both into a point in the camera frame, and transform "
    "moves points between frames. An object's centre is its anchor lowered by half its height "
    "(size z)."
)


def render_prompt(task: GeometryTask) -> str:
    tolerance = {
        "length": "1 cm",
        "point": "1 cm",
        "angle": "1 degree",
        "pose": "1 cm and 1 degree",
        "area": "1%",
        "volume": "1%",
        "bool": "exact",
    }[task.answer_type]
    return (
        f"Scene {task.scene_id}.\n{task.question}\n\n{PREAMBLE}\n"
        f"Use the tools (every call names scene={task.scene_id!r}), then call submit with your "
        f"answer, its unit{' and frame' if task.frame else ''}. Tolerance: {tolerance}."
    )


# --------------------------------------------------------------------------------------------
# What each scene offers


def anchor_views(scene: Scene) -> dict[str, list[str]]:
    """Camera -> objects whose anchor it sees robustly (the same object 1.5 px around it)."""
    views: dict[str, list[str]] = {}
    for cam_name, cam in scene.cameras.items():
        names = []
        for b in scene.spec.objects:
            if b.support == "gripper":
                continue
            det = scene.detection(cam_name, b.name)
            if det is None or not det["anchor_visible"]:
                continue
            u, v = det["centroid"]
            if not (3 <= u <= cam.width - 3 and 3 <= v <= cam.height - 3):
                continue
            around = [(1.5, 0), (-1.5, 0), (0, 1.5), (0, -1.5)]
            if all(scene.raycast(cam_name, u + du, v + dv)[1] == b.name for du, dv in around):
                names.append(b.name)
        views[cam_name] = names
    return views


def _seen(views: dict[str, list[str]]) -> dict[str, str]:
    """Object -> the first camera that sees its anchor."""
    out: dict[str, str] = {}
    for cam, names in views.items():
        for n in names:
            out.setdefault(n, cam)
    return out


def _anchor(scene: Scene, cam: str, name: str) -> tuple[Any, ...]:
    u, v = scene.detection(cam, name)["centroid"]
    return ("anchor", cam, name, round(u, 4), round(v, 4))


def _frames(*names: str) -> tuple[tuple[Any, ...], ...]:
    distinct = tuple(dict.fromkeys(names))
    return (("frames", *distinct),) if len(distinct) > 1 else ()


def _in_frame(scene: Scene, frame: str, point: np.ndarray) -> np.ndarray:
    m = scene.transform(WORLD, frame)
    return m[:3, :3] @ point + m[:3, 3]


# --------------------------------------------------------------------------------------------
# Builders: (rng, scene, difficulty, variant) -> task fields, or None when the scene cannot
# host the task. ``variant`` is the task's index; yes/no builders alternate their answer with it.


def point_task(
    rng: random.Random, scene: Scene, difficulty: str, variant: int
) -> dict[str, Any] | None:
    seen = _seen(anchor_views(scene))
    if not seen:
        return None
    obj = rng.choice(sorted(seen))
    cam = seen[obj]
    others = [c for c in scene.cameras if c != cam]
    if difficulty == "easy":
        frame = WORLD
    elif difficulty == "medium" or not others:
        frame = ROBOT_BASE
    else:
        frame = rng.choice(others)
    answer = _in_frame(scene, frame, scene.objects[obj].anchor)
    if np.abs(answer).max() < 0.05:
        return None
    unit = "in centimetres" if difficulty == "hard" else "in metres"
    return {
        "question": (
            f"Where is the anchor of the {obj} (measure it in {cam}) in the {frame} frame? "
            f'Submit [x, y, z] {unit} with frame "{frame}".'
        ),
        "answer_type": "point",
        "answer": answer.tolist(),
        "frame": frame,
        "params": {"camera": cam, "object": obj},
        "evidence": (_anchor(scene, cam, obj), *_frames(cam, frame)),
    }


def distance_task(
    rng: random.Random, scene: Scene, difficulty: str, variant: int
) -> dict[str, Any] | None:
    views = anchor_views(scene)
    if difficulty == "easy":
        cams = [c for c, names in views.items() if len(names) >= 2]
        if not cams:
            return None
        cam = rng.choice(cams)
        a, b = rng.sample(views[cam], 2)
        pa, pb = scene.objects[a].anchor, scene.objects[b].anchor
        answer = float(np.linalg.norm(pa - pb))
        if answer < 0.05:
            return None
        return {
            "question": (
                f"How far apart are the anchors of the {a} and the {b}, both measured in {cam}? "
                "Submit the straight-line distance with its unit."
            ),
            "answer_type": "length",
            "answer": answer,
            "frame": None,
            "params": {"cameras": [cam, cam], "objects": [a, b]},
            "evidence": (_anchor(scene, cam, a), _anchor(scene, cam, b)),
        }
    seen = _seen(views)
    k = 2 if difficulty == "medium" else 3
    if len(seen) < k:
        return None
    names = rng.sample(sorted(seen), k)
    # Prefer a different camera per object when several see it: cross-camera reasoning.
    cams = []
    for n in names:
        options = [c for c, v in views.items() if n in v]
        fresh = [c for c in options if c not in cams]
        cams.append(rng.choice(fresh or options))
    points = [scene.objects[n].anchor for n in names]
    evidence = tuple(_anchor(scene, c, n) for c, n in zip(cams, names, strict=True))
    if difficulty == "medium":
        answer = float(np.linalg.norm((points[0] - points[1])[:2]))
        if answer < 0.05:
            return None
        return {
            "question": (
                f"What is the horizontal distance (ignoring height) between the anchors of the "
                f"{names[0]} (measure it in {cams[0]}) and the {names[1]} (measure it in "
                f"{cams[1]})? Submit it with its unit."
            ),
            "answer_type": "length",
            "answer": answer,
            "frame": None,
            "params": {"cameras": cams, "objects": names},
            "evidence": (*evidence, *_frames(*cams, WORLD)),
        }
    a, v, b = points
    cos = np.dot(a - v, b - v) / np.linalg.norm(a - v) / np.linalg.norm(b - v)
    answer = math.degrees(math.acos(max(-1.0, min(1.0, float(cos)))))
    if not 10 <= answer <= 170 or min(np.linalg.norm(a - v), np.linalg.norm(b - v)) < 0.1:
        return None
    return {
        "question": (
            f"What is the angle at the anchor of the {names[1]} (measure it in {cams[1]}) between "
            f"the directions to the anchors of the {names[0]} (in {cams[0]}) and the {names[2]} "
            f"(in {cams[2]})? Submit it with its unit."
        ),
        "answer_type": "angle",
        "answer": answer,
        "frame": None,
        "params": {"cameras": cams, "objects": names},
        "evidence": (*evidence, *_frames(*cams)),
    }


def pose_task(
    rng: random.Random, scene: Scene, difficulty: str, variant: int
) -> dict[str, Any] | None:
    from .tools import MODEL_SIGNS

    part = next(b for b in scene.spec.objects if b.support == "gripper")
    model = MODEL_SIGNS * (np.asarray(part.size) / 2)
    world = model @ np.asarray(part.rotation).T + np.asarray(part.center)
    cams = []
    for name, cam in scene.cameras.items():
        pixels, depths = scene.project(name, world)
        inside = (pixels[:, 0] > 0) & (pixels[:, 0] < cam.width)
        inside &= (pixels[:, 1] > 0) & (pixels[:, 1] < cam.height)
        if (depths > 0.2).all() and inside.all():
            cams.append(name)
    if not cams:
        return None
    cam = rng.choice(cams)
    frame = ROBOT_BASE if difficulty == "medium" else cam
    m = scene.transform(WORLD, frame)
    rotation = m[:3, :3] @ np.asarray(part.rotation)
    translation = m[:3, :3] @ np.asarray(part.center) + m[:3, 3]
    kind = "2d-3d" if difficulty == "hard" else "3d-3d"
    method = "PnP on 2D-3D" if kind == "2d-3d" else "3D-3D (Kabsch)"
    evidence: tuple[tuple[Any, ...], ...] = (("correspondences", cam, part.name, kind),)
    if difficulty == "hard":
        evidence += (("camera", cam),)
    evidence += _frames(cam, frame)
    return {
        "question": (
            f"The robot holds a {part.name}. Estimate its pose in the {frame} frame from "
            f"{method} correspondences seen by {cam} (get_correspondences, kind {kind!r}). "
            'Submit {"rotation": 3x3, "translation": [x, y, z]} with its unit and frame '
            f'"{frame}" (the pose maps part coordinates to {frame} coordinates).'
        ),
        "answer_type": "pose",
        "answer": {"rotation": rotation.tolist(), "translation": translation.tolist()},
        "frame": frame,
        "params": {"camera": cam, "object": part.name},
        "evidence": evidence,
    }


def _footprint_margin(x: Any, y: Any) -> float:
    """How much room a footprint has on another's top (negative: it overhangs), 90 deg turns allowed."""
    (xw, xd, _), (yw, yd, _) = x.size, y.size
    return max(min(yw - xw, yd - xd), min(yd - xw, yw - xd))


def fit_task(
    rng: random.Random, scene: Scene, difficulty: str, variant: int
) -> dict[str, Any] | None:
    want = variant % 2 == 0
    grounded = [b for b in scene.spec.objects if b.support in ("table", "floor")]
    if difficulty == "easy":
        pairs = [
            (x, y)
            for x, y in itertools.permutations(grounded, 2)
            if y.category != "table" and abs(_footprint_margin(x, y)) >= 0.003
        ]
        good = [(x, y) for x, y in pairs if (_footprint_margin(x, y) >= 0) == want]
        if not good:
            return None
        x, y = rng.choice(good)
        return {
            "question": (
                f"Would the footprint of the {x.name} fit within the top face of the {y.name} "
                "(turning it by 90 degrees about the vertical is allowed)? Submit yes or no."
            ),
            "answer_type": "bool",
            "answer": _footprint_margin(x, y) >= 0,
            "frame": None,
            "params": {"object": x.name, "base": y.name},
            "evidence": (("objects",),),
        }
    views = anchor_views(scene)
    seen = _seen(views)
    support = "table" if scene.spec.kind == "tabletop" else "floor"
    floor = scene.objects["table"].size[2] if support == "table" else 0.0
    if difficulty == "medium":
        shelf = scene.objects.get("wall shelf")
        if shelf is None or shelf.name not in seen:
            return None
        clearance = shelf.anchor[2] - shelf.size[2] - floor
        fits = [b for b in grounded if b.support == support and abs(b.size[2] - clearance) >= 0.01]
        good = [b for b in fits if (b.size[2] <= clearance) == want]
        if not good:
            return None
        x = rng.choice(good)
        cam = seen[shelf.name]
        return {
            "question": (
                f"Could the {x.name} stand upright on the {support} directly under the wall shelf "
                f"without touching it? Measure the shelf's anchor in {cam}; "
                + (
                    "the table top is at the table's height (size z). "
                    if support == "table"
                    else "the floor is z = 0. "
                )
                + "Submit yes or no."
            ),
            "answer_type": "bool",
            "answer": bool(x.size[2] <= clearance),
            "frame": None,
            "params": {"object": x.name, "shelf": shelf.name, "camera": cam},
            "evidence": (("objects",), _anchor(scene, cam, shelf.name), *_frames(cam, WORLD)),
        }
    ns = solvers.namespace()
    reach = 0.9 if support == "table" else 2.5
    options = []
    on_support = [b for b in grounded if b.support == support and b.category != "table"]
    for a, b in itertools.combinations([o for o in on_support if o.name in seen], 2):
        ca, cb = np.asarray(a.center), np.asarray(b.center)
        if np.linalg.norm((ca - cb)[:2]) > reach:
            continue
        for x in on_support:
            if x in (a, b):
                continue
            out = ns["fits_between"](
                list(ca), list(a.size), a.yaw_deg, list(cb), list(b.size), b.yaw_deg, list(x.size)
            )
            gap = min(out["gaps_m"])
            if abs(gap) >= 0.005:
                options.append((a, b, x, gap > 0))
    good = [o for o in options if o[3] == want]
    if not good:
        return None
    a, b, x, fits = rng.choice(good)
    cams = [seen[a.name], seen[b.name]]
    return {
        "question": (
            f"Imagine the {x.name} standing upright on the {support} with its centre at the "
            f"midpoint between the centres of the {a.name} (measure it in {cams[0]}) and the "
            f"{b.name} (in {cams[1]}), turned so that its own x axis (its first size) points "
            f"from the {a.name} to the {b.name}. Would its footprint be clear of both (no "
            "overlap)? Submit yes or no."
        ),
        "answer_type": "bool",
        "answer": bool(fits),
        "frame": None,
        "params": {"object": x.name, "objects": [a.name, b.name], "cameras": cams},
        "evidence": (
            ("objects",),
            _anchor(scene, cams[0], a.name),
            _anchor(scene, cams[1], b.name),
            *_frames(*cams, WORLD),
        ),
    }


def area_task(
    rng: random.Random, scene: Scene, difficulty: str, variant: int
) -> dict[str, Any] | None:
    if difficulty == "easy":
        x = rng.choice([b for b in scene.spec.objects if b.support != "gripper"])
        return {
            "question": (
                f"What is the volume of the {x.name}'s bounding box? Submit it with its unit "
                "(litres, cm^3 or m^3)."
            ),
            "answer_type": "volume",
            "answer": float(np.prod(x.size)),
            "frame": None,
            "params": {"object": x.name},
            "evidence": (("objects",),),
        }
    views = anchor_views(scene)
    seen = _seen(views)
    k = 3 if difficulty == "medium" else rng.randint(4, 6)
    if len(seen) < k:
        return None
    names = rng.sample(sorted(seen), k)
    cams = [rng.choice([c for c, v in views.items() if n in v]) for n in names]
    points = np.array([scene.objects[n].anchor for n in names])
    evidence = tuple(_anchor(scene, c, n) for c, n in zip(cams, names, strict=True))
    listed = ", ".join(f"the {n} (in {c})" for n, c in zip(names, cams, strict=True))
    if difficulty == "medium":
        answer = float(np.linalg.norm(np.cross(points[1] - points[0], points[2] - points[0])) / 2)
        if answer < 0.005:
            return None
        return {
            "question": (
                f"What is the area of the triangle whose corners are the anchors of {listed}? "
                "Submit it with its unit."
            ),
            "answer_type": "area",
            "answer": answer,
            "frame": None,
            "params": {"cameras": cams, "objects": names},
            "evidence": (*evidence, *_frames(*cams)),
        }
    answer = solvers.namespace()["hull_area"](points[:, :2].tolist())
    if answer < 0.01:
        return None
    return {
        "question": (
            f"Project the anchors of {listed} straight down onto the floor. What is the area of "
            "their convex hull? Submit it with its unit."
        ),
        "answer_type": "area",
        "answer": answer,
        "frame": None,
        "params": {"cameras": cams, "objects": names},
        "evidence": (*evidence, *_frames(*cams, WORLD)),
    }


BUILDERS = {
    "point_transform": point_task,
    "distance_angle": distance_task,
    "pose_estimation": pose_task,
    "spatial_fit": fit_task,
    "area_volume": area_task,
}


# --------------------------------------------------------------------------------------------
# Generation and loading


def generate_tasks(
    conn: sqlite3.Connection, scenes: list[SceneSpec], progress: Progress, *, prove: Prover
) -> None:
    """Draw tasks per split and difficulty, task ``i`` of family ``FAMILIES[i % 5]``; keep the
    first draw of each slot that ``prove`` (the oracle's prover, handed down by env.py) accepts,
    within ``MAX_DRAWS_PER_TASK`` draws, else the build fails naming the slot."""
    state = SimpleNamespace(db=conn, memory={})
    by_split = {s: [Scene(sc) for sc in scenes if sc.split == s] for s in TASKS_PER_SPLIT}

    def candidates(cell: Cell) -> Iterator[GeometryTask]:
        split, difficulty = cell.split, cell.difficulty
        rng = random.Random(f"hiergym/geometry/tasks/{split}/{difficulty}")
        for index in range(cell.want):
            family = FAMILIES[index % len(FAMILIES)]
            for _ in range(MAX_DRAWS_PER_TASK):
                scene = rng.choice(by_split[split])
                fields = BUILDERS[family](rng, scene, difficulty, index // len(FAMILIES))
                if fields is None:
                    continue
                yield GeometryTask(
                    task_id=f"geometry-{split}-{difficulty}-{index:04d}",
                    split=split,
                    difficulty=difficulty,
                    family=family,
                    scene_id=scene.scene_id,
                    tolerance=tolerance_for(fields["answer_type"], fields["answer"]),
                    **fields,
                )
                if cell.kept > index:  # proven: on to the next slot
                    break
            else:
                raise TaskError(
                    f"geometry: no {family} task for {cell.name} (task {index}) proven solvable "
                    f"in {MAX_DRAWS_PER_TASK} draws; fix the family's builder or the oracle"
                )

    kept = prove_tasks(
        candidates,
        functools.partial(prove, state),
        domain="geometry",
        want=TASKS_PER_SPLIT,
        difficulties=DIFFICULTIES,
        progress=progress,
    )
    conn.executemany(
        "INSERT INTO tasks VALUES (?,?,?,?,?)",
        [(t.task_id, t.split, t.difficulty, t.family, t.to_json()) for t in kept],
    )


def load_tasks(db: Any, db_key: str, split: str, difficulty: str) -> TaskSet:
    """The task set of one split and difficulty, read once per process."""
    return load_task_table(db, db_key, split, difficulty, GeometryTask.from_json)


def first_task(db: Any, split: str, difficulty: str, family: str) -> GeometryTask:
    """The first task of a family in one split and difficulty (mutants retarget with it)."""
    row = db.execute(
        "SELECT payload FROM tasks WHERE split = ? AND difficulty = ? AND family = ? "
        "ORDER BY task_id LIMIT 1",
        (split, difficulty, family),
    ).fetchone()
    return GeometryTask.from_json(row[0])
