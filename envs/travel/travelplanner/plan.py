"""A plan in TravelPlanner's format: its strict shape, and the items its strings name.

```
[{"days": 1, "current_city": "from Washington to Myrtle Beach",
  "transportation": "Self-driving, from Washington to Myrtle Beach, duration: 6 hours 2 mins, distance: 614 km, cost: 30",
  "breakfast": "-", "attraction": "-", "lunch": "-", "dinner": "Exotic India, Myrtle Beach",
  "accommodation": "Fresh Studio in Brooklyn Townhouse, Myrtle Beach"},
 {"days": 2, "current_city": "Myrtle Beach", "transportation": "-", "breakfast": "First Eat, Myrtle Beach",
  "attraction": "SkyWheel Myrtle Beach, Myrtle Beach;", ...},
 ...]
```

The shape check (``parse_plan``) only asks for what TravelPlanner's evaluation reads: one object per
day with the seven string fields. Reading the strings follows TravelPlanner's own parsing
(``evaluate.get_valid_name_city``, ``extract_from_to``), so the grounding level sees the same names
the commonsense and hard checks see.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .evaluate import (
    extract_before_parenthesis,
    extract_from_to,
    get_valid_name_city,
    transportation_match,
)

FIELDS = (
    "current_city",
    "transportation",
    "breakfast",
    "attraction",
    "lunch",
    "dinner",
    "accommodation",
)
MEALS = ("breakfast", "lunch", "dinner")
DAY_KEYS = ("days", "day")
MAX_FIELD_CHARS = 1_000


def parse_plan(raw: Any, days: int) -> tuple[list[dict[str, Any]] | None, list[str]]:
    """The plan in ``raw`` (its day objects, unchanged), or None and every shape error by path."""
    if not isinstance(raw, list):
        return None, ["the plan must be a JSON list with one object per day"]
    errors: list[str] = []
    if len(raw) != days:
        errors.append(
            f"the plan has {len(raw)} entries; the trip has {days} days (one entry per day)"
        )
    for i, unit in enumerate(raw[:days]):
        path = f"plan[{i}]"
        if not isinstance(unit, dict):
            errors.append(f"{path} must be an object with the fields {list(FIELDS)}")
            continue
        for key in FIELDS:
            value = unit.get(key)
            if not isinstance(value, str) or len(value) > MAX_FIELD_CHARS:
                errors.append(
                    f'{path}.{key} must be a string of at most {MAX_FIELD_CHARS} characters ("-" for none)'
                )
        for key in DAY_KEYS:
            if key in unit and (isinstance(unit[key], bool) or not isinstance(unit[key], int)):
                errors.append(f"{path}.{key} must be the day's number")
        extra = sorted(set(unit) - set(FIELDS) - set(DAY_KEYS))
        if extra:
            errors.append(f"{path} has unknown fields {extra[:5]}; the fields are {list(FIELDS)}")
    return (None, errors) if errors else (raw, [])


def filled(value: str) -> bool:
    """TravelPlanner's test for an entry that names something ("-" and "" name nothing)."""
    return bool(value) and value != "-"


@dataclass(frozen=True)
class Place:
    """A restaurant, attraction or accommodation a plan names: ``kind``, name and city."""

    kind: str  # restaurant | attraction | accommodation
    name: str
    city: str
    field: str  # where the plan names it, e.g. "lunch"


def places(unit: dict[str, Any]) -> list[Place]:
    """Every place a day names. Unlike TravelPlanner, which reads only the attractions before the
    last ';' ("A, City;B, City;"), every non-empty piece counts: an attraction written without
    the trailing ';' is still an attraction the plan claims."""
    found = []
    for meal in MEALS:
        if filled(unit[meal]):
            found.append(Place("restaurant", *get_valid_name_city(unit[meal]), meal))
    if filled(unit["attraction"]):
        for piece in unit["attraction"].split(";"):
            if piece.strip():
                found.append(Place("attraction", *get_valid_name_city(piece.strip()), "attraction"))
    if filled(unit["accommodation"]):
        found.append(
            Place("accommodation", *get_valid_name_city(unit["accommodation"]), "accommodation")
        )
    return found


def day_cities(unit: dict[str, Any]) -> tuple[str, ...]:
    """The cities of a day: (A, B) for "from A to B", else (the city,)."""
    cc = unit["current_city"]
    if "from" in cc:
        a, b = extract_from_to(cc)
        if a is not None and b is not None:
            return extract_before_parenthesis(a).strip(), extract_before_parenthesis(b).strip()
    return (extract_before_parenthesis(cc).strip(),)


_DETAILS = {
    "depart": re.compile(r"Departure Time:\s*(\d{1,2}:\d{2})"),
    "arrive": re.compile(r"Arrival Time:\s*(\d{1,2}:\d{2})"),
    "duration": re.compile(r"duration:\s*([^,]+)"),
    "distance": re.compile(r"distance:\s*(\d[\d,.]*\s*km)"),
    "cost": re.compile(r"cost:\s*\$?(\d[\d,]*(?:\.\d+)?)"),
}


@dataclass(frozen=True)
class Leg:
    """The ride a day's transportation names, with the details it states."""

    mode: str | None  # Flight | Self-driving | Taxi | None (TravelPlanner's transportation_match)
    origin: str | None
    destination: str | None
    number: str  # a flight's number
    details: dict[str, str]


def leg(unit: dict[str, Any]) -> Leg | None:
    """The day's leg, read as TravelPlanner reads it, or None when the field names nothing."""
    text = unit["transportation"]
    if not filled(text):
        return None
    origin, destination = extract_from_to(text)
    if origin is None or destination is None:
        origin, destination = extract_from_to(unit["current_city"])
    number = (
        text.split("Flight Number: ")[1].split(",")[0].strip() if "Flight Number: " in text else ""
    )
    details = {k: m.group(1).strip() for k, p in _DETAILS.items() if (m := p.search(text))}
    return Leg(
        transportation_match(text),
        extract_before_parenthesis(origin).strip() if origin else None,
        extract_before_parenthesis(destination).strip() if destination else None,
        number,
        details,
    )
