from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall
from hiergym.envs.travel import tools
from hiergym.envs.travel.itinerary import parse_itinerary, trip_cost
from hiergym.envs.travel.mutants import mutants
from hiergym.envs.travel.tasks import TravelTask
from hiergym.envs.travel.world import world_of
from hiergym.errors import ToolError
from hiergym.testing import oracle_actions, play

ENV_ID = "hiergym/Travel-v0"


@pytest.fixture(scope="module")
def base():
    from hiergym.envs.travel import register

    register()
    env = gym.make(ENV_ID, split="test", difficulty="hard")
    yield env.unwrapped
    env.close()


@pytest.fixture(scope="module")
def state(base):
    return SimpleNamespace(db=base.sandbox.db, memory={})


def _solve(base, seed):
    base.reset(seed=seed)
    calls = oracle_actions(base)
    return base.task, calls


def test_sandbox_size_and_shape(base):
    db = base.sandbox.db
    count = lambda sql: db.execute(sql).fetchone()[0]  # noqa: E731
    assert count("SELECT count(*) FROM cities") >= 30
    assert count("SELECT count(DISTINCT date) FROM flights") >= 60
    assert count("SELECT min(n) FROM (SELECT count(*) n FROM hotels GROUP BY city)") >= 40
    assert count("SELECT min(n) FROM (SELECT count(*) n FROM attractions GROUP BY city)") >= 30
    assert count("SELECT min(n) FROM (SELECT count(*) n FROM restaurants GROUP BY city)") >= 50
    assert count("SELECT count(*) FROM trains") > 1000
    assert count("SELECT count(*) FROM flights WHERE seats = 0") > 0  # sold-out flights exist


def test_flight_times_follow_great_circle_distance(base):
    rows = [
        tuple(r)
        for r in base.sandbox.db.execute(
            "SELECT km, arr_min - dep_min FROM flights WHERE date = '2024-03-10'"
        )
    ]
    # 35 minutes on the ground plus the distance at 750 km/h, rounded up to 5 minutes.
    for km, minutes in rows:
        assert 0 <= minutes - (35 + km / 750 * 60) <= 5 + 1e-6, (km, minutes)
    assert max(rows)[1] > min(rows)[1] + 120


def test_searches_are_paged_sorted_and_deterministic(state):
    first = tools.search_hotels.fn(state, city="chicago", sort="price")
    again = tools.search_hotels.fn(state, city="Chicago", sort="price")
    assert first == again and first["city"] == "Chicago" and len(first["results"]) == 10
    prices = [h["price"] for h in first["results"]]
    assert prices == sorted(prices) and first["total"] >= 40
    page2 = tools.search_hotels.fn(state, city="Chicago", sort="price", page=2)
    assert not {h["id"] for h in page2["results"]} & {h["id"] for h in first["results"]}
    italian = tools.search_restaurants.fn(state, city="Boston", cuisine="italian")
    assert all("Italian" in r["cuisines"].split(", ") for r in italian["results"])
    flights = tools.search_flights.fn(
        state, origin="Boston", destination="Chicago", date="2024-03-05"
    )
    departs = [f["depart"] for f in flights["results"]]
    assert departs == sorted(departs) and flights["results"]


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda s: tools.search_hotels.fn(s, city="Chicgo"), "did you mean 'Chicago'"),
        (
            lambda s: tools.search_flights.fn(
                s, origin="Boston", destination="Chicago", date="5/3/24"
            ),
            "YYYY-MM-DD",
        ),
        (
            lambda s: tools.search_flights.fn(
                s, origin="Boston", destination="Chicago", date="2025-01-01"
            ),
            "timetables cover",
        ),
        (lambda s: tools.search_hotels.fn(s, city="Boston", page=99), "page must be"),
        (
            lambda s: tools.search_hotels.fn(s, city="Boston", room_type="suite"),
            "room_type must be",
        ),
        (lambda s: tools.search_restaurants.fn(s, city="Boston", cuisine="Martian"), "no cuisine"),
        (
            lambda s: tools.get_distance.fn(s, origins=["NOWHERE"], destinations=["CENTER-BOS"]),
            "no place",
        ),
        (
            lambda s: tools.get_distance.fn(
                s,
                origins=[f"H-BOS-{i:03d}" for i in range(1, 9)],
                destinations=[f"R-BOS-{i:03d}" for i in range(1, 9)],
            ),
            "at most 48",
        ),
    ],
)
def test_bad_tool_input_is_a_clear_tool_error(state, call, message):
    with pytest.raises(ToolError, match=message):
        call(state)


def test_bad_actions_are_observations_and_the_episode_goes_on(base):
    base.reset(seed=0)
    for action in [
        "{not json",
        '{"name": "serch_hotels", "arguments": {}}',
        '{"name": "search_hotels", "arguments": {"city": 7}}',
        json.dumps({"name": "search_hotels", "arguments": {"city": "x" * 5000}}),
        json.dumps(
            {"name": "search_hotels", "arguments": {"city": "Boston'; DROP TABLE hotels; --"}}
        ),
    ]:
        obs, reward, terminated, truncated, _ = base.step(action)
        assert obs.startswith("error: ") and not terminated and not truncated and reward == 0.0
    assert base.sandbox.db.execute("SELECT count(*) FROM hotels").fetchone()[0] > 0


