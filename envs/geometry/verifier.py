"""Geometry verifier: format -> grounding -> precision -> tool_use, gated.

* format — one submission whose answer parses as the task's type, with a unit where one is needed
  (converted exactly: 0.10 m == 10 cm) and, for points and poses, the task's frame;
* grounding — the answer was built on the measurements it needs, obtained through tools *before*
  the submitting action (:mod:`hiergym.envs.evidence`; results returned with the submit do not
  count), and says what they say: each anchor by depth_at at its centroid (within 1 px) in the
  named camera, the frames it must cross connected by transform / get_camera results, sizes by
  list_objects, correspondences and intrinsics by their tools. 1.0 with all of them and an answer
  that agrees; 0 for an answer they contradict (the tools are exact, so what they imply is the
  truth); with some missing, a numeric answer earns 0.3 x the share obtained and a yes/no 0
  (part of its evidence cannot decide it). The level cites the turns it used. An answer without
  any of them is flagged a guess;
* precision — for an answer built on all its measurements (a value without them is not
  compared): 1.0 within the task's tolerance (1 cm, 1 degree; 1 % for areas and volumes; a pose
  needs both 1 cm and 1 degree); outside it, partial credit 0.3 x the mean relative accuracy over
  thresholds 0.50, 0.55, ..., 0.95 (VSI-Bench's MRA), so a miss never earns much; passes only
  within tolerance;
* tool_use — for a right answer, how cleanly it was reached: needs met / (needs + failed or
  off-scene calls). Each need counts once; repeated, duplicate or useless calls earn nothing and
  dilute nothing, so padding cannot buy it back. Passes at 0.75.

Reward integrity (issue 9): grounding and precision require ``format`` and tool_use requires
``grounding`` and ``precision`` (:attr:`Level.requires`), so under every aggregator an unparsable
answer earns nothing, a memorised or blind answer (right or not) earns the format level only, and
a wrong answer, even after every measurement, stays under 0.4 of the reward range.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from hiergym.envs.core import missing_submission
from hiergym.envs.evidence import turns_before_submit
from hiergym.errors import VerifierError
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    VerifyContext,
)

from .scene import WORLD, rotation_angle_deg
from .tasks import ANGLE_TOLERANCE, GeometryTask
from .units import AnswerError, parse_answer

MRA_THRESHOLDS = tuple(0.50 + 0.05 * i for i in range(10))
PARTIAL_CAP = 0.3
"""The most a miss earns at the precision level (x its MRA). With format passed and every other
level 0 or not applicable, 0.3 keeps a wrong answer under 0.4 of the reward range under every
aggregator (logsigmoid_conjunction maps a level score of 0.3 to 58 % of that level's range)."""
PARTIAL_GROUNDING = 0.3
"""What a numeric answer earns per share of its measurements when some are missing (same bound)."""
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


class PrecisionLevel(Level):
    """How close the answer is to the truth, for an answer built on all its measurements: a value
    submitted without them is not compared (score 0, whether it is right or not)."""

    name = "precision"
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        support = support_of(ctx)
        if not support.complete:
            missing = len(ctx.task.evidence) - len(support.met)
            return self.result(
                0.0,
                [
                    Finding(
                        "not_compared",
                        f"{missing} of the measurements the answer needs were not obtained before "
                        "the submit: a value not built on them is not compared with the truth",
                    )
                ],
            )
        j = judgement_of(ctx)
        return self.result(j.score, j.findings, passed=j.passed, metrics=j.metrics)


def judgement_of(ctx: VerifyContext) -> Judgement:
    """The parsed answer compared with the truth (computed once per verdict)."""
    j = ctx.scratch.get("judgement")
    if j is None:
        j = ctx.scratch["judgement"] = compare(ctx.task, ctx.scratch["value"])
    return j


@dataclass
class Observed:
    """What the agent obtained through successful tool calls about the task's scene, and the turn
    of each result. Built from the results received *before* the submitting action (see
    :mod:`hiergym.envs.evidence`): a result that came back with the submit was never read by the
    agent that wrote the answer."""

    objects: list[int] = field(default_factory=list)
    depths: list[tuple[str, float, float, int]] = field(default_factory=list)
    edges: list[tuple[str, str, int]] = field(default_factory=list)
    cameras: dict[str, int] = field(default_factory=dict)
    correspondences: dict[tuple[str, str, str], int] = field(default_factory=dict)

    @classmethod
    def from_turns(cls, turns: Any, scene_id: str) -> Observed:
        seen = cls()
        for turn in turns:
            for call, r in zip(turn.calls, turn.results, strict=False):
                a = call.arguments
                if not r.ok or scene_of(a) != scene_id:
                    continue
                t = turn.index
                if call.name == "list_objects":
                    seen.objects.append(t)
                elif call.name == "depth_at":
                    seen.depths.append((a["camera"], float(a["u"]), float(a["v"]), t))
                elif call.name == "transform":
                    seen.edges.append((a["from_frame"], a["to_frame"], t))
                elif call.name == "get_camera":
                    seen.edges.append((a["camera"], WORLD, t))
                    seen.cameras.setdefault(a["camera"], t)
                elif call.name == "get_correspondences":
                    seen.correspondences.setdefault((a["camera"], a["object"], a["kind"]), t)
        return seen

    def chain(self, frames: tuple[str, ...]) -> list[int] | None:
        """The turns of the results that connect ``frames`` (none needed for one frame), or None
        when they are not connected."""
        parent: dict[str, str] = {}

        def root(x: str) -> str:
            while parent.get(x, x) != x:
                x = parent[x]
            return x

        joined: list[tuple[str, int]] = []
        for a, b, turn in self.edges:
            ra, rb = root(a), root(b)
            if ra != rb:  # an edge that joins two components (repeats add nothing)
                parent[ra] = rb
                joined.append((a, turn))
        if len({root(f) for f in frames}) != 1:
            return None
        component = root(frames[0])
        return sorted({t for a, t in joined if root(a) == component})

    def support(self, need: tuple[Any, ...]) -> list[int] | None:
        """The turns whose results meet ``need`` (the earliest that does), or None if none did."""
        kind = need[0]
        if kind == "objects":
            return self.objects[:1] or None
        if kind == "anchor":
            _, cam, _, u, v = need
            hit = next(
                (
                    t
                    for c, du, dv, t in self.depths
                    if c == cam and abs(du - u) <= PIXEL_SLACK and abs(dv - v) <= PIXEL_SLACK
                ),
                None,
            )
            return None if hit is None else [hit]
        if kind == "frames":
            return self.chain(tuple(need[1:]))
        if kind == "correspondences":
            hit = self.correspondences.get(tuple(need[1:]))
            return None if hit is None else [hit]
        if kind == "camera":
            hit = self.cameras.get(need[1])
            return None if hit is None else [hit]
        raise VerifierError(f"unknown evidence kind {kind!r} in a geometry task")


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


@dataclass(frozen=True)
class Support:
    """Which of a task's evidence needs the results seen before submitting meet, and where."""

    met: dict[int, list[int]]
    """Need index -> the turns whose results meet it."""
    late: frozenset[int]
    """Needs met only by results returned in the submitting action itself."""
    needed: int

    @property
    def complete(self) -> bool:
        return len(self.met) == self.needed

    @property
    def cited(self) -> list[int]:
        return sorted({t for turns in self.met.values() for t in turns})


def support_of(ctx: VerifyContext) -> Support:
    """The task's evidence needs met before submitting (computed once per verdict)."""
    hit = ctx.scratch.get("support")
    if hit is not None:
        return hit
    task: GeometryTask = ctx.task
    if not task.evidence:
        raise VerifierError(f"task {task.task_id} lists no evidence: its grounding means nothing")
    traj = ctx.trajectory
    before = turns_before_submit(traj)
    seen = Observed.from_turns(before, task.scene_id)
    met: dict[int, list[int]] = {}
    for i, need in enumerate(task.evidence):
        turns = seen.support(need)
        if turns is not None:
            met[i] = turns
    late: set[int] = set()
    if len(met) < len(task.evidence) and len(before) < len(traj.turns):
        everything = Observed.from_turns(traj.turns, task.scene_id)
        late = {
            i
            for i, need in enumerate(task.evidence)
            if i not in met and everything.support(need) is not None
        }
    ctx.scratch["support"] = support = Support(met, frozenset(late), len(task.evidence))
    return support


class GroundingLevel(Level):
    """The answer was built on the measurements it needs, seen before submitting, and says what
    they say.

    * All measurements obtained and the answer agrees with them (within the task's tolerance:
      the tools are exact, so what they imply is the truth): 1.0.
    * All obtained, but the answer contradicts them: 0 (finding ``contradicts``): measuring and
      then submitting something else is not grounded; another task's answer after this task's
      measurements is exactly that.
    * Some missing: a numeric answer that agrees earns ``PARTIAL_GROUNDING`` x the share obtained
      (each counts once); a yes/no earns 0, since it is decided only by all of its evidence
      together (the sizes alone cannot say whether a box fits between two others whose positions
      were never measured): a "yes" with part of the evidence is still blind.

    The level cites the turns whose results it used (``LevelResult.evidence``).
    """

    name = "grounding"
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: GeometryTask = ctx.task
        support = support_of(ctx)
        missing = [i for i in range(len(task.evidence)) if i not in support.met]
        findings = []
        for i in missing:
            need = task.evidence[i]
            if i in support.late:
                findings.append(
                    Finding(
                        "in_submit",
                        f"{describe(need)} came back in the submitting action itself, after the "
                        "answer was written",
                    )
                )
            else:
                findings.append(
                    Finding(
                        "unsupported",
                        f"the answer needs {describe(need)}, which was never obtained",
                    )
                )
        if missing and len(missing) == len(task.evidence):
            findings.insert(
                0,
                Finding(
                    "guess",
                    "no tool result received before the submit supports the answer: it is a guess",
                ),
            )
        judgement = judgement_of(ctx)
        if not judgement.passed:
            what = "the measurements obtained" if not missing else "what was measured"
            findings.append(
                Finding("contradicts", f"the answer is not what {what} say: {_detail(judgement)}")
            )
            score = 0.0
        elif not missing:
            score = 1.0
        elif task.answer_type == "bool":
            score = 0.0
        else:
            score = PARTIAL_GROUNDING * (1.0 - len(missing) / len(task.evidence))
        return self.result(
            score,
            findings,
            metrics={"needed": len(task.evidence), "missing": len(missing)},
            evidence=support.cited,
        )


def _detail(j: Judgement) -> str:
    return "; ".join(f.message for f in j.findings) or "outside the tolerance"


class ToolUseLevel(Level):
    """How cleanly a right, grounded answer was reached.

    score = met / (needed + wasted): ``met`` counts each of the task's evidence needs once, when a
    successful call about the task's scene returned it before the submit (repeats, near-duplicates
    and calls whose results meet no need add nothing), and ``wasted`` counts every call that failed
    (unknown tool, bad arguments, tool error, unparsable action) or asked about another scene. It is
    not a share of calls: padding with cheap valid calls neither raises nor dilutes it. Passes at
    0.75: every need met with at most one wasted call per three needs.
    """

    name = "tool_use"
    threshold = TOOL_USE_THRESHOLD
    requires = ("grounding", "precision")

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj, task = ctx.trajectory, ctx.task
        support = support_of(ctx)
        by_kind: dict[str, int] = {}
        off_scene = 0
        for turn in traj.turns:
            if not turn.calls:  # an action that did not parse: one wasted call
                for r in turn.results:
                    by_kind[r.error or "error"] = by_kind.get(r.error or "error", 0) + 1
                continue
            for call, r in zip(turn.calls, turn.results, strict=False):
                if not r.ok:
                    by_kind[r.error or "error"] = by_kind.get(r.error or "error", 0) + 1
                elif "scene" in call.arguments and scene_of(call.arguments) != task.scene_id:
                    off_scene += 1
        invalid = sum(by_kind.values())
        needed, met = len(task.evidence), len(support.met)
        score = met / (needed + invalid + off_scene)
        findings = [Finding(kind, f"{n} call(s): {kind}") for kind, n in sorted(by_kind.items())]
        if off_scene:
            findings.append(Finding("off_scene", f"{off_scene} call(s) asked about another scene"))
        if met < needed:
            findings.append(
                Finding("unmet", f"{needed - met} of {needed} needed measurement(s) not obtained")
            )
        return self.result(
            score,
            findings,
            metrics={
                "calls": traj.n_calls,
                "needed": needed,
                "met": met,
                "invalid": invalid,
                "off_scene": off_scene,
            },
            evidence=support.cited,
        )


def build_verifier(aggregate: Any = "gated", **params: Any) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [FormatLevel(), GroundingLevel(), PrecisionLevel(), ToolUseLevel()], aggregate, **params
    )


