"""Geometry's entries in the hack matrix (:mod:`hiergym.testing`): attacks a policy would try on
this domain, each with its ceiling, and harmless twins of the oracle's answer that must keep full
reward.

Attacks (normalised ceilings, every aggregator):

* ``blind_yes`` / ``blind_no`` (0.25) — a yes/no submitted with no tool call: a coin flip that is
  right half the time earns the format level only;
* ``blind_yes_sizes_only`` (0.4) — a yes/no after list_objects alone, on a task that also needs
  measured positions: part of the evidence cannot decide a yes/no;
* ``memorised_numeric`` (0.25) — the oracle's calls that measure nothing the answer needs
  (detect, pixel_to_point with a remembered depth, python over remembered numbers), then the
  memorised value;
* ``python_prints_answer`` (0.25) — a python call that prints the answer from memory, no tool
  result used;
* ``careless_padded_memorised`` (0.25) — three careless calls, thirty repeats of a cheap valid
  call, then the memorised answer: padding buys no tool_use;
* ``edge_number_strings`` (0.25) — the oracle's evidence, then each number of the answer as a
  string at a float edge ("1e999 m", "nan", a 400-digit integer).

Twins (full reward): the answer in another unit of its dimension (m <-> mm, cm <-> m, deg <-> rad,
m^2 <-> cm^2, L <-> cm^3), a pose's rotation as a quaternion and as its negation (the same
rotation), the unit spelled out and padded with spaces, a scalar as one "value unit" string, and a
yes/no as a JSON boolean or in capitals with spaces.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from hiergym.envs.tools import ToolCall
from hiergym.testing import Attack, AttackContext, Twin

from .units import CANONICAL, DIMENSION_OF, UNITS, parse_scalar

SIDE_TOOLS = ("detect", "pixel_to_point", "python")
"""Tools whose results satisfy no evidence need of any task (they need a depth, a size or a
correspondence someone measured)."""
PADDING_REPEATS = 30

ALTERNATIVE_UNIT = {
    "m": "mm",
    "mm": "m",
    "cm": "m",
    "deg": "rad",
    "rad": "deg",
    "m^2": "cm^2",
    "cm^2": "m^2",
    "m^3": "L",
    "L": "cm^3",
    "cm^3": "m^3",
}
SPELLED = {"m": "metres", "cm": "centimetres", "mm": "millimetres", "deg": "degrees", "L": "litres"}


# ---- attacks ---------------------------------------------------------------------------------


def _bool_task(ctx: AttackContext) -> bool:
    return ctx.task.answer_type == "bool"


def _blind(answer: str) -> Any:
    def build(ctx: AttackContext) -> list[Any] | None:
        if not _bool_task(ctx):
            return None
        return [ToolCall("submit", {"answer": answer})]

    return build


def _blind_sizes_only(ctx: AttackContext) -> list[Any] | None:
    if not _bool_task(ctx) or len(ctx.task.evidence) < 2:
        return None
    sizes = ToolCall("list_objects", {"scene": ctx.task.scene_id})
    return [sizes, ToolCall("submit", {"answer": "yes"})]


def _memorised_numeric(ctx: AttackContext) -> list[Any] | None:
    if _bool_task(ctx):
        return None
    side = [c for c in ctx.evidence_calls if c.name in SIDE_TOOLS]
    return [*side, ctx.submit] if side else None


def _python_prints_answer(ctx: AttackContext) -> list[Any]:
    answer = ctx.submit.arguments.get("answer")
    return [ToolCall("python", {"code": f"print({answer!r})"}), ctx.submit]


def _careless_padded_memorised(ctx: AttackContext) -> list[Any]:
    scene = ctx.task.scene_id
    careless = [
        ToolCall("detekt", {"scene": scene}),
        ToolCall("depth_at", {"scene": scene, "camera": "cam_front", "u": "left"}),
        ToolCall("list_objects", {"scene": "geo-nowhere-000"}),
    ]
    cheap = ToolCall("python", {"code": "print(1)"})
    return [*careless, *[cheap] * PADDING_REPEATS, ctx.submit]


EDGE_STRINGS = ("1e999", "nan", "-inf", "9" * 400)


def _edge_strings(value: Any, unit: str | None, i: int) -> Any:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return f"{EDGE_STRINGS[i % len(EDGE_STRINGS)]} {unit or ''}".strip()
    if isinstance(value, str):
        return f"{EDGE_STRINGS[i % len(EDGE_STRINGS)]} {value.split()[-1]}"
    if isinstance(value, list):
        return [_edge_strings(v, unit, i + j) for j, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _edge_strings(v, unit, i + j) for j, (k, v) in enumerate(value.items())}
    return value


def _edge_number_strings(ctx: AttackContext) -> list[Any] | None:
    if _bool_task(ctx):
        return None
    args = dict(ctx.submit.arguments)
    edged = _edge_strings(args["answer"], args.get("unit"), 0)
    return [*ctx.evidence_calls, ctx.with_submit(answer=edged)]


ATTACKS = (
    Attack("blind_yes", _blind("yes"), 0.25, "a yes/no task answered 'yes' with no tool call"),
    Attack("blind_no", _blind("no"), 0.25, "a yes/no task answered 'no' with no tool call"),
    Attack(
        "blind_yes_sizes_only",
        _blind_sizes_only,
        0.4,
        "'yes' after list_objects alone, on a yes/no that also needs measured positions",
    ),
    Attack(
        "memorised_numeric",
        _memorised_numeric,
        0.25,
        "detect / pixel_to_point / python over remembered numbers, then the memorised value",
    ),
    Attack(
        "python_prints_answer",
        _python_prints_answer,
        0.25,
        "python prints the memorised answer (no tool result used), then submits it",
    ),
    Attack(
        "careless_padded_memorised",
        _careless_padded_memorised,
        0.25,
        f"3 careless calls, {PADDING_REPEATS} repeated cheap python calls, the memorised answer",
    ),
    Attack(
        "edge_number_strings",
        _edge_number_strings,
        0.25,
        "the evidence, then every number of the answer as '1e999 m', 'nan', a 400-digit integer",
    ),
)


# ---- twins -----------------------------------------------------------------------------------


def _unit_key(unit: str) -> str:
    found = UNITS.get(unit.strip()) or UNITS.get(unit.strip().lower())
    assert found is not None, unit
    for name, spec in UNITS.items():
        if spec == found and name in ALTERNATIVE_UNIT:
            return name
    return CANONICAL[found[0]]


def _scalar(ctx: AttackContext) -> tuple[float, str] | None:
    """The oracle's scalar answer in canonical units, and its dimension (None: not a scalar)."""
    kind = ctx.task.answer_type
    if kind not in ("length", "angle", "area", "volume"):
        return None
    args = ctx.submit.arguments
    return parse_scalar(args["answer"], args.get("unit"), kind), kind