def test_travel_time_model(state):
    out = tools.get_distance.fn(
        state,
        origins=["CENTER-BOS"],
        destinations=["AIRPORT-BOS", "CENTER-JFK"],
    )
    near, far = out["pairs"]
    assert near["taxi"]["minutes"] < far["taxi"]["minutes"] and far["walk"] is None
    assert far["drive"]["cost"] < far["taxi"]["cost"]


def test_oracle_reaches_one_on_every_split_and_difficulty(base):
    for split in ("train", "dev", "test"):
        for difficulty in ("easy", "medium", "hard"):
            env = gym.make(ENV_ID, split=split, difficulty=difficulty)
            env.reset(seed=5)
            out = play(env, oracle_actions(env), seed=5)
            assert out.verdict["reward"] == 1.0, (split, difficulty, out.verdict)
            env.close()


MUTANT_CODES = {
    "flight_time_shifted_30_min": {"mismatch"},
    "restaurant_in_other_city": {"wrong_city"},
    "repeated_restaurant": {"repeated_restaurant"},
    "one_dollar_over_budget": {"over_budget"},
    "hotel_never_looked_up": {"ungrounded"},
    "missing_night": {"no_bed"},
    "overlapping_activities": {"overlap"},
    "attraction_after_closing": {"closed"},
    "invented_flight_number": {"ungrounded"},
    "no_submit": {"no_submission"},
    "malformed_json": {"no_submission"},
}


@pytest.mark.parametrize("seed", [0, 3])
def test_each_mutant_fails_at_its_level_for_the_reason_it_targets(base, seed):
    task, calls = _solve(base, seed)
    for m in mutants():
        mtask, actions = m.apply(task, list(calls), base.sandbox.db)
        out = play(base, actions, seed=seed, options={"task": mtask, "max_turns": len(actions)})
        level = next(lv for lv in out.verdict["levels"] if lv["name"] == m.level)
        codes = {f["code"] for f in level["findings"]}
        assert out.verdict["first_failed"] == m.level, (m.name, out.verdict)
        assert MUTANT_CODES[m.name] <= codes, (m.name, codes)


def test_schema_errors_name_their_path():
    itinerary, errors = parse_itinerary(
        {
            "days": [
                {
                    "day": 1,
                    "date": "2024-03-05",
                    "activities": [
                        {"type": "flight", "from": "Boston", "start": "25:00", "cost": -1}
                    ],
                    "accommodation": {"place": "H-BOS-001"},
                }
            ],
            "total_cost": "a lot",
        }
    )
    assert itinerary is None
    text = " | ".join(errors)
    for part in [
        "total_cost must be a number",
        "days[0].activities[0].start must be HH:MM",
        "days[0].activities[0].cost must be a number",
        "days[0].activities[0].to must be",
        "days[0].activities[0].number",
        "days[0].accommodation must be null or",
    ]:
        assert part in text, part
    assert parse_itinerary("[]")[0] is None


def test_group_cost_uses_travelplanners_multipliers():
    itinerary, _ = parse_itinerary(
        {
            "days": [
                {
                    "day": 1,
                    "date": "2024-03-05",
                    "activities": [
                        {
                            "type": "transfer",
                            "mode": "taxi",
                            "from": "A",
                            "to": "B",
                            "start": "08:00",
                            "end": "08:30",
                            "cost": 10,
                        },
                        {
                            "type": "transfer",
                            "mode": "drive",
                            "from": "B",
                            "to": "C",
                            "start": "09:00",
                            "end": "09:30",
                            "cost": 10,
                        },
                        {
                            "type": "flight",
                            "number": "X1",
                            "from": "a",
                            "to": "b",
                            "start": "10:00",
                            "end": "11:00",
                            "cost": 100,
                        },
                        {
                            "type": "meal",
                            "meal": "lunch",
                            "place": "R",
                            "start": "12:00",
                            "end": "13:00",
                            "cost": 20,
                        },
                    ],
                    "accommodation": {"place": "H", "cost": 100},
                }
            ],
            "total_cost": 0,
        }
    )
    # 6 people: 2 taxis, 2 cars, 6 tickets, 6 meals, 3 rooms at occupancy 2.
    assert trip_cost(itinerary, 6, {"H": 2}) == 2 * 10 + 2 * 10 + 6 * 100 + 6 * 20 + 3 * 100


def test_grounding_cites_the_turn_and_catches_a_wrong_price(base):
    task, calls = _solve(base, 1)
    itinerary = json.loads(json.dumps(calls[-1].arguments["itinerary"]))
    meal = next(a for d in itinerary["days"] for a in d["activities"] if a["type"] == "meal")
    meal["cost"] += 1
    actions = [*calls[:-1], ToolCall("submit", {"itinerary": itinerary})]
    out = play(base, actions, seed=1, options={"task": task, "max_turns": len(actions)})
    grounding = next(lv for lv in out.verdict["levels"] if lv["name"] == "grounding")
    assert not grounding["passed"]
    [finding] = grounding["findings"]
    assert finding["code"] == "mismatch" and isinstance(finding["turn"], int)


