"""Cases for TravelPlanner's checks: the example plans shipped with its data
(postprocess_example_evaluation.jsonl, 161 delivered of 180), a query record read from each, and
mutations that each target one check, with the result TravelPlanner's published rules give for
that check (Xie et al. 2024, and its evaluation/*.py).

The examples come with the query text only, so each query record is read from the plan (origin,
cities, days) and the text (people, budget); local constraints are set by the mutations that
target them. The rows TravelPlanner's tools drop (pandas ``dropna()``: a row with any empty field)
are found here from the CSVs themselves, independently of hiergym's importer.
"""

from __future__ import annotations

import copy
import csv
import json
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8}
_PEOPLE = re.compile(
    r"\b(\d+|one|two|three|four|five|six|seven|eight)\s+(?:people|persons|individuals|"
    r"travell?ers|adults|friends|of us)\b",
    re.I,
)
_GROUP = re.compile(r"group of (\d+|two|three|four|five|six|seven|eight)\b", re.I)
_BUDGET = re.compile(r"\$\s?([\d,]+)")
_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)(?=[,\s]|$)")
_FLIGHT = re.compile(
    r"Flight Number: ([^,]+), from (.+?) to (.+?), Departure Time: ([\d:]+), Arrival Time: ([\d:]+)"
)
MEALS = ("breakfast", "lunch", "dinner")
NO_CONSTRAINTS = {"house rule": None, "cuisine": None, "room type": None, "transportation": None}
RULE_TEXT = {
    "smoking": "No smoking",
    "parties": "No parties",
    "children under 10": "No children under 10",
    "visitors": "No visitors",
    "pets": "No pets",
}


def strip_state(city: str) -> str:
    """TravelPlanner's extract_before_parenthesis: "Dallas(Texas)" -> "Dallas"."""
    m = re.search(r"^(.*?)\([^)]*\)", city)
    return m.group(1) if m else city


def strip_state_all(text: str) -> str:
    """Every "(State)" of a text removed: "from Dallas(Texas) to Austin(Texas)" -> "from Dallas to Austin"."""
    return re.sub(r"\([^)]*\)", "", text)


def filled(value: Any) -> bool:
    return bool(value) and value != "-"


def day_cities(current_city: str) -> list[str]:
    if "from" in current_city:
        m = _FROM_TO.search(current_city)
        if m:
            return [strip_state(m.group(1)), strip_state(m.group(2))]
    return [strip_state(current_city)]


def name_city(text: str) -> tuple[str, str]:
    """TravelPlanner's get_valid_name_city."""
    m = re.search(r"(.*?),\s*([^,]+)(\(\w[\w\s]*\))?$", text)
    if not m:
        return "-", "-"
    return m.group(1).strip(), strip_state(m.group(2).strip()).strip()


# --------------------------------------------------------------------------------------------
# The database as TravelPlanner's tools read it (pandas read_csv + dropna), from the CSVs


