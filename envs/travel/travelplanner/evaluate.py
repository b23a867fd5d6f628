"""TravelPlanner's evaluation: 8 commonsense checks, 5 hard checks, and its six metrics.

A port of the published evaluation (OSU-NLP-Group/TravelPlanner, evaluation/commonsense_constraint.py,
hard_constraint.py and eval.py) to the imported sandbox, check by check, including its parsing of
plan strings ("Name, City"; "Flight Number: F123, from A to B, ..."). Definitions (Xie et al. 2024):

* Delivery Rate — plans delivered (non-empty) / queries;
* Commonsense Micro — commonsense checks passed / (8 x queries), all 8 checks counted, as eval.py
  counts them; Macro — plans passing all 8 / queries;
* Hard Micro — hard checks passed / the hard checks eval.py counts (the budget for every query;
  the room rule, cuisine and room type when a medium or hard query sets them; transportation when
  a hard query sets it); Macro — plans passing every applicable one / queries. Hard checks run only on delivered plans that pass ``is_not_absent`` and
  ``is_valid_information_in_sandbox`` (as in TravelPlanner); the others fail all theirs;
* Final Pass Rate — plans passing every commonsense and hard check / queries.

The database is TravelPlanner's view of its files (importer.py: rows with an empty field dropped,
as its pandas ``dropna()`` drops them). Without imported flights, flight numbers cannot be looked up: the sandbox check then skips flights
(and their price adds nothing to the cost, as in TravelPlanner when a flight is not found).
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..rules import house_rules_of
from .database import TravelPlannerDB

Result = tuple[bool | None, str | None]
_FROM_TO = re.compile(r"from\s+(.+?)\s+to\s+([^,]+)(?=[,\s]|$)")
_NAME_CITY = re.compile(r"(.*?),\s*([^,]+)(\(\w[\w\s]*\))?$")
_PAREN = re.compile(r"^(.*?)\([^)]*\)")
MEALS = ("breakfast", "lunch", "dinner")


# --------------------------------------------------------------------------------------------
# TravelPlanner's string parsing


def extract_before_parenthesis(s: str) -> str:
    m = _PAREN.search(s)
    return m.group(1) if m else s


def extract_from_to(text: str) -> tuple[str | None, str | None]:
    m = _FROM_TO.search(text)
    return (m.group(1), m.group(2)) if m else (None, None)


def get_valid_name_city(info: str) -> tuple[str, str]:
    m = _NAME_CITY.search(info)
    if m:
        return m.group(1).strip(), extract_before_parenthesis(m.group(2).strip()).strip()
    return "-", "-"


def transportation_match(text: str) -> str | None:
    low = text.lower()
    if "taxi" in low:
        return "Taxi"
    if "self-driving" in low:
        return "Self-driving"
    if "flight" in low:
        return "Flight"
    return None


def _filled(unit: Mapping[str, Any], key: str) -> bool:
    value = unit.get(key)
    return bool(value) and value != "-"


def _cities_of(current_city: str) -> list[str]:
    if "from" in current_city:
        a, b = extract_from_to(current_city)
        if a is None or b is None:
            return [current_city]
        return [extract_before_parenthesis(a), extract_before_parenthesis(b)]
    return [extract_before_parenthesis(current_city)]


def is_valid_city_sequence(city_list: list[str]) -> bool:
    if len(city_list) < 3:
        return False
    visited: set[str] = set()
    i = 0
    while i < len(city_list):
        city = city_list[i]
        if city in visited and (i != 0 and i != len(city_list) - 1):
            return False
        count = 0
        while i < len(city_list) and city_list[i] == city:
            count += 1
            i += 1
        if count == 1 and 0 < i - 1 < len(city_list) - 1:
            return False
        visited.add(city)
    return True


# --------------------------------------------------------------------------------------------
# Commonsense checks


def city_list(q: Mapping[str, Any], plan: Sequence[Mapping]) -> list[str] | Result:
    """The cities the plan's days name in order ("from A to B" gives A then B), or the failure
    that TravelPlanner reports when a day's city cannot be read or day 1 leaves another city."""
    cities: list[str] = []
    for i in range(min(q["days"], len(plan))):
        value = plan[i]["current_city"]
        if "from" in value:
            a, b = extract_from_to(value)
            if a is None or b is None:
                return False, f"day {i + 1}'s current city cannot be parsed."
            a, b = extract_before_parenthesis(a), extract_before_parenthesis(b)
            if i == 0 and a != q["org"]:
                return False, f"The first day's city should be {q['org']}."
            cities += [a, b]
        else:
            cities.append(extract_before_parenthesis(value))
    return cities