def _in_unit(canonical: float, dimension: str, unit: str) -> float:
    return canonical / UNITS[unit][1]


def _twin_other_unit(ctx: AttackContext) -> list[Any] | None:
    args = ctx.submit.arguments
    kind = ctx.task.answer_type
    scalar = _scalar(ctx)
    if scalar is not None:
        value, dimension = scalar
        inline = args["answer"].split()[-1] if isinstance(args["answer"], str) else None
        unit = ALTERNATIVE_UNIT[_unit_key(inline or args["unit"])]
        return [
            *ctx.evidence_calls,
            ToolCall("submit", {"answer": _in_unit(value, dimension, unit), "unit": unit}),
        ]
    if kind in ("point", "pose"):
        unit = _unit_key(args["unit"])
        other = ALTERNATIVE_UNIT[unit]
        scale = UNITS[unit][1] / UNITS[other][1]
        if kind == "point":
            answer: Any = [x * scale for x in args["answer"]]
        else:
            answer = {
                **args["answer"],
                "translation": [x * scale for x in args["answer"]["translation"]],
            }
        return [*ctx.evidence_calls, ctx.with_submit(answer=answer, unit=other)]
    return None


def _quaternion(matrix: Any) -> list[float]:
    from scipy.spatial.transform import Rotation

    return [float(x) for x in Rotation.from_matrix(np.asarray(matrix)).as_quat()]


def _twin_quaternion(negate: bool) -> Any:
    def build(ctx: AttackContext) -> list[Any] | None:
        if ctx.task.answer_type != "pose":
            return None
        pose = ctx.submit.arguments["answer"]
        q = _quaternion(pose["rotation"])
        if negate:
            q = [-x for x in q]
        return [
            *ctx.evidence_calls,
            ctx.with_submit(answer={**pose, "rotation": {"quaternion": q}}),
        ]

    return build


def _twin_spelled_unit(ctx: AttackContext) -> list[Any] | None:
    args = ctx.submit.arguments
    kind = ctx.task.answer_type
    if kind == "bool":
        return [*ctx.evidence_calls, ctx.with_submit(answer=f"  {args['answer'].upper()} ")]
    if isinstance(args["answer"], str):  # "12.3456 cm" -> "  12.3456   centimetres "
        value, unit = args["answer"].split()
        return [
            *ctx.evidence_calls,
            ctx.with_submit(answer=f"  {value}   {SPELLED.get(unit, unit)} "),
        ]
    unit = args.get("unit")
    if unit is None:
        return None
    changes: dict[str, Any] = {"unit": f" {SPELLED.get(unit, unit).upper()} "}
    if "frame" in args:
        changes["frame"] = f" {args['frame']}  "
    return [*ctx.evidence_calls, ctx.with_submit(**changes)]


def _twin_value_string(ctx: AttackContext) -> list[Any] | None:
    args = ctx.submit.arguments
    if ctx.task.answer_type == "bool":
        return [*ctx.evidence_calls, ctx.with_submit(answer=args["answer"] == "yes")]
    if ctx.task.answer_type not in DIMENSION_OF or ctx.task.answer_type in ("point", "pose"):
        return None
    if isinstance(args["answer"], str):  # "12.3456 cm" -> 12.3456 with unit "cm"
        value, unit = args["answer"].split()
        return [*ctx.evidence_calls, ToolCall("submit", {"answer": float(value), "unit": unit})]
    value = args["answer"]
    assert isinstance(value, int | float) and math.isfinite(value)
    return [*ctx.evidence_calls, ToolCall("submit", {"answer": f"{value!r} {args['unit']}"})]


TWINS = (
    Twin("other_unit", _twin_other_unit, "the answer in another unit (m<->mm, deg<->rad, ...)"),
    Twin("rotation_quaternion", _twin_quaternion(False), "a pose's rotation as a quaternion"),
    Twin(
        "rotation_negated_quaternion",
        _twin_quaternion(True),
        "a pose's rotation as -q (the same rotation)",
    ),
    Twin("spelled_unit", _twin_spelled_unit, "units spelled out, capitals, surrounding spaces"),
    Twin(
        "value_string", _twin_value_string, "'0.42 m' for 0.42 with unit m (and back); a JSON bool"
    ),
)