PANDAS_NA = {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND",
             "1.#QNAN", "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}  # fmt: skip


@dataclass
class Table:
    kept: list[dict[str, str]]
    dropped: list[dict[str, str]]


def read_table(path: Path) -> Table:
    kept, dropped = [], []
    with path.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            (dropped if any(v in PANDAS_NA for v in row.values()) else kept).append(row)
    return Table(kept, dropped)


@dataclass
class Reference:
    """TravelPlanner's view of its database, read independently of hiergym's importer."""

    data: Path
    accommodations: Table = field(init=False)
    restaurants: Table = field(init=False)
    city_state: dict[str, str] = field(init=False)
    routes: dict[tuple[str, str], float] = field(init=False)

    def __post_init__(self) -> None:
        self.accommodations = read_table(self.data / "clean_accommodations_2022.csv")
        self.restaurants = read_table(self.data / "clean_restaurant_2022.csv")
        lines = (self.data / "citySet_with_states.txt").read_text().splitlines()
        self.city_state = dict(line.split("\t") for line in lines if "\t" in line)
        self.routes = {}
        with (self.data / "distance.csv").open(newline="") as f:
            for r in csv.DictReader(f):
                if r["duration"] and r["distance"] and "day" not in r["duration"]:
                    km = float(r["distance"].replace("km", "").replace(",", ""))
                    self.routes.setdefault((r["origin"], r["destination"]), km)

    def accommodation_rows(self, name: str, city: str) -> list[dict[str, str]]:
        return [r for r in self.accommodations.kept if r["city"] == city and name in r["NAME"]]

    def restaurant_rows(self, name: str, city: str) -> list[dict[str, str]]:
        return [r for r in self.restaurants.kept if r["City"] == city and name in r["Name"]]

    def leg_cost(self, a: str, b: str, mode: str, people: int) -> float:
        """The published cost of a driving leg for the group: int(km x 0.05) per car of 5
        self-driving, int(km) per taxi of 4."""
        km = self.routes[(strip_state(a), strip_state(b))]
        if mode == "self-driving":
            return int(km * 0.05) * -(-people // 5)
        return int(km) * -(-people // 4)


# --------------------------------------------------------------------------------------------
# Example plans and their queries


def examples(data: Path) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (data / "postprocess_example_evaluation.jsonl").open()]
    return [r for r in rows if r["plan"]]


def people_of(text: str) -> int:
    m = _PEOPLE.search(text) or _GROUP.search(text)
    if not m:
        return 1
    word = m.group(1).lower()
    return int(word) if word.isdigit() else NUMBERS[word]


def query_for(row: dict[str, Any], ref: Reference) -> dict[str, Any]:
    """A TravelPlanner query record for an example: trip from its plan, people and budget from
    its text, no local constraints."""
    plan = row["plan"]
    first = day_cities(plan[0].get("current_city", ""))
    org = first[0]
    visited: list[str] = []
    for day in plan:
        for city in day_cities(day.get("current_city", "")):
            if city != org and city not in visited:
                visited.append(city)
    k = max(1, len(visited))
    dest = (
        visited[0] if k == 1 and visited else ref.city_state.get(visited[0] if visited else "", "-")
    )
    budget = _BUDGET.search(row["query"])
    return {
        "org": org,
        "dest": dest,
        "days": len(plan),
        "visiting_city_number": k,
        "date": [f"2022-03-{i + 1:02d}" for i in range(len(plan))],
        "people_number": people_of(row["query"]),
        "budget": int(budget.group(1).replace(",", "")) if budget else 10_000,
        "local_constraint": dict(NO_CONSTRAINTS),
        "level": "easy",
    }


def example_flights(rows: list[dict[str, Any]]) -> str:
    """A flights CSV holding every flight the example plans name (TravelPlanner's flight table is
    not distributed with its database), with deterministic prices; one in ten numbers is left out
    so that plans naming an unknown flight exist too."""
    lines = [
        "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,"
        "DestCityName,Distance"
    ]
    seen = set()
    for row in rows:
        for day in row["plan"]:
            m = _FLIGHT.search(str(day.get("transportation", "")))
            if not m or m.group(1) in seen:
                continue
            number, a, b, dep, arr = m.groups()
            seen.add(number)
            h = zlib.crc32(number.encode())
            if h % 10 == 0:
                continue
            lines.append(
                f"{number},{100 + h % 400},{dep},{arr},2 hours 5 minutes,2022-03-01,"
                f"{strip_state(a)},{strip_state(b)},{500 + h % 900}"
            )
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# Mutations: (name, the check it targets, the published result of that check, query, plan)


@dataclass(frozen=True)
class Case:
    name: str
    idx: int
    check: str | None  # the check it targets (None: the unmutated example)
    expected: bool | None
    query: dict[str, Any]
    plan: list[dict[str, Any]]


def _full_days(plan: list[dict[str, Any]]) -> list[int]:
    return [
        i
        for i, d in enumerate(plan)
        if "from" not in str(d.get("current_city", "")) and all(filled(d.get(m)) for m in MEALS)
    ]


def _unique_other(ref: Reference, rows: list[dict[str, str]], key: str, city: str, taken: set[str]):
    """Rows of ``city`` whose name no other kept row of that city contains, not ``taken``."""
    names = [r[key] for r in rows if (r.get("city") or r.get("City")) == city]
    for r in rows:
        if (r.get("city") or r.get("City")) != city or r[key].strip() in taken:
            continue
        if sum(r[key].strip() in n for n in names) == 1 and ";" not in r[key] and "," not in r[key]:
            yield r


def state_legs(plan: list[dict[str, Any]], query: dict[str, Any], ref: Reference, mode: str):
    """The plan with every leg driven (``mode``) and every city of a leg written "City(State)",
    as TravelPlanner writes multi-city trips; None if a leg has no road route."""
    out = copy.deepcopy(plan)
    label = "Self-driving" if mode == "self-driving" else "Taxi"
    for day in out:
        cc = str(day.get("current_city", ""))
        if "from" not in cc:
            continue
        a, b = day_cities(cc)
        if (a, b) not in ref.routes:
            return None
        sa, sb = f"{a}({ref.city_state.get(a, '?')})", f"{b}({ref.city_state.get(b, '?')})"
        km = ref.routes[(a, b)]
        cost = int(km * 0.05) if mode == "self-driving" else int(km)
        day["current_city"] = f"from {sa} to {sb}"
        day["transportation"] = (
            f"{label}, from {sa} to {sb}, duration: 1 hour 1 min, distance: {km:,.0f} km, cost: {cost}"
        )
    for day in out:  # no local rides on the other days (they would mix modes)
        if "from" not in str(day.get("current_city", "")):
            day["transportation"] = "-"
    return out


def cases(data: Path, ref: Reference) -> Iterator[Case]:
    """Every example, then its mutations."""
    for row in examples(data):
        plan, q, idx = row["plan"], query_for(row, ref), row["idx"]
        yield Case("example", idx, None, None, q, plan)
        full = _full_days(plan)
        city_of = {i: day_cities(str(plan[i].get("current_city", "")))[0] for i in full}

        def case(
            name: str, check: str, expected: bool | None, p=None, qq=None, idx=idx, q=q, plan=plan
        ) -> Case:
            return Case(name, idx, check, expected, qq or q, p if p is not None else plan)

        # -- commonsense
        m = copy.deepcopy(plan)
        last = m[-1]
        if "from" in str(last.get("current_city", "")):
            a, _ = day_cities(last["current_city"])
            other = next(c for c in sorted(ref.city_state) if c not in (q["org"], a))
            last["current_city"] = f"from {a} to {other}"
            yield case("open_trip", "is_reasonable_visiting_city", False, m)
        if len(full) >= 2:
            m = copy.deepcopy(plan)
            m[full[1]]["dinner"] = m[full[0]]["lunch"]
            yield case("repeated_restaurant", "is_valid_restaurants", False, m)
        with_attr = [i for i, d in enumerate(plan) if str(d.get("attraction", "")).split(";")[:-1]]
        if len(with_attr) >= 2:
            m = copy.deepcopy(plan)
            first = m[with_attr[0]]["attraction"].split(";")[0]
            m[with_attr[1]]["attraction"] = first + ";" + m[with_attr[1]]["attraction"]
            yield case("repeated_attraction", "is_valid_attractions", False, m)
        if full:
            i = full[0]
            city = city_of[i]
            stay = [
                j
                for j, d in enumerate(plan)
                if d.get("accommodation") == plan[i].get("accommodation")
            ]
            nights = len(stay)
            long_stay = next(
                (
                    r
                    for r in _unique_other(ref, ref.accommodations.kept, "NAME", city, set())
                    if float(r["minimum nights"]) > nights + 1
                ),
                None,
            )
            if long_stay is not None and filled(plan[i].get("accommodation")):
                m = copy.deepcopy(plan)
                for j in stay:
                    m[j]["accommodation"] = f"{long_stay['NAME'].strip()}, {city}"
                yield case("minimum_nights", "is_valid_accommodation", False, m)
            dropped = next(
                (
                    r
                    for r in ref.accommodations.dropped
                    if r["city"] == city
                    and r["NAME"]
                    and "," not in r["NAME"]
                    and not ref.accommodation_rows(r["NAME"].strip(), city)
                ),
                None,
            )
            if dropped is not None and filled(plan[i].get("accommodation")):
                m = copy.deepcopy(plan)
                for j in stay:
                    m[j]["accommodation"] = f"{dropped['NAME'].strip()}, {city}"
                yield case("dropped_accommodation", "is_valid_information_in_sandbox", False, m)
            m = copy.deepcopy(plan)
            m = copy.deepcopy(plan)
            m[i]["dinner"] = f"No Such Diner At All, {city}"
            yield case("invented_restaurant", "is_valid_information_in_sandbox", False, m)
            m = copy.deepcopy(plan)
            m[i]["breakfast"] = "-"
            yield case("missing_breakfast", "is_not_absent", False, m)
        # On a travel day TravelPlanner checks that a meal names one of the day's two cities (on a
        # one-city day its loop runs over the city name's letters, so nearly anything passes).
        travel = [
            i for i, d in enumerate(plan) if len(day_cities(str(d.get("current_city", "")))) == 2
        ]
        if travel:
            i = travel[0]
            pair = day_cities(plan[i]["current_city"])
            other = next(
                r
                for r in ref.restaurants.kept
                if r["City"] not in pair and not any(c in f"{r['Name']}, {r['City']}" for c in pair)
            )
            m = copy.deepcopy(plan)
            m[i]["lunch"] = f"{other['Name'].strip()}, {other['City']}"
            yield case("lunch_elsewhere", "is_valid_information_in_current_city", False, m)
        m = copy.deepcopy(plan)
        m[0]["transportation"] = "-"
        yield case("no_first_leg", "is_valid_transportation", False, m)
        legs = [i for i, d in enumerate(plan) if "Flight Number: " in str(d.get("transportation"))]
        if legs:
            m = copy.deepcopy(plan)
            j = legs[-1]
            cc = str(m[j].get("current_city", ""))
            a, b = day_cities(cc) if "from" in cc and len(day_cities(cc)) == 2 else ("?", "?")
            m[j]["transportation"] = (
                f"Self-driving, from {a} to {b}, duration: 1 hour, distance: 5 km, cost: 1"
            )
            if len(legs) > 1 or any("Taxi" in str(d.get("transportation")) for d in m):
                yield case("self_driving_with_flights", "is_valid_transportation", False, m)
            m = copy.deepcopy(plan)
            m[legs[0]]["transportation"] = re.sub(
                r"Flight Number: [^,]+", "Flight Number: F0000000", m[legs[0]]["transportation"]
            )
            yield case("unknown_flight", "is_valid_information_in_sandbox", False, m)

        # -- hard (TravelPlanner runs them only on plans that pass is_not_absent and the sandbox)
        accommodations = [
            name_city(d["accommodation"]) for d in plan if filled(d.get("accommodation"))
        ]
        hits = [ref.accommodation_rows(n, c) for n, c in accommodations]
        if hits and all(hits):
            rules = {h for rows in hits for h in rows[0]["house_rules"].split(" & ")}
            for rule, text in RULE_TEXT.items():
                qq = {**q, "local_constraint": {**NO_CONSTRAINTS, "house rule": rule}}
                yield case(f"house_rule_{rule}", "valid_room_rule", text not in rules, plan, qq)
            types = {rows[0]["room type"] for rows in hits}
            for wanted, ok in (
                ("shared room", types == {"Shared room"}),
                ("not shared room", "Shared room" not in types),
                ("private room", types == {"Private room"}),
                ("entire room", types == {"Entire home/apt"}),
            ):
                qq = {**q, "local_constraint": {**NO_CONSTRAINTS, "room type": wanted}}
                yield case(f"room_type_{wanted}", "valid_room_type", ok, plan, qq)
        served = _cuisines_served(plan, q, ref)
        if served is not None:
            for cuisine in ("Chinese", "French", "Indian", "Italian", "Mexican", "Mediterranean"):
                qq = {**q, "local_constraint": {**NO_CONSTRAINTS, "cuisine": [cuisine]}}
                yield case(f"cuisine_{cuisine}", "valid_cuisine", cuisine in served, plan, qq)
        kinds = " ".join(str(d.get("transportation", "")) for d in plan)
        for rule, ok in (
            ("no flight", "Flight" not in kinds),
            ("no self-driving", "Self-driving" not in kinds),
        ):
            qq = {**q, "local_constraint": {**NO_CONSTRAINTS, "transportation": rule}}
            yield case(f"transport_{rule}", "valid_transportation", ok, plan, qq)
        if q["visiting_city_number"] > 1:
            for mode in ("self-driving", "taxi"):
                m = state_legs(plan, q, ref, mode)
                if m is None:
                    continue
                legs_cost = sum(
                    ref.leg_cost(*day_cities(d["current_city"]), mode, q["people_number"])
                    for d in m
                    if "from" in str(d.get("current_city", ""))
                )
                yield case(f"state_legs_{mode}", "valid_cost", None, m)  # the full check set
                yield case(
                    f"state_legs_{mode}_free",
                    "valid_cost",
                    False,
                    m,
                    {**q, "budget": legs_cost - 1},
                )


def _cuisines_served(plan, q, ref: Reference) -> set[str] | None:
    """The cuisines TravelPlanner's valid_cuisine counts for the plan (its meals outside the
    origin; a meal in the origin ends that day's count), or None if a meal is not found."""
    served: set[str] = set()
    for day in plan:
        for meal in MEALS:
            if not filled(day.get(meal)):
                continue
            name, city = name_city(day[meal])
            if city == q["org"]:
                break
            rows = ref.restaurant_rows(name, city)
            if rows:
                served |= {c.strip() for c in rows[0]["Cuisines"].split(",")}
    return served
