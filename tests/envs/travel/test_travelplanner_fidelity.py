"""TravelPlanner's checks give TravelPlanner's answers: on its example plans and on mutations of
them that each target one check, with the result its published rules give (tp_cases.py), over
the database as its tools read it (rows with an empty field dropped)."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path

import pytest

from hiergym.envs.travel.travelplanner import (
    evaluate,
    evaluate_plan,
    import_travelplanner,
    open_database,
)
from hiergym.envs.travel.travelplanner.evaluate import total_cost

from . import tp_cases

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
pytestmark = pytest.mark.skipif(
    not (DATA / "distance.csv").is_file(), reason=f"TravelPlanner's data is not at {DATA}"
)


@pytest.fixture(scope="module")
def ref():
    return tp_cases.Reference(DATA)


@pytest.fixture(scope="module")
def data_with_flights(tmp_path_factory):
    """TravelPlanner's data plus a flights CSV naming the example plans' flights."""
    folder = tmp_path_factory.mktemp("tp-data")
    for f in DATA.iterdir():
        (folder / f.name).symlink_to(f)
    (folder / "clean_Flights_2022.csv").write_text(
        tp_cases.example_flights(tp_cases.examples(DATA))
    )
    return folder


@pytest.fixture(scope="module")
def db(data_with_flights):
    return open_database(import_travelplanner(data_with_flights))


@pytest.fixture(scope="module")
def cases(ref):
    return list(tp_cases.cases(DATA, ref))


def _result(report, check):
    for part in ("commonsense", "hard"):
        if report[part] and check in report[part]:
            return report[part][check][0]
    return "not run"


def test_the_database_is_read_as_travelplanners_tools_read_it(db, ref):
    """pandas ``read_csv(...).dropna()``: 762 of the 5,047 accommodations have an empty field
    (most an empty house_rules) and are not in TravelPlanner's database; no attraction or
    restaurant is dropped; the distance matrix is read whole."""
    assert len(ref.accommodations.dropped) == 762
    assert sum(len(v) for v in db.accommodations.values()) == 5047 - 762
    assert sum(len(v) for v in db.restaurants.values()) == 9551
    assert sum(len(v) for v in db.attractions.values()) == 5302
    assert "762 accommodations dropped" in db.summary()
    kept = {(r["NAME"].strip(), r["city"]) for r in ref.accommodations.kept}
    assert {(r["name"], r["city"]) for rows in db.accommodations.values() for r in rows} == kept
    dropped = ref.accommodations.dropped[0]
    assert not [
        r for r in db.accommodations[dropped["city"]] if r["name"] == dropped["NAME"].strip()
    ]


def test_each_mutation_of_an_example_gets_the_published_result(db, cases):
    """Every mutation targets one check; the port answers what TravelPlanner's rules answer."""
    tried, wrong = Counter(), []
    for case in cases:
        if case.expected is None:
            continue
        got = _result(evaluate_plan(case.query, case.plan, db), case.check)
        if got == "not run":  # a hard check on a plan TravelPlanner does not run them on
            assert case.check.startswith("valid_"), case
            continue
        tried[case.check] += 1
        if got != case.expected:
            wrong.append((case.idx, case.name, case.check, got, case.expected))
    assert not wrong, wrong[:10]
    assert set(tried) == {
        "is_reasonable_visiting_city",
        "is_valid_restaurants",
        "is_valid_attractions",
        "is_valid_accommodation",
        "is_valid_transportation",
        "is_valid_information_in_current_city",
        "is_valid_information_in_sandbox",
        "is_not_absent",
        "valid_cuisine",
        "valid_room_rule",
        "valid_transportation",
        "valid_room_type",
        "valid_cost",
    }
    assert min(tried.values()) >= 40, tried


def test_a_plan_naming_a_dropped_accommodation_is_not_in_the_sandbox(db, cases):
    dropped = [c for c in cases if c.name == "dropped_accommodation"]
    assert len(dropped) >= 50
    for case in dropped:
        sandbox = evaluate_plan(case.query, case.plan, db)["commonsense"]
        assert sandbox["is_valid_information_in_sandbox"][0] is False, case.idx


