"""The itinerary an agent submits: its JSON shape, a strict parser, and the trip's cost.

```
{"days": [{"day": 1, "date": "2024-03-04",
           "activities": [
             {"type": "transfer", "mode": "taxi", "from": "CENTER-BOS", "to": "AIRPORT-BOS",
              "start": "07:00", "end": "07:40", "cost": 52.1},
             {"type": "flight", "number": "HA1234", "from": "Boston", "to": "Chicago",
              "start": "09:05", "end": "11:40", "cost": 180.0},
             {"type": "meal", "meal": "dinner", "place": "R-ORD-012", "start": "19:00",
              "end": "20:00", "cost": 25.0},
             {"type": "attraction", "place": "A-ORD-003", "start": ..., "end": ..., "cost": 12.0}],
           "accommodation": {"place": "H-ORD-007", "cost": 120.0}},
          ...],
 "total_cost": 1234.5}
```

``cost`` is always the unit price a tool quoted: per person for flights, trains, meals and tickets,
per vehicle for taxis and cars, per room and night for accommodation. The trip's cost multiplies
them as TravelPlanner does: by the number of people, by taxis (4 seats) or cars (5 seats), and by
rooms (people / maximum occupancy, rounded up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple

from .clock import TIMES as _TIMES
from .clock import parse_date, parse_hhmm
from .geo import MODES, vehicles
from .tools import ACTIVITY_TYPES, MAX_ACTIVITIES, MAX_COST, MAX_DAYS, MEALS

RIDES = frozenset(("flight", "train"))


class Activity(NamedTuple):
    """One timed activity. A NamedTuple, not a frozen dataclass: the verifier builds thousands a
    second, and a tuple is several times cheaper to construct (it is just as immutable)."""

    type: str
    start: int
    end: int
    cost: float
    place: str = ""  # meal, attraction
    number: str = ""  # flight, train
    origin: str = ""  # a city (flight, train) or a place id (transfer)
    destination: str = ""
    mode: str = ""  # transfer
    meal: str = ""

    @property
    def is_ride(self) -> bool:
        return self.type in RIDES


@dataclass(frozen=True)
class Stay:
    place: str
    cost: float


@dataclass(frozen=True)
class Day:
    day: int
    date: str
    activities: tuple[Activity, ...]
    accommodation: Stay | None


@dataclass(frozen=True)
class Itinerary:
    days: tuple[Day, ...]
    total_cost: float


MAX_DAY_NUMBER = 10**6  # wider than any trip; a day number is only compared and printed


def _cost(value: Any) -> float | None:
    """A price in [0, MAX_COST], or None. Range-checked before ``float()``: an int beyond the float
    range (10**400) would raise there, and every later sum stays finite (at most MAX_DAYS x
    MAX_ACTIVITIES x MAX_COST x people)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= MAX_COST:  # also refuses NaN
        return None
    return float(value)


def _text(value: Any, limit: int = 80) -> str | None:
    return value.strip() if isinstance(value, str) and 0 < len(value.strip()) <= limit else None


def _activity(raw: Any, path: str, errors: list[str]) -> Activity | None:
    # Plain ifs, messages built only on failure: the verifier parses thousands of these a second.
    bad: list[str] = []
    if not isinstance(raw, dict):
        errors.append(f"{path} must be an object")
        return None
    kind = raw.get("type")
    if kind not in ACTIVITY_TYPES:
        errors.append(f"{path}.type must be one of {list(ACTIVITY_TYPES)}, got {str(kind)[:40]!r}")
        return None
    start, end, cost = (
        parse_hhmm(raw.get("start")),
        parse_hhmm(raw.get("end")),
        _cost(raw.get("cost")),
    )
    if start is None:
        bad.append(".start must be HH:MM")
    if end is None:
        bad.append(".end must be HH:MM")
    if cost is None:
        bad.append(f".cost must be a number between 0 and {MAX_COST:g}")
    fields: dict[str, str] = {}
    if kind in ("flight", "train", "transfer"):
        for key, name in (("from", "origin"), ("to", "destination")):
            value = _text(raw.get(key))
            if value is None:
                bad.append(f".{key} must be a non-empty string")
            fields[name] = value or ""
        if kind == "transfer":
            mode = raw.get("mode")
            if mode not in MODES:
                bad.append(f".mode must be one of {list(MODES)}")
            fields["mode"] = mode if mode in MODES else ""
            fields["origin"] = fields["origin"].upper()
            fields["destination"] = fields["destination"].upper()
        else:
            number = _text(raw.get("number"), 16)
            if number is None:
                bad.append(f".number must be the {kind} number")
            fields["number"] = (number or "").upper()
    else:
        place = _text(raw.get("place"), 24)
        if place is None:
            bad.append(".place must be a place id")
        fields["place"] = (place or "").upper()
        if kind == "meal":
            meal = raw.get("meal")
            if meal not in MEALS:
                bad.append(f".meal must be one of {list(MEALS)}")
            fields["meal"] = meal if meal in MEALS else ""
    if bad:
        errors += [path + b for b in bad]
        return None
    return Activity(kind, start, end, cost, **fields)  # type: ignore[arg-type]


_new = tuple.__new__  # builds an Activity without the Python-level __new__ NamedTuple adds