def need_name(need: tuple[Any, ...]) -> str:
    """A subgoal's name for one evidence need: ``anchor:cam_front:mug``, ``frames:cam_front+world``,
    ``objects``, ``camera:cam_front``, ``correspondences:cam_front:mug:2d-3d``."""
    kind = need[0]
    if kind == "anchor":
        return f"anchor:{need[1]}:{need[2]}"
    if kind == "frames":
        return "frames:" + "+".join(need[1:])
    return ":".join(str(x) for x in need)


NEED_TOOLS = {
    "anchor": frozenset({"depth_at"}),
    "objects": frozenset({"list_objects"}),
    "camera": frozenset({"get_camera"}),
    "correspondences": frozenset({"get_correspondences"}),
    "frames": frozenset({"transform", "get_camera"}),
}
"""The tools whose results :meth:`Observed.from_turns` records for each kind of need: a turn with
none of them cannot meet it, so its subgoal is asked only on their turns."""


def need_tools(need: tuple[Any, ...]) -> frozenset[str] | None:
    """The tools that can meet ``need`` (None: any turn may, so it is asked on every one): a chain
    of one frame needs no result at all, and an unknown kind raises where it always did."""
    if need[0] == "frames" and len(set(need[1:])) < 2:
        return None
    return NEED_TOOLS.get(need[0])


