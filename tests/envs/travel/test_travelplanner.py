"""TravelPlanner compatibility: the importer and the evaluator on TravelPlanner's shared data."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from hiergym.envs.travel.travelplanner import (
    evaluate,
    evaluate_plan,
    import_travelplanner,
    main,
    open_database,
)
from hiergym.errors import SandboxError

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
pytestmark = pytest.mark.skipif(
    not (DATA / "distance.csv").is_file(), reason=f"TravelPlanner's data is not at {DATA}"
)


@pytest.fixture(scope="module")
def db():
    return open_database(import_travelplanner(DATA))


@pytest.fixture(scope="module")
def examples():
    rows = [json.loads(line) for line in (DATA / "postprocess_example_evaluation.jsonl").open()]
    return [r for r in rows if r["plan"]]


def _query(plan, **changes):
    first = plan[0]["current_city"]
    org = first.split("from ", 1)[1].split(" to ")[0].strip() if "from " in first else "?"
    q = {
        "org": org,
        "dest": "?",
        "days": len(plan),
        "visiting_city_number": 1,
        "people_number": 1,
        "budget": 1e9,
        "local_constraint": {},
        "level": "easy",
    }
    return {**q, **changes}


def test_importer_reads_every_table(db):
    assert "4285 accommodations, 9551 restaurants, 5302 attractions" in db.summary()
    assert "762 accommodations dropped" in db.summary()
    assert "no flight data" in db.summary() and not db.has_flights
    assert db.city_state["San Diego"] == "California"
    assert db.route_cost("Detroit", "Norfolk", "self-driving") == int(1144 * 0.05)
    assert db.route_cost("Detroit", "Norfolk", "taxi") == 1144


def test_importer_rejects_a_wrong_layout_with_a_clear_message(tmp_path, capsys):
    (tmp_path / "attractions.csv").write_text("Name,City\n")
    with pytest.raises(SandboxError, match="lacks clean_accommodations_2022.csv"):
        import_travelplanner(tmp_path)
    assert main([str(tmp_path / "nowhere")]) == 2
    assert "no TravelPlanner data directory" in capsys.readouterr().err


def test_importer_takes_optional_flights(tmp_path):
    for f in DATA.iterdir():
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "clean_Flights_2022.csv").write_text(
        "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,DestCityName,Distance\n"
        "F0000001,120,08:00,10:30,2 hours 30 minutes,2022-03-13,Washington,Myrtle Beach,400.0\n"
    )
    fdb = open_database(import_travelplanner(tmp_path))
    assert fdb.has_flights and fdb.flights("F0000001", "Washington", "Myrtle Beach")
    plan = [
        {
            "days": 1,
            "current_city": "from Washington to Myrtle Beach",
            "transportation": "Flight Number: F0000001, from Washington to Myrtle Beach, Departure Time: 08:00, Arrival Time: 10:30",
            "breakfast": "-",
            "attraction": "-",
            "lunch": "-",
            "dinner": "-",
            "accommodation": "-",
        }
    ]
    q = _query(plan, people_number=2)
    ok = evaluate_plan(q, plan, fdb)["commonsense"]["is_valid_information_in_sandbox"]
    assert ok == (True, None)
    plan[0]["transportation"] = plan[0]["transportation"].replace("F0000001", "F0000009")
    bad = evaluate_plan(q, plan, fdb)["commonsense"]["is_valid_information_in_sandbox"]
    assert bad[0] is False and "flight number" in bad[1]


def test_examples_pass_the_checks_that_need_no_query_fields(db, examples):
    """Attractions never repeat in the 180 example plans once TravelPlanner's trailing ';' is read
    as it reads it; the other query-free checks pass on most and fail for reasons in the plans."""
    passed = {}
    for row in examples:
        result = evaluate_plan(_query(row["plan"]), row["plan"], db)["commonsense"]
        for name in (
            "is_valid_restaurants",
            "is_valid_attractions",
            "is_valid_transportation",
            "is_valid_information_in_current_city",
            "is_valid_information_in_sandbox",
        ):
            passed[name] = passed.get(name, 0) + bool(result[name][0])
    assert passed["is_valid_attractions"] == len(examples) == 161
    assert passed["is_valid_restaurants"] >= 140 and passed["is_valid_transportation"] >= 125
    assert passed["is_valid_information_in_sandbox"] >= 100


def _mutations(plan, db):
    """(check, mutated plan) pairs, each breaking one check."""
    out = []
    days = [d for d in plan if d.get("lunch") not in (None, "-", "")]
    if len(days) >= 2:
        m = copy.deepcopy(plan)
        i, j = plan.index(days[0]), plan.index(days[1])
        m[j]["lunch"] = m[i]["lunch"]
        out.append(("is_valid_restaurants", m))
    # TravelPlanner counts the pieces before the last ';' ("A, City;B, City;").
    with_attr = [d for d in plan if d.get("attraction") and d["attraction"].split(";")[:-1]]
    if len(with_attr) >= 2:
        m = copy.deepcopy(plan)
        i, j = plan.index(with_attr[0]), plan.index(with_attr[1])
        first = m[i]["attraction"].split(";")[0]
        m[j]["attraction"] = first + ";" + m[j]["attraction"]
        out.append(("is_valid_attractions", m))
    if days:
        m = copy.deepcopy(plan)
        d = m[plan.index(days[0])]
        d["lunch"] = "No Such Diner At All, " + d["lunch"].rsplit(",", 1)[-1].strip()
        out.append(("is_valid_information_in_sandbox", m))
    m = copy.deepcopy(plan)
    m[0]["transportation"] = "-"
    out.append(("is_valid_transportation", m))
    m = copy.deepcopy(plan)
    m[-1].pop("accommodation", None)
    m[-1].pop("dinner", None)
    out.append(("is_not_absent", m))
    return out


def test_each_mutation_of_an_example_fails_the_check_it_targets(db, examples):
    tried = 0
    for row in examples:
        plan = row["plan"]
        q = _query(plan)
        before = evaluate_plan(q, plan, db)["commonsense"]
        for check, mutated in _mutations(plan, db):
            if not before[check][0]:
                continue  # the example already fails it
            after = evaluate_plan(q, mutated, db)["commonsense"]
            assert after[check][0] is False, (row["idx"], check, after[check])
            tried += 1
    assert tried > 300


PLAN_OK = [
    {
        "days": 1,
        "current_city": "from Detroit to Norfolk",
        "transportation": "Self-driving, from Detroit to Norfolk, duration: 10 hours 55 mins, distance: 1,144 km, cost: 57",
        "breakfast": "-",
        "attraction": "-",
        "lunch": "-",
        "dinner": "-",
        "accommodation": "ACCOMMODATION",
    },
    {
        "days": 2,
        "current_city": "Norfolk",
        "transportation": "-",
        "breakfast": "R1",
        "attraction": "A1;",
        "lunch": "R2",
        "dinner": "R3",
        "accommodation": "ACCOMMODATION",
    },
    {
        "days": 3,
        "current_city": "from Norfolk to Detroit",
        "transportation": "Self-driving, from Norfolk to Detroit, duration: 10 hours 49 mins, distance: 1,142 km, cost: 57",
        "breakfast": "-",
        "attraction": "-",
        "lunch": "-",
        "dinner": "-",
        "accommodation": "-",
    },
]


def _written_plan(db):
    """A correct 3-day Detroit -> Norfolk plan, from entries of the database."""
    acc = next(
        a
        for a in db.accommodations["Norfolk"]
        if (a["minimum_nights"] or 1) <= 2 and len(db.accommodation(a["name"], "Norfolk")) == 1
    )
    restaurants = [
        r for r in db.restaurants["Norfolk"] if len(db.restaurant(r["name"], "Norfolk")) == 1
    ][:3]
    attraction = next(
        a for a in db.attractions["Norfolk"] if len(db.attraction(a["name"], "Norfolk")) == 1
    )
    plan = json.loads(json.dumps(PLAN_OK))
    for d in plan[:2]:
        d["accommodation"] = f"{acc['name']}, Norfolk"
    for key, r in zip(("breakfast", "lunch", "dinner"), restaurants, strict=True):
        plan[1][key] = f"{r['name']}, Norfolk"
    plan[1]["attraction"] = f"{attraction['name']}, Norfolk;"
    return plan, acc, restaurants


def test_metrics_on_plans_written_by_hand(db):
    plan, acc, restaurants = _written_plan(db)
    people = 2
    expected_cost = (
        int(1144 * 0.05)
        + int(1142 * 0.05)
        + sum(r["average_cost"] for r in restaurants) * people
        + 2 * acc["price"] * -(-people // acc["max_occupancy"])
    )
    base = {
        "org": "Detroit",
        "dest": "Norfolk",
        "days": 3,
        "visiting_city_number": 1,
        "people_number": people,
        "local_constraint": "{'house rule': None, 'cuisine': None, 'room type': None, 'transportation': 'no flight'}",
        "level": "hard",  # eval.py counts transportation for hard queries only
    }
    queries = [
        {**base, "budget": expected_cost},  # exactly on budget: passes everything
        {**base, "budget": expected_cost - 1},  # a dollar short: fails the budget only
        {**base, "budget": expected_cost},  # not delivered
    ]
    report = evaluate([{"plan": plan}, {"plan": plan}, {"plan": None}], queries, db)
    first, second, third = report["plans"]
    assert all(ok for ok, _ in first["commonsense"].values()), first
    assert first["hard"]["valid_cost"] == (True, None)
    assert second["hard"]["valid_cost"][0] is False and third["delivered"] is False
    assert report["metrics"] == {
        "Delivery Rate": 2 / 3,
        "Commonsense Constraint Micro Pass Rate": 16 / 24,
        "Commonsense Constraint Macro Pass Rate": 2 / 3,
        "Hard Constraint Micro Pass Rate": 3 / 6,  # budget + transportation per query
        "Hard Constraint Macro Pass Rate": 1 / 3,
        "Final Pass Rate": 1 / 3,
    }


def test_hard_checks_judge_room_type_rules_and_transport(db):
    plan, acc, _ = _written_plan(db)
    q = {
        "org": "Detroit",
        "dest": "Norfolk",
        "days": 3,
        "visiting_city_number": 1,
        "people_number": 1,
        "budget": 1e9,
        "level": "hard",
        "local_constraint": {
            "house rule": None,
            "cuisine": ["Martian"],
            "room type": "shared room" if acc["room_type"] != "Shared room" else "private room",
            "transportation": "no self-driving",
        },
    }
    hard = evaluate_plan(q, plan, db)["hard"]
    assert hard["valid_cuisine"][0] is False
    assert hard["valid_room_type"][0] is False
    assert hard["valid_transportation"][0] is False
    assert hard["valid_cost"] == (True, None) and hard["valid_room_rule"] == (None, None)


def test_evaluate_needs_one_plan_per_query(db):
    with pytest.raises(ValueError, match="one plan per query"):
        evaluate([], [{"days": 3}], db)
