"""The numeric solvers the oracle runs through the ``python`` tool (Kabsch, PnP, footprint
clearance, convex-hull area), kept as source text so the oracle can send exactly this code.

``SOURCE`` passes the python tool's checks (allowed imports, no ``_`` names). ``namespace()`` runs it
in-process once, so the oracle knows what its python call will print.
"""

from __future__ import annotations

import functools
import json
from typing import Any

SOURCE = '''
import json
import numpy as np
from scipy.optimize import least_squares
from scipy.spatial import ConvexHull
from scipy.spatial.transform import Rotation


def kabsch(model, observed):
    """The rotation and translation that best map model points onto observed points."""
    p = np.asarray(model, float)
    q = np.asarray(observed, float)
    pc, qc = p.mean(axis=0), q.mean(axis=0)
    u, s, vt = np.linalg.svd((p - pc).T @ (q - qc))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, qc - r @ pc


def pnp(model, pixels, k):
    """Pose from 2D-3D correspondences: normalised DLT, then reprojection least squares."""
    p = np.asarray(model, float)
    uv = np.asarray(pixels, float)
    k = np.asarray(k, float)
    xn = np.linalg.solve(k, np.column_stack([uv, np.ones(len(uv))]).T).T
    rows = []
    for (x, y, z), (a, b, one) in zip(p, xn):
        rows.append([x, y, z, 1, 0, 0, 0, 0, -a * x, -a * y, -a * z, -a])
        rows.append([0, 0, 0, 0, x, y, z, 1, -b * x, -b * y, -b * z, -b])
    m = np.linalg.svd(np.array(rows))[2][-1].reshape(3, 4)
    if np.linalg.det(m[:, :3]) < 0:
        m = -m
    u, s, vt = np.linalg.svd(m[:, :3])
    x0 = np.concatenate([Rotation.from_matrix(u @ vt).as_rotvec(), m[:, 3] / s.mean()])

    def residual(x):
        cam = p @ Rotation.from_rotvec(x[:3]).as_matrix().T + x[3:]
        proj = cam @ k.T
        return (proj[:, :2] / proj[:, 2:3] - uv).ravel()

    x = least_squares(residual, x0).x
    return Rotation.from_rotvec(x[:3]).as_matrix(), x[3:]


def compose(matrix, r, t):
    """A pose (r, t) mapped through a 4x4 frame transform."""
    m = np.asarray(matrix, float)
    return m[:3, :3] @ r, m[:3, :3] @ t + m[:3, 3]


def footprint(cx, cy, w, d, yaw_deg):
    a = np.radians(yaw_deg)
    axes = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
    local = np.array([[sx * w / 2, sy * d / 2] for sx in (-1, 1) for sy in (-1, 1)])
    return local @ axes + [cx, cy], axes


def separation(a, b):
    """Positive: the gap between two footprints along the best separating axis; negative: overlap."""
    best = -np.inf
    for axis in np.vstack([a[1], b[1]]):
        pa, pb = a[0] @ axis, b[0] @ axis
        best = max(best, pb.min() - pa.max(), pa.min() - pb.max())
    return float(best)


def fits_between(a_center, a_size, a_yaw, b_center, b_size, b_yaw, x_size):
    """Does x stand at the midpoint of a and b, turned along a->b, touching neither?"""
    a_center, b_center = np.asarray(a_center, float), np.asarray(b_center, float)
    mid = (a_center + b_center) / 2
    yaw = np.degrees(np.arctan2(*(b_center - a_center)[1::-1]))
    x = footprint(mid[0], mid[1], x_size[0], x_size[1], yaw)
    gaps = [
        separation(x, footprint(a_center[0], a_center[1], a_size[0], a_size[1], a_yaw)),
        separation(x, footprint(b_center[0], b_center[1], b_size[0], b_size[1], b_yaw)),
    ]
    return {"fits": min(gaps) > 0, "gaps_m": gaps}


def pose_json(pose):
    r, t = pose
    return {"rotation": np.round(r, 9).tolist(), "translation": np.round(t, 6).tolist()}


def hull_area(points_xy):
    return float(ConvexHull(np.asarray(points_xy, float)).volume)
'''


@functools.lru_cache(maxsize=1)
def namespace() -> dict[str, Any]:
    ns: dict[str, Any] = {}
    exec(compile(SOURCE, "<geometry solvers>", "exec"), ns)  # our own code, not an agent's
    return ns


def program(call: str) -> str:
    """The python-tool program that prints ``call``'s result as JSON."""
    return f"{SOURCE}\nprint(json.dumps({call}))\n"


def run_here(call: str) -> Any:
    """What ``program(call)`` prints, computed in this process (JSON round trip included)."""
    ns = dict(namespace())
    return json.loads(json.dumps(eval(call, ns)))  # noqa: S307 - our own expression
