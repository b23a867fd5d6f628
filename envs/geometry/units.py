"""Answers with units: parsing what an agent submits into canonical SI values, exactly.

Canonical units: metres, degrees, square metres, cubic metres. Conversion factors are exact decimal
ratios (``0.10 m == 10 cm``), applied once, so a unit never changes the value by more than a float
rounding.
"""

from __future__ import annotations

import math
import re
from typing import Any

from hiergym.errors import ToolError

UNITS: dict[str, tuple[str, float]] = {}
"""Unit spelling -> (dimension, factor to the canonical unit)."""


def _add(dimension: str, factor: float, *spellings: str) -> None:
    for s in spellings:
        UNITS[s] = (dimension, factor)


_add("length", 1.0, "m", "meter", "meters", "metre", "metres")
_add("length", 0.01, "cm", "centimeter", "centimeters", "centimetre", "centimetres")
_add("length", 0.001, "mm", "millimeter", "millimeters", "millimetre", "millimetres")
_add("angle", 1.0, "deg", "degree", "degrees", "°")
_add("angle", 180.0 / math.pi, "rad", "radian", "radians")
_add("area", 1.0, "m^2", "m2", "m²", "sq m", "square meters", "square metres")
_add("area", 1e-4, "cm^2", "cm2", "cm²", "sq cm", "square centimeters", "square centimetres")
_add("area", 1e-6, "mm^2", "mm2", "mm²")
_add("volume", 1.0, "m^3", "m3", "m³", "cubic meters", "cubic metres")
_add("volume", 1e-6, "cm^3", "cm3", "cm³", "cc", "ml", "milliliter", "milliliters", "millilitre")
_add("volume", 1e-3, "l", "liter", "liters", "litre", "litres")
_add("volume", 1e-9, "mm^3", "mm3", "mm³")

DIMENSION_OF = {
    "length": "length",
    "point": "length",
    "pose": "length",
    "angle": "angle",
    "area": "area",
    "volume": "volume",
}
CANONICAL = {"length": "m", "angle": "deg", "area": "m^2", "volume": "m^3"}
_QUANTITY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*(.*?)\s*$")
YES = {"yes", "y", "true"}
NO = {"no", "n", "false"}


class AnswerError(ToolError):
    """A submitted answer is not of the task's type (a format failure, with the reason)."""


def unit_factor(unit: str | None, dimension: str) -> float:
    """The factor taking ``unit`` to the canonical unit of ``dimension``."""
    if unit is None or not str(unit).strip():
        raise AnswerError(
            f"a {dimension} needs a unit, e.g. {CANONICAL[dimension]!r}; none was given"
        )
    key = str(unit).strip()
    found = UNITS.get(key) or UNITS.get(key.lower())
    if found is None:
        choices = sorted(s for s, (d, _) in UNITS.items() if d == dimension)
        raise AnswerError(f"unknown unit {key[:20]!r}; {dimension} units: {choices}")
    got, factor = found
    if got != dimension:
        raise AnswerError(f"{key!r} is a unit of {got}; this answer is a {dimension}")
    return factor


def _number(value: Any, what: str, factor: float = 1.0) -> float:
    """``value * factor`` as a finite float, or an AnswerError (an int beyond the float range,
    NaN, infinity, or a product that overflows, is a format failure, never an exception)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise AnswerError(f"{what} must be a number, got {str(value)[:40]!r}")
    try:
        scaled = float(value) * factor
    except OverflowError:
        scaled = math.inf
    if not math.isfinite(scaled):
        shown = (
            f"{value:.3g}"
            if isinstance(value, float)
            else f"an integer of {value.bit_length()} bits"
        )
        raise AnswerError(f"{what} must be a finite number in range, got {shown}")
    return scaled


def parse_scalar(answer: Any, unit: str | None, dimension: str) -> float:
    """A number in canonical units from ``answer`` (a number, or a string like ``"10 cm"``)."""
    if isinstance(answer, str):
        m = _QUANTITY.match(answer)
        if not m:
            raise AnswerError(f"expected a number with a unit, e.g. '0.42 m'; got {answer[:40]!r}")
        value, inline = float(m.group(1)), m.group(2)  # "1e999" is inf
        factor = unit_factor(inline or unit, dimension)
        if inline and unit and str(unit).strip() and unit_factor(unit, dimension) != factor:
            raise AnswerError(f"two different units: {inline!r} in the answer and unit={unit!r}")
        return _number(value, "answer", factor)
    return _number(answer, "answer", unit_factor(unit, dimension))


def parse_vector(answer: Any, unit: str | None, n: int = 3, what: str = "answer") -> list[float]:
    if not isinstance(answer, list) or len(answer) != n:
        raise AnswerError(f"{what} must be a list of {n} numbers, got {str(answer)[:60]!r}")
    factor = unit_factor(unit, "length")
    return [_number(x, f"{what}[{i}]", factor) for i, x in enumerate(answer)]


def parse_rotation(value: Any) -> list[list[float]]:
    """A rotation matrix from a 3x3 matrix (checked orthonormal, then made exactly so) or
    ``{"quaternion": [x, y, z, w]}``."""
    from .scene import quat_to_matrix

    if isinstance(value, dict) and "quaternion" in value:
        q = value["quaternion"]
        if not isinstance(q, list) or len(q) != 4:
            raise AnswerError("quaternion must be [x, y, z, w]")
        q = [_number(x, "quaternion") for x in q]
        norm = math.hypot(*q)
        if not math.isfinite(norm) or norm < 1e-9:
            raise AnswerError("quaternion must be non-zero and finite")
        q = [x / norm for x in q]
        return quat_to_matrix(tuple(q)).tolist()  # type: ignore[arg-type]
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(r, list) and len(r) == 3 for r in value)
    ):
        raise AnswerError(
            'rotation must be a 3x3 matrix (list of rows) or {"quaternion": [x, y, z, w]}'
        )
    m = [[_number(x, "rotation") for x in row] for row in value]
    import numpy as np

    r = np.array(m)
    if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
        raise AnswerError("rotation must be a proper rotation matrix (orthonormal, det +1)")
    # Compare the nearest rotation, not the matrix as sent: the slack above would let a scaled
    # matrix (1.0005 R) push the trace past 3 and hide up to 2 degrees of error.
    u, _, vt = np.linalg.svd(r)
    return (u @ vt).tolist()


def parse_pose(answer: Any, unit: str | None) -> dict[str, Any]:
    if not isinstance(answer, dict) or "rotation" not in answer or "translation" not in answer:
        raise AnswerError(
            'a pose is {"rotation": 3x3 matrix or {"quaternion": [x, y, z, w]}, '
            '"translation": [x, y, z]}'
        )
    return {
        "rotation": parse_rotation(answer["rotation"]),
        "translation": parse_vector(answer["translation"], unit, what="translation"),
    }


def parse_bool(answer: Any) -> bool:
    if isinstance(answer, bool):
        return answer
    if isinstance(answer, str) and answer.strip().lower() in YES | NO:
        return answer.strip().lower() in YES
    raise AnswerError(f'expected "yes" or "no", got {str(answer)[:40]!r}')


def parse_answer(answer_type: str, answer: Any, unit: str | None) -> Any:
    """The canonical value of a submitted answer of ``answer_type``, or an AnswerError."""
    if answer_type in ("length", "angle", "area", "volume"):
        return parse_scalar(answer, unit, answer_type)
    if answer_type == "point":
        return parse_vector(answer, unit)
    if answer_type == "pose":
        return parse_pose(answer, unit)
    if answer_type == "bool":
        return parse_bool(answer)
    raise ValueError(f"unknown answer type {answer_type!r}")