def subgoals(task: GeometryTask) -> list[Any]:
    """Geometry's subgoal boundaries, built at reset from the task's evidence needs: one per need
    (the right tool result obtained: an anchor's depth at its centroid, the transforms linking the
    frames, the sizes, the intrinsics, the correspondences), reached at the turn whose result meets
    it under the grounding level's own rule (:meth:`Observed.support`), so the turn that earns a
    share of the grounding score is the turn marked. Results of the submitting action count for
    nothing, as at the grounding level; repeats meet nothing new. Each pays ``1 / needs``."""
    from hiergym.envs.core import Subgoal

    memo: list[Any] = [None, None, None]  # the trajectory and last turn seen (held), Observed

    def observed(trajectory: Any) -> Observed:
        turns = turns_before_submit(trajectory)
        last = turns[-1] if turns else None
        if memo[0] is not trajectory or memo[1] is not last:  # once per turn, not per subgoal
            memo[:] = [trajectory, last, Observed.from_turns(turns, task.scene_id)]
        return memo[2]

    needs = task.evidence
    return [
        Subgoal(
            need_name(need),
            lambda turn, trajectory, _task, need=need: (
                observed(trajectory).support(need) is not None
            ),
            1.0 / len(needs),
            describe(need),
            tools=need_tools(need),
        )
        for need in needs
    ]