def test_city_state_legs_are_costed_like_plain_city_legs(db, ref, cases):
    """TravelPlanner writes multi-city trips "from Dallas(Texas) to Austin(Texas)"; its distance
    look-up strips "(Texas)", so every such leg costs its route (here it cost $0)."""
    multi = [c for c in cases if c.name.startswith("state_legs_") and not c.name.endswith("_free")]
    assert len(multi) >= 20
    for case in multi:
        mode = case.name.removeprefix("state_legs_")
        legs = [d for d in case.plan if "from" in str(d.get("current_city", ""))]
        assert all("(" in d["transportation"] for d in legs)
        plain = copy.deepcopy(case.plan)
        for d in plain:
            d["current_city"] = tp_cases.strip_state_all(d.get("current_city", ""))
            d["transportation"] = tp_cases.strip_state_all(d.get("transportation", ""))
        legs_cost = sum(
            ref.leg_cost(*tp_cases.day_cities(d["current_city"]), mode, case.query["people_number"])
            for d in legs
        )
        with_states, without = (
            total_cost(case.query, case.plan, db),
            total_cost(case.query, plain, db),
        )
        assert legs_cost > 0 and with_states == pytest.approx(without), case.idx
        stripped_legs = copy.deepcopy(plain)
        for d in stripped_legs:
            if "from" in str(d.get("current_city", "")):
                d["transportation"] = "-"
        assert with_states - total_cost(case.query, stripped_legs, db) == pytest.approx(legs_cost)


def test_a_parties_constraint_fails_a_place_that_forbids_parties(db, cases):
    """Fixed upstream in April 2024 (ed379c4): the rule used to compare with 'parities'."""
    parties = [c for c in cases if c.name == "house_rule_parties"]
    assert any(c.expected is False for c in parties) and any(c.expected for c in parties)
    for case in parties:
        hard = evaluate_plan(case.query, case.plan, db)["hard"]
        if hard is not None:
            assert hard["valid_room_rule"][0] is case.expected, case.idx


def test_the_commonsense_micro_rate_counts_all_eight_checks(db, cases):
    """One plan failing exactly one check of eight: micro 7/8, macro 0."""
    one = next(
        c
        for c in cases
        if c.name == "repeated_restaurant"
        and sum(not ok for ok, _ in evaluate_plan(c.query, c.plan, db)["commonsense"].values()) == 1
    )
    report = evaluate([{"plan": one.plan}], [one.query], db)
    assert report["metrics"]["Commonsense Constraint Micro Pass Rate"] == 7 / 8
    assert report["metrics"]["Commonsense Constraint Macro Pass Rate"] == 0.0


def test_the_hard_micro_rate_counts_what_travelplanner_counts(db, cases):
    """TravelPlanner's denominator: the budget for every query, the room rule, cuisine and room
    type when a medium or hard query sets them, transportation only for hard queries."""
    base = next(
        c for c in cases if c.name == "example" and evaluate_plan(c.query, c.plan, db)["hard"]
    )
    lc = {**tp_cases.NO_CONSTRAINTS, "room type": "entire room", "transportation": "no flight"}
    queries = [
        {**base.query, "level": "medium", "local_constraint": lc},
        {**base.query, "level": "hard", "local_constraint": lc},
    ]
    report = evaluate([{"plan": base.plan}] * 2, queries, db)
    hard = report["plans"][0]["hard"]
    passed = sum(ok is True for ok, _ in hard.values())
    assert report["metrics"]["Hard Constraint Micro Pass Rate"] == pytest.approx(
        2 * passed / (2 + 3)
    )


def test_names_with_spaces_around_them_are_found_stripped(db, ref):
    """ "Singh's Zaika " is a restaurant; a plan naming it "Singh's Zaika, City" (TravelPlanner
    strips the planned name) is in the sandbox."""
    row = next(r for r in ref.restaurants.kept if r["Name"] != r["Name"].strip())
    hits = db.restaurant(row["Name"].strip(), row["City"])
    assert hits and hits[0]["name"] == row["Name"].strip()