def is_reasonable_visiting_city(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    cities = city_list(q, plan)
    if isinstance(cities, tuple):
        return cities
    if not cities or cities[0] != cities[-1]:
        return False, "The trip should be a closed circle."
    if not is_valid_city_sequence(cities):
        return False, "The city sequence is invalid."
    for idx, city in enumerate(cities):
        if city not in db.city_state:
            return False, f"{city} is not a valid city."
        if idx not in (0, len(cities) - 1) and q["days"] > 3 and db.city_state[city] != q["dest"]:
            return False, f"{city} is not in {q['dest']}."
    return True, None


def is_valid_restaurants(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    seen: list[str] = []
    for i in range(min(q["days"], len(plan))):
        for meal in MEALS:
            if _filled(plan[i], meal):
                if plan[i][meal] in seen:
                    return False, f"The restaurant in day {i + 1} {meal} is repeated."
                seen.append(plan[i][meal])
    return True, None


def is_valid_attractions(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    seen: list[str] = []
    for i in range(min(q["days"], len(plan))):
        if _filled(plan[i], "attraction"):
            for attraction in plan[i]["attraction"].split(";")[:-1]:
                if attraction in seen:
                    return False, f"The attraction '{attraction}' in day {i + 1} is repeated."
                seen.append(attraction)
    return True, None


def is_valid_transportation(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    if not plan or not _filled(plan[0], "transportation"):
        return False, "The transportation in day 1 should not be empty."
    kinds = [transportation_match(plan[0]["transportation"])]
    for i in range(min(q["days"], len(plan))):
        if _filled(plan[i], "transportation"):
            kinds.append(transportation_match(plan[i]["transportation"]))
    if ("Self-driving" in kinds and "Flight" in kinds) or (
        "Taxi" in kinds and "Self-driving" in kinds
    ):
        return False, "The transportation is conflicting."
    return True, None


def is_valid_information_in_current_city(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    for i in range(min(q["days"], len(plan))):
        unit = plan[i]
        cc = unit["current_city"]
        # As published: on a one-city day the repository iterates the city *name* (a string), so
        # these checks run per character; "from A to B" days check both cities. Kept for fidelity.
        cities: Sequence[str] = _cities_of(cc) if "from" in cc else extract_before_parenthesis(cc)
        if not cities:
            return False, f"day {i + 1}'s current city is empty."
        if _filled(unit, "transportation"):
            for city in cities:
                if city not in unit["transportation"]:
                    return False, f"The transportation in day {i + 1} is invalid city choice."
        for key in MEALS:
            if _filled(unit, key) and not any(city in unit[key] for city in cities):
                return False, f"The {key} in day {i + 1} is invalid city choice."
        if _filled(unit, "attraction"):
            for attraction in unit["attraction"].split(";")[:-1]:
                if not any(city in attraction for city in cities):
                    return False, f"The attraction in day {i + 1} is invalid city choice."
        if _filled(unit, "accommodation") and cities[-1] not in unit["accommodation"]:
            return False, f"The accommodation in day {i + 1} is invalid city choice."
    return True, None


def is_valid_information_in_sandbox(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    for i in range(min(q["days"], len(plan))):
        unit = plan[i]
        if _filled(unit, "transportation"):
            value = unit["transportation"]
            org, dest = extract_from_to(value)
            if org is None or dest is None:
                org, dest = extract_from_to(unit["current_city"])
            if "flight number" in value.lower():
                if db.has_flights:
                    if org is None or dest is None:
                        return False, f"The transportation in day {i + 1} can not be parsed."
                    number = (
                        value.split("Flight Number: ")[1].split(",")[0]
                        if "Flight Number: " in value
                        else ""
                    )
                    if not db.flights(
                        number, extract_before_parenthesis(org), extract_before_parenthesis(dest)
                    ):
                        return False, f"The flight number in day {i + 1} is invalid in the sandbox."
            elif "self-driving" in value.lower() or "taxi" in value.lower():
                a = extract_before_parenthesis(org) if org is not None else "-"
                b = extract_before_parenthesis(dest) if dest is not None else "-"
                mode = "self-driving" if "self-driving" in value.lower() else "taxi"
                if db.route_cost(a, b, mode) is None:
                    return False, f"The {mode} in day {i + 1} is invalid in the sandbox."
        for meal in MEALS:
            if _filled(unit, meal):
                name, city = get_valid_name_city(unit[meal])
                if not db.restaurant(name, city):
                    return False, f"The {meal} in day {i + 1} is invalid in the sandbox."
        if _filled(unit, "attraction"):
            for attraction in unit["attraction"].split(";")[:-1]:
                name, city = get_valid_name_city(attraction)
                if not db.attraction(name, city):
                    return (
                        False,
                        f"The attraction {attraction} in day {i + 1} is invalid in the sandbox.",
                    )
        if _filled(unit, "accommodation"):
            name, city = get_valid_name_city(unit["accommodation"])
            if not db.accommodation(name, city):
                return False, f"The accommodation in day {i + 1} is invalid in the sandbox."
    return True, None


def _consecutive(values: list[Any]) -> list[tuple[Any, int]]:
    out: list[tuple[Any, int]] = []
    for v in values:
        if out and out[-1][0] == v:
            out[-1] = (v, out[-1][1] + 1)
        else:
            out.append((v, 1))
    return out


def is_valid_accommodation(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    data = []
    for i in range(min(q["days"], len(plan))):
        if "accommodation" not in plan[i]:
            return False, "No Accommodation Info."
        data.append(plan[i]["accommodation"])
    for value, nights in _consecutive(data):
        if value and value not in ("-", ""):
            name, city = get_valid_name_city(value)
            hits = db.accommodation(name, city)
            if len(hits) == 1 and nights < (hits[0]["minimum_nights"] or 0):
                return False, f"The accommodation {value} do not obey the minumum nights rule."
    return True, None


def is_valid_visiting_city_number(q: Mapping[str, Any], plan: Sequence[Mapping]) -> Result:
    listed = city_list(q, plan)
    if isinstance(listed, tuple):
        return listed
    cities = set(listed) - {q["org"]}
    if len(cities) != q["visiting_city_number"]:
        return False, f"The number of visiting cities should be {q['visiting_city_number']}."
    return True, None


def is_valid_days(q: Mapping[str, Any], plan: Sequence[Mapping]) -> Result:
    days = sum(
        1
        for i in range(min(q["days"], len(plan)))
        if plan[i]
        and plan[i].get("current_city")
        != "You don't need to fill in the information for this or later days."
    )
    return (
        (True, None) if days == q["days"] else (False, f"The number of days should be {q['days']}.")
    )


def is_not_absent(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> Result:
    needed = 6 * q["days"]
    if not is_valid_days(q, plan)[0]:
        return False, "Invalid Days"
    if not is_valid_visiting_city_number(q, plan)[0]:
        return False, "Invalid City Number"
    valid = 0
    for i in range(min(q["days"], len(plan))):
        unit = plan[i]
        for key in ("transportation", *MEALS, "attraction", "accommodation"):
            if key not in unit:
                return False, f"No {key.title()} Info."
        cc = unit["current_city"]
        if ("from " in cc or "to " in cc) and unit["transportation"] in ("", "-"):
            return False, f"No transportation in day {i + 1} is not allowed."
        if ("from " not in cc and " to " not in cc) and unit["attraction"] in ("", "-"):
            return False, f"No attaction in day {i + 1} is not allowed."
        if i != q["days"] - 1 and unit["accommodation"] in ("", "-"):
            return False, f"No accommodation in day {i + 1} is not allowed."
        if any(unit[m] in ("", "-") for m in MEALS) and "from " not in cc:
            return False, f"No meal in day {i + 1} is not allowed."
        valid += sum(1 for v in unit.values() if v and v != "-")
    if valid / needed < 0.5:
        return False, "The absent information is more than 50%."
    return True, None


COMMONSENSE_CHECKS: dict[str, Callable[..., Result]] = {
    "is_reasonable_visiting_city": is_reasonable_visiting_city,
    "is_valid_restaurants": is_valid_restaurants,
    "is_valid_attractions": is_valid_attractions,
    "is_valid_accommodation": is_valid_accommodation,
    "is_valid_transportation": is_valid_transportation,
    "is_valid_information_in_current_city": is_valid_information_in_current_city,
    "is_valid_information_in_sandbox": is_valid_information_in_sandbox,
    "is_not_absent": is_not_absent,
}


# --------------------------------------------------------------------------------------------
# Hard checks


def total_cost(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> float:
    people = q["people_number"]
    total = 0.0
    for i in range(min(q["days"], len(plan))):
        unit = plan[i]
        if _filled(unit, "transportation"):
            value = unit["transportation"]
            org, dest = extract_from_to(value)
            if org is None or dest is None:
                org, dest = extract_from_to(unit["current_city"])
            if org is None or dest is None:
                pass  # as published: no transport cost when the cities cannot be read
            elif "flight number" in value.lower():
                number = (
                    value.split("Flight Number: ")[1].split(",")[0]
                    if "Flight Number: " in value
                    else ""
                )
                hits = db.flights(number)
                if hits:
                    total += (hits[0]["price"] or 0) * people
            elif "self-driving" in value.lower() or "taxi" in value.lower():
                driving = "self-driving" in value.lower()
                cost = db.route_cost(org, dest, "self-driving" if driving else "taxi")
                if cost is not None:
                    total += cost * math.ceil(people / (5 if driving else 4))
        for meal in MEALS:
            if _filled(unit, meal):
                hits = db.restaurant(*get_valid_name_city(unit[meal]))
                if hits:
                    total += (hits[0]["average_cost"] or 0) * people
        if _filled(unit, "accommodation"):
            hits = db.accommodation(*get_valid_name_city(unit["accommodation"]))
            if hits:
                total += (hits[0]["price"] or 0) * math.ceil(
                    people / (hits[0]["max_occupancy"] or 1)
                )
    return total


def _accommodations(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB):  # noqa: ANN202
    for i in range(min(q["days"], len(plan))):
        if _filled(plan[i], "accommodation"):
            hits = db.accommodation(*get_valid_name_city(plan[i]["accommodation"]))
            if hits:
                yield hits[0]


# As in the repository since April 2024 (commit ed379c4; before it, the comparison was with
# 'parities', so a "parties" constraint never failed).
_RULE_TEXT = {
    "smoking": "No smoking",
    "parties": "No parties",
    "children under 10": "No children under 10",
    "visitors": "No visitors",
    "pets": "No pets",
}


def valid_room_rule(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> Result:
    rule = q["local_constraint"].get("house rule")
    if rule is None:
        return None, None
    text = _RULE_TEXT.get(rule)
    for acc in _accommodations(q, plan, db):
        if text is not None and text in house_rules_of(str(acc["house_rules"])):
            return False, f"The house rule should be {rule}."
    return True, None


def valid_cuisine(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> Result:
    wanted = q["local_constraint"].get("cuisine")
    if not wanted:
        return None, None
    found: set[str] = set()
    for i in range(min(q["days"], len(plan))):
        for meal in MEALS:
            if _filled(plan[i], meal):
                name, city = get_valid_name_city(plan[i][meal])
                if city == q["org"]:
                    break  # as published: its `continue` skips the rest of the day's meals
                hits = db.restaurant(name, city)
                if hits:  # as published: a cuisine counts if its name occurs in the field
                    found |= {c for c in wanted if c in str(hits[0]["cuisines"])}
    for c in wanted:
        if c not in found:
            return False, f"The cuisine {c} is not satisfied."
    return True, None


def valid_transportation(
    q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB
) -> Result:
    rule = q["local_constraint"].get("transportation")
    if rule is None:
        return None, None
    for i in range(min(q["days"], len(plan))):
        if _filled(plan[i], "transportation"):
            value = plan[i]["transportation"]
            if (rule == "no flight" and "Flight" in value) or (
                rule == "no self-driving" and "Self-driving" in value
            ):
                return False, f"The transportation should not be {rule}."
    return True, None


_ROOM_TYPES = {
    "not shared room": lambda t: t != "Shared room",
    "shared room": lambda t: t == "Shared room",
    "private room": lambda t: t == "Private room",
    "entire room": lambda t: t == "Entire home/apt",
}


def valid_room_type(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> Result:
    rule = q["local_constraint"].get("room type")
    if rule is None:
        return None, None
    for acc in _accommodations(q, plan, db):
        if not _ROOM_TYPES[rule](acc["room_type"]):
            return False, f"The room type should be {rule}."
    return True, None


def valid_cost(q: Mapping[str, Any], plan: Sequence[Mapping], db: TravelPlannerDB) -> Result:
    cost = total_cost(q, plan, db)
    return (
        (True, None)
        if cost <= q["budget"]
        else (False, f"The cost {cost:g} is over the budget {q['budget']:g}.")
    )


HARD_CHECKS: dict[str, Callable[..., Result]] = {
    "valid_cuisine": valid_cuisine,
    "valid_room_rule": valid_room_rule,
    "valid_transportation": valid_transportation,
    "valid_room_type": valid_room_type,
    "valid_cost": valid_cost,
}


# --------------------------------------------------------------------------------------------
# Queries, plans and metrics


def normalize_query(q: Mapping[str, Any]) -> dict[str, Any]:
    """A query record with TravelPlanner's string-encoded fields decoded."""
    out = dict(q)
    lc = out.get("local_constraint") or {}
    if isinstance(lc, str):
        lc = ast.literal_eval(lc)
    out["local_constraint"] = {
        "house rule": lc.get("house rule"),
        "cuisine": lc.get("cuisine"),
        "room type": lc.get("room type"),
        "transportation": lc.get("transportation"),
    }
    if isinstance(out.get("date"), str) and out["date"].startswith("["):
        out["date"] = ast.literal_eval(out["date"])
    out["days"] = int(out["days"])
    out["visiting_city_number"] = int(out.get("visiting_city_number", 1))
    out["people_number"] = int(out.get("people_number", 1))
    out["budget"] = float(out["budget"])
    return out


def _plan_of(record: Any) -> list[Mapping[str, Any]] | None:
    plan = record.get("plan") if isinstance(record, Mapping) else record
    return plan if isinstance(plan, list) and plan else None


def evaluate_plan(
    query: Mapping[str, Any], plan: Sequence[Mapping[str, Any]] | None, db: TravelPlannerDB
) -> dict[str, Any]:
    """Every check of one plan: ``{"commonsense": {name: (ok, why)}, "hard": {...} | None}``."""
    q = normalize_query(query)
    if not plan:
        return {"delivered": False, "commonsense": None, "hard": None}
    commonsense = {}
    for name, check in COMMONSENSE_CHECKS.items():
        try:
            commonsense[name] = check(q, plan, db)
        except (
            KeyError,
            TypeError,
            AttributeError,
            IndexError,
        ) as e:  # a malformed plan fails the check
            commonsense[name] = (False, f"the plan cannot be read: {type(e).__name__}: {e}")
    hard = None
    if commonsense["is_not_absent"][0] and commonsense["is_valid_information_in_sandbox"][0]:
        hard = {}
        for name, check in HARD_CHECKS.items():
            try:
                hard[name] = check(q, plan, db)
            except (KeyError, TypeError, AttributeError, IndexError) as e:
                hard[name] = (False, f"the plan cannot be read: {type(e).__name__}: {e}")
    return {"delivered": True, "commonsense": commonsense, "hard": hard}


# The local constraints TravelPlanner's eval.py counts in the hard micro rate's denominator, by
# the query's level (a check that runs on another level's query still adds its passes).
_COUNTED = {
    "easy": (),
    "medium": ("house rule", "cuisine", "room type"),
    "hard": ("house rule", "cuisine", "room type", "transportation"),
}


def applicable_hard(query: Mapping[str, Any]) -> int:
    """The hard checks one query adds to the micro rate's denominator: the budget, and each
    local constraint it sets that its level counts (eval.py's ``mapping_constraint_record``)."""
    q = normalize_query(query)
    counted = _COUNTED.get(str(q.get("level")), _COUNTED["hard"])
    return 1 + sum(q["local_constraint"][k] is not None for k in counted)


def evaluate(
    plans: Sequence[Any], queries: Sequence[Mapping[str, Any]], db: TravelPlannerDB
) -> dict[str, Any]:
    """TravelPlanner's metrics over plans (a plan list, or a record with ``"plan"``) and queries."""
    if len(plans) != len(queries):
        raise ValueError(f"{len(plans)} plans for {len(queries)} queries; give one plan per query")
    if not queries:
        raise ValueError("no queries to evaluate")
    n = len(queries)
    per_plan = [evaluate_plan(q, _plan_of(p), db) for p, q in zip(plans, queries, strict=True)]
    delivered = commonsense_pass = hard_pass = hard_total = 0
    macro_commonsense = macro_hard = final = 0
    for q, r in zip(queries, per_plan, strict=True):
        hard_total += applicable_hard(q)
        if not r["delivered"]:
            continue
        delivered += 1
        cs_ok = [ok for ok, _ in r["commonsense"].values()]
        commonsense_pass += sum(bool(ok) for ok in cs_ok)
        if r["hard"] is None:
            continue
        hard_ok = [ok for ok, _ in r["hard"].values()]
        hard_pass += sum(ok is True for ok in hard_ok)
        all_cs, all_hard = all(cs_ok), all(ok is not False for ok in hard_ok)
        macro_commonsense += all_cs
        macro_hard += all_hard
        final += all_cs and all_hard
    metrics = {
        "Delivery Rate": delivered / n,
        "Commonsense Constraint Micro Pass Rate": commonsense_pass / (8 * n),
        "Commonsense Constraint Macro Pass Rate": macro_commonsense / n,
        "Hard Constraint Micro Pass Rate": hard_pass / hard_total,
        "Hard Constraint Macro Pass Rate": macro_hard / n,
        "Final Pass Rate": final / n,
    }
    return {"metrics": metrics, "plans": per_plan}