def test_constraints_judge_room_type_house_rule_and_cuisine(base):
    task, calls = _solve(base, 2)
    world = world_of(base.sandbox.db)
    stays = {
        d["accommodation"]["place"]
        for d in calls[-1].arguments["itinerary"]["days"]
        if d["accommodation"]
    }
    room = world.hotels[next(iter(stays))]["room_type"]
    wrong_room = {
        "Entire home/apt": "shared room",
        "Private room": "entire room",
        "Shared room": "not shared room",
    }[room]
    strict = TravelTask(**{**task.__dict__, "room_type": wrong_room, "cuisines": ("Martian",)})
    out = play(base, calls, seed=2, options={"task": strict, "max_turns": len(calls)})
    level = next(lv for lv in out.verdict["levels"] if lv["name"] == "constraints")
    assert {f["code"] for f in level["findings"]} == {"room_type", "cuisine"}
    assert out.verdict["first_failed"] == "constraints"


def test_process_reward_penalises_off_trip_cities():
    env = gym.make(ENV_ID, split="dev", difficulty="easy", process_reward=True)
    env.reset(seed=0)
    task = env.unwrapped.task
    far = next(
        c for c in ("Seattle", "Miami", "Boston") if c not in (task.origin, task.destination)
    )
    _, _, _, _, info = env.step(json.dumps({"name": "search_hotels", "arguments": {"city": far}}))
    assert info["process"]["off_trip_city"] == -1.0
    _, _, _, _, info = env.step(
        json.dumps({"name": "search_hotels", "arguments": {"city": task.origin}})
    )
    assert info["process"]["off_trip_city"] == 0.0
    env.close()


def test_task_round_trips_through_json(base):
    task = base.tasks.tasks[0]
    assert TravelTask.from_json(task.to_json()) == task


def test_same_seed_same_task_tools_and_reward_across_processes():
    script = (
        "import json, gymnasium as gym, hiergym\n"
        "from hiergym.envs.travel import register\n"
        "register()\n"
        "from hiergym.testing import oracle_actions, play\n"
        "env = gym.make('hiergym/Travel-v0', split='dev', difficulty='hard')\n"
        "env.reset(seed=42)\n"
        "out = play(env, oracle_actions(env), seed=42)\n"
        "print(json.dumps([out.observations, out.rewards]))\n"
    )
    outputs = [
        subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, check=True
        ).stdout
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1] and len(json.loads(outputs[0])[0]) > 5


def test_fast_activity_parser_agrees_with_the_full_one(base):
    """The verifier's fast path either declines an activity or reads it exactly as the full
    parser (the one that names every error) does."""
    import random

    from hiergym.envs.travel.itinerary import _activity, _fast_activity

    _, calls = _solve(base, 0)
    acts = [a for d in calls[-1].arguments["itinerary"]["days"] for a in d["activities"]]
    rng = random.Random("fast-path")
    odd = [None, "", " 09:00 ", "9:00", "24:00", 12, 12.5, -1, True, float("nan"), ["x"],
           "h-ord-001", " R-ORD-002 ", "x" * 30, "lunch", "walk", "train"]  # fmt: skip
    declined = 0
    for _ in range(3000):
        raw = dict(rng.choice(acts))
        for _ in range(rng.randint(0, 2)):
            raw[rng.choice([*raw, "meal", "mode"])] = rng.choice(odd)
        fast, errors = _fast_activity(raw), []
        full = _activity(raw, "a", errors)
        assert fast is None or fast == full, (raw, fast, full)
        declined += fast is None and full is not None
    assert declined > 0  # the odd-but-valid inputs (" 09:00 ") do reach the full parser


def test_citations_ignore_results_returned_with_the_submission():
    from hiergym.envs.core import Trajectory, Turn
    from hiergym.envs.evidence import Citations
    from hiergym.envs.tools import ToolCall, ToolResult

    def result(hotel):
        return ToolResult("search_hotels", True, "...", {"results": [{"id": hotel}]})

    submit = ToolCall("submit", {})
    traj = Trajectory(None)
    traj.turns = [
        Turn(0, "", (ToolCall("search_hotels", {}),), (result("H1"),)),
        Turn(
            1,
            "",
            (ToolCall("search_hotels", {}), submit),
            (result("H2"), ToolResult("submit", True, "ok")),
        ),
    ]
    traj.submission = submit

    def told(r):
        return (
            ("hotel", {row["id"]: row for row in r.data["results"]})
            if r.name == "search_hotels"
            else None
        )

    citations = Citations(traj, told)
    assert citations.first("hotel", "H1") == (0, {"id": "H1"})
    assert citations.first("hotel", "H2") is None  # only arrived together with the submit