def _fast_activity(raw: Any) -> Activity | None:
    """The activity in ``raw`` if it is well formed in its plain form (exact "HH:MM" times, numbers
    as numbers), else None, which sends it to :func:`_activity`: that parser accepts the rest (times
    with spaces around them, say) and names every error. Both give the same Activity for the same
    input; this one skips the checks' bookkeeping, which is most of a verdict's parsing time."""
    if type(raw) is not dict:
        return None
    get = raw.get
    try:
        start, end = _TIMES[get("start")], _TIMES[get("end")]
    except (KeyError, TypeError):  # TypeError: an unhashable value, e.g. a list
        return None
    cost = get("cost")
    kind_of_cost = type(cost)
    if kind_of_cost is not int and kind_of_cost is not float:
        return None
    if not 0 <= cost <= MAX_COST:  # also refuses NaN, infinities and ints beyond float range
        return None
    cost = float(cost)
    kind = get("type")
    if kind == "meal" or kind == "attraction":
        place = get("place")
        if type(place) is not str:
            return None
        place = place.strip()
        if not 0 < len(place) <= 24:
            return None
        if kind == "attraction":
            return _new(Activity, (kind, start, end, cost, place.upper(), "", "", "", "", ""))
        meal = get("meal")
        if meal not in MEALS:
            return None
        return _new(Activity, (kind, start, end, cost, place.upper(), "", "", "", "", meal))
    origin, destination = get("from"), get("to")
    if type(origin) is not str or type(destination) is not str:
        return None
    origin, destination = origin.strip(), destination.strip()
    if not (0 < len(origin) <= 80 and 0 < len(destination) <= 80):
        return None
    if kind == "transfer":
        mode = get("mode")
        if mode not in MODES:
            return None
        fields = (kind, start, end, cost, "", "", origin.upper(), destination.upper(), mode, "")
        return _new(Activity, fields)
    if kind == "flight" or kind == "train":
        number = get("number")
        if type(number) is not str:
            return None
        number = number.strip()
        if not 0 < len(number) <= 16:
            return None
        return _new(
            Activity, (kind, start, end, cost, "", number.upper(), origin, destination, "", "")
        )
    return None


def parse_itinerary(raw: Any) -> tuple[Itinerary | None, list[str]]:
    """The itinerary in ``raw``, or None and every schema error found (each names its path)."""
    errors: list[str] = []
    if not isinstance(raw, dict):
        return None, ["the itinerary must be a JSON object with 'days' and 'total_cost'"]
    days_raw = raw.get("days")
    if not isinstance(days_raw, list) or not 1 <= len(days_raw) <= MAX_DAYS:
        errors.append(f"days must be a list of 1 to {MAX_DAYS} day objects")
        days_raw = []
    total = _cost(raw.get("total_cost"))
    if total is None:
        errors.append("total_cost must be a number (USD, the whole group)")
    days: list[Day] = []
    for i, d in enumerate(days_raw):
        # Messages are built only on failure: most itineraries an env sees parse.
        if not isinstance(d, dict):
            errors.append(f"days[{i}] must be an object")
            continue
        number = d.get("day")
        ok = (
            isinstance(number, int)
            and not isinstance(number, bool)
            and -MAX_DAY_NUMBER <= number <= MAX_DAY_NUMBER
        )
        if not ok:
            errors.append(f"days[{i}].day must be an integer (the day's number, 1 to {MAX_DAYS})")
        date = parse_date(d.get("date"))
        if date is None:
            ok = False
            errors.append(f"days[{i}].date must be YYYY-MM-DD")
        acts_raw = d.get("activities")
        if not isinstance(acts_raw, list) or len(acts_raw) > MAX_ACTIVITIES:
            errors.append(
                f"days[{i}].activities must be a list of at most {MAX_ACTIVITIES} activities"
            )
            continue
        acts = [
            _fast_activity(a) or _activity(a, f"days[{i}].activities[{j}]", errors)
            for j, a in enumerate(acts_raw)
        ]
        stay = None
        acc = d.get("accommodation")
        if acc is not None:
            place = _text(acc.get("place"), 24) if isinstance(acc, dict) else None
            cost = _cost(acc.get("cost")) if isinstance(acc, dict) else None
            if place is not None and cost is not None:
                stay = Stay(place.upper(), cost)
            else:
                ok = False
                errors.append(
                    f'days[{i}].accommodation must be null or {{"place": id, "cost": nightly price}}'
                )
        if ok and None not in acts:
            days.append(Day(number, date, tuple(acts), stay))  # type: ignore[arg-type]
    if errors:
        return None, list(errors)
    return Itinerary(tuple(days), total), []  # type: ignore[arg-type]


def trip_cost(itinerary: Itinerary, people: int, occupancy: dict[str, int]) -> float:
    """The group's total: unit prices times people, vehicles or rooms (``occupancy``: hotel -> max)."""
    total = 0.0
    fleet = {mode: vehicles(mode, people) for mode in MODES}  # taxis or cars per leg
    for day in itinerary.days:
        for a in day.activities:
            total += a.cost * (fleet[a.mode] if a.type == "transfer" else people)
        if day.accommodation is not None:
            occ = occupancy.get(day.accommodation.place, 1) or 1
            total += day.accommodation.cost * math.ceil(people / occ)
    return round(total, 2)
