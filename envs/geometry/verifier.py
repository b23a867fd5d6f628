"""Geometry verifier: format -> tool_use -> precision -> grounding, gated.

* format — one submission whose answer parses as the task's type, with a unit where one is needed
  (converted exactly: 0.10 m == 10 cm) and, for points and poses, the task's frame;
* tool_use — ToolRL-style: the share of calls that named a real tool with valid arguments, ran
  without error and asked about the task's scene; passes at 0.75;
* precision — 1.0 within the task's tolerance (1 cm, 1 degree; 1 % for areas and volumes; a pose
  needs both 1 cm and 1 degree). Outside it, partial credit: 0.9 x the mean relative accuracy over
  thresholds 0.50, 0.55, ..., 0.95 (VSI-Bench's MRA), so a miss never earns full credit; passes only
  within tolerance;
* grounding — every measurement the answer depends on was obtained through tools in this
  trajectory: each anchor by depth_at at its centroid (within 1 px) in the named camera, the frames
  it must cross connected by transform / get_camera results, sizes by list_objects, correspondences
  and intrinsics by their tools. A precise answer without any of them is flagged as a guess.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hiergym.envs.core import missing_submission
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from .scene import WORLD, rotation_angle_deg
from .tasks import ANGLE_TOLERANCE, GeometryTask
from .units import AnswerError, parse_answer

MRA_THRESHOLDS = tuple(0.50 + 0.05 * i for i in range(10))
PARTIAL_CAP = 0.9
PIXEL_SLACK = 1.0
TOOL_USE_THRESHOLD = 0.75


def mean_relative_accuracy(relative_error: float) -> float:
    """VSI-Bench's MRA: the share of thresholds t in 0.50..0.95 with relative error < 1 - t."""
    return sum(relative_error < 1 - t for t in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def parse_submission(task: GeometryTask, arguments: Mapping[str, Any]) -> Any:
    """The canonical value of a submit call's answer for ``task``, or an AnswerError."""
    if task.frame is not None:
        frame = arguments.get("frame")
        if frame is not None and str(frame).strip() != task.frame:
            raise AnswerError(
                f"the answer must be expressed in the {task.frame!r} frame; it says {frame!r}"
            )
    return parse_answer(task.answer_type, arguments.get("answer"), arguments.get("unit"))


@dataclass(frozen=True)
class Judgement:
    passed: bool
    score: float
    ratio: float
    """Error over tolerance (the larger of translation and rotation for a pose)."""
    findings: tuple[Finding, ...] = ()
    metrics: dict[str, Any] = field(default_factory=dict)


def compare(task: GeometryTask, value: Any) -> Judgement:
    """How close a parsed answer is to the truth, scored as the precision level scores it."""
    kind, truth = task.answer_type, task.answer
    if kind == "bool":
        ok = bool(value) == bool(truth)
        findings = () if ok else (Finding("wrong_answer", f"answered {'yes' if value else 'no'}"),)
        return Judgement(ok, 1.0 if ok else 0.0, 0.0 if ok else math.inf, findings)
    if kind == "pose":
        t_err = float(np.linalg.norm(np.subtract(value["translation"], truth["translation"])))
        r_err = rotation_angle_deg(np.asarray(value["rotation"]), np.asarray(truth["rotation"]))
        ratio = max(t_err / task.tolerance, r_err / ANGLE_TOLERANCE)
        rel = (t_err / max(float(np.linalg.norm(truth["translation"])), 1e-9), r_err / 180.0)
        mra = (mean_relative_accuracy(rel[0]) + mean_relative_accuracy(rel[1])) / 2
        metrics = {"translation_error_m": t_err, "rotation_error_deg": r_err}
        detail = f"translation off by {t_err * 100:.2f} cm, rotation by {r_err:.2f} deg"
    else:
        err = float(np.linalg.norm(np.subtract(value, truth)))
        scale = float(np.linalg.norm(truth))
        ratio = err / task.tolerance
        rel = (err / max(scale, 1e-12),)
        mra = mean_relative_accuracy(rel[0])
        metrics = {"error": err, "relative_error": rel[0]}
        detail = f"off by {err:.6g} (canonical units) against a tolerance of {task.tolerance:.6g}"
    if ratio <= 1.0:
        return Judgement(True, 1.0, ratio, (), metrics)
    metrics["mra"] = mra
    return Judgement(
        False, PARTIAL_CAP * mra, ratio, (Finding("out_of_tolerance", detail),), metrics
    )


def judge_submission(task: GeometryTask, arguments: Mapping[str, Any]) -> Judgement:
    """Parse and compare in one step (the task generator proves the oracle with it)."""
    try:
        value = parse_submission(task, arguments)
    except AnswerError as e:
        return Judgement(False, 0.0, math.inf, (Finding("bad_answer", str(e)),))
    return compare(task, value)


class FormatLevel(Level):
    name = "format"

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj = ctx.trajectory
        sub = traj.submission
        if sub is None:
            return self.result(0.0, [missing_submission(traj)])
        try:
            ctx.scratch["value"] = parse_submission(ctx.task, sub.arguments)
        except AnswerError as e:
            return self.result(0.0, [Finding("bad_answer", str(e))])
        return self.result(1.0)


def scene_of(arguments: Mapping[str, Any]) -> Any:
    """The scene a call asked about, as the tools read it (they strip the id)."""
    scene = arguments.get("scene")
    return scene.strip() if isinstance(scene, str) else scene


class ToolUseLevel(Level):
    name = "tool_use"
    threshold = TOOL_USE_THRESHOLD

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj, task = ctx.trajectory, ctx.task
        calls = traj.n_calls
        by_kind: dict[str, int] = {}
        for _, r in traj.results():
            if not r.ok:
                by_kind[r.error or "error"] = by_kind.get(r.error or "error", 0) + 1
        off_scene = sum(
            1
            for turn in traj.turns
            for call, r in zip(turn.calls, turn.results, strict=False)
            if r.ok and "scene" in call.arguments and scene_of(call.arguments) != task.scene_id
        )
        bad = sum(by_kind.values()) + off_scene
        score = (calls - bad) / calls if calls else 0.0
        findings = [Finding(kind, f"{n} call(s): {kind}") for kind, n in sorted(by_kind.items())]
        if off_scene:
            findings.append(Finding("off_scene", f"{off_scene} call(s) asked about another scene"))
        return self.result(
            max(0.0, score),
            findings,
            metrics={"calls": calls, "invalid": sum(by_kind.values()), "off_scene": off_scene},
        )


class PrecisionLevel(Level):
    name = "precision"

    def check(self, ctx: VerifyContext) -> LevelResult:
        if "value" not in ctx.scratch:
            raise SkipLevel("no parsable answer to compare")
        j = compare(ctx.task, ctx.scratch["value"])
        return self.result(j.score, j.findings, passed=j.passed, metrics=j.metrics)


@dataclass
class Observed:
    """What the agent obtained through successful tool calls about the task's scene."""

    objects: bool = False
    depths: list[tuple[str, float, float]] = field(default_factory=list)
    edges: list[tuple[str, str]] = field(default_factory=list)
    cameras: set[str] = field(default_factory=set)
    correspondences: set[tuple[str, str, str]] = field(default_factory=set)

    @classmethod
    def from_trajectory(cls, traj: Any, scene_id: str) -> Observed:
        seen = cls()
        for turn in traj.turns:
            for call, r in zip(turn.calls, turn.results, strict=False):
                a = call.arguments
                if not r.ok or scene_of(a) != scene_id:
                    continue
                if call.name == "list_objects":
                    seen.objects = True
                elif call.name == "depth_at":
                    seen.depths.append((a["camera"], float(a["u"]), float(a["v"])))
                elif call.name == "transform":
                    seen.edges.append((a["from_frame"], a["to_frame"]))
                elif call.name == "get_camera":
                    seen.edges.append((a["camera"], WORLD))
                    seen.cameras.add(a["camera"])
                elif call.name == "get_correspondences":
                    seen.correspondences.add((a["camera"], a["object"], a["kind"]))
        return seen

    def connected(self, frames: tuple[str, ...]) -> bool:
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.get(x, x) != x:
                x = parent[x]
            return x

        for a, b in self.edges:
            parent[root(a)] = root(b)
        return len({root(f) for f in frames}) == 1

    def satisfies(self, need: tuple[Any, ...]) -> bool:
        kind = need[0]
        if kind == "objects":
            return self.objects
        if kind == "anchor":
            _, cam, _, u, v = need
            return any(
                c == cam and abs(du - u) <= PIXEL_SLACK and abs(dv - v) <= PIXEL_SLACK
                for c, du, dv in self.depths
            )
        if kind == "frames":
            return self.connected(tuple(need[1:]))
        if kind == "correspondences":
            return tuple(need[1:]) in self.correspondences
        if kind == "camera":
            return need[1] in self.cameras
        raise ValueError(f"unknown evidence kind {kind!r}")


def describe(need: tuple[Any, ...]) -> str:
    kind = need[0]
    if kind == "objects":
        return "the object sizes (list_objects)"
    if kind == "anchor":
        return f"the depth of the {need[2]}'s anchor in {need[1]} (depth_at at its centroid)"
    if kind == "frames":
        return f"a chain of transforms linking {', '.join(need[1:])}"
    if kind == "correspondences":
        return f"the {need[3]} correspondences of the {need[2]} in {need[1]}"
    return f"the intrinsics of {need[1]} (get_camera)"


class GroundingLevel(Level):
    name = "grounding"

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: GeometryTask = ctx.task
        seen = Observed.from_trajectory(ctx.trajectory, task.scene_id)
        missing = [need for need in task.evidence if not seen.satisfies(need)]
        findings = [
            Finding("unsupported", f"the answer needs {describe(need)}, which was never obtained")
            for need in missing
        ]
        if missing and len(missing) == len(task.evidence):
            findings.insert(
                0,
                Finding(
                    "guess",
                    "no tool result in this trajectory supports the answer: it is a guess",
                ),
            )
        score = 1.0 - len(missing) / len(task.evidence) if task.evidence else 1.0
        return self.result(
            score, findings, metrics={"needed": len(task.evidence), "missing": len(missing)}
        )


def build_verifier(aggregate: Any = "gated", **params: Any) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [FormatLevel(), ToolUseLevel(), PrecisionLevel(), GroundingLevel()], aggregate, **params
    )
