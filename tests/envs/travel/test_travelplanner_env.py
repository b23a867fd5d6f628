"""hiergym/TravelPlanner-v0: TravelPlanner's queries, tools, plan format and evaluation as an env."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall
from hiergym.envs.travel.travelplanner import evaluate_plan
from hiergym.envs.travel.travelplanner import tasks as tp_tasks
from hiergym.envs.travel.travelplanner import tools as tp_tools
from hiergym.envs.travel.travelplanner.env import TravelPlannerEnv
from hiergym.envs.travel.travelplanner.mutants import mutants
from hiergym.envs.travel.travelplanner.plan import parse_plan
from hiergym.envs.travel.travelplanner.queries import generate
from hiergym.envs.travel.travelplanner.tasks import (
    DATA_DIR_VARIABLE,
    default_queries,
    read_queries,
)
from hiergym.errors import SandboxError, TaskError, ToolError
from hiergym.testing import oracle_actions, play

ENV_ID = "hiergym/TravelPlanner-v0"
DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
pytestmark = pytest.mark.skipif(
    not (DATA / "distance.csv").is_file(), reason=f"TravelPlanner's data is not at {DATA}"
)


@pytest.fixture(scope="module")
def base():
    env = gym.make(ENV_ID, split="train", difficulty="hard")
    yield env.unwrapped
    env.close()


def _solve(base, seed):
    base.reset(seed=seed)
    return base.task, oracle_actions(base)


def _finish(base, task, calls, plan):
    actions = [*calls[:-1], ToolCall("submit", {"plan": plan})]
    return play(base, actions, options={"task": task, "max_turns": len(actions)})


def _level(verdict, name):
    return next(lv for lv in verdict["levels"] if lv["name"] == name)


def _travelplanner_passes(verdict, *levels):
    """Every TravelPlanner check the levels ran (their metrics) passed or did not apply, while
    the levels themselves, standing on a failed grounding, are not applicable (score 0)."""
    for name in levels or ("commonsense", "hard"):
        level = _level(verdict, name)
        assert level["score"] == 0.0 and level["findings"][0]["code"] == "not_applicable", level
        if not all(ok is None or ok for ok in level["metrics"].values()):
            return False
    return True


def test_make_without_the_data_fails_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setenv(DATA_DIR_VARIABLE, str(tmp_path / "nowhere"))
    assert TravelPlannerEnv.missing_data() == "needs data: hiergym data import travelplanner DIR"
    with pytest.raises(
        SandboxError,
        match="no TravelPlanner data directory at .*nowhere.*hiergym data import travelplanner DIR.*data_dir=",
    ):
        gym.make(ENV_ID)
    with pytest.raises(SandboxError, match="lacks clean_accommodations_2022.csv"):
        gym.make(ENV_ID, data_dir=tmp_path)


def test_an_import_is_registered_so_make_needs_no_argument(tmp_path, monkeypatch, capsys):
    """`hiergym data import travelplanner DIR` records the import under HIERGYM_HOME; until then
    `hiergym list` says what is needed, after it the env makes with no argument, also once the
    source folder has moved (its database was built)."""
    from hiergym.cli import main as cli

    home = tmp_path / "home"
    monkeypatch.setenv("HIERGYM_HOME", str(home))
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    monkeypatch.setattr(tp_tasks, "_checkout_data_dir", lambda: None)  # as in an installed wheel
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    assert TravelPlannerEnv.missing_data() == "needs data: hiergym data import travelplanner DIR"
    assert cli(["list"]) == 0
    assert "needs data: hiergym data import travelplanner DIR" in capsys.readouterr().out
    with pytest.raises(SandboxError, match="no TravelPlanner data imported; run `hiergym data"):
        gym.make(ENV_ID)
    source = tmp_path / "tp"
    source.mkdir()
    for f in DATA.iterdir():
        (source / f.name).symlink_to(f)
    assert cli(["data", "import", "travelplanner", str(source)]) == 0
    assert TravelPlannerEnv.missing_data() is None
    capsys.readouterr()
    assert cli(["list"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "TravelPlanner" in line)
    assert " ok " in row
    env = gym.make(ENV_ID, split="train", difficulty="easy")
    assert env.unwrapped.data_dir == source.resolve()
    env.close()
    moved = tmp_path / "moved"
    source.rename(moved)
    assert TravelPlannerEnv.missing_data() is None
    env = gym.make(ENV_ID, split="train", difficulty="easy")
    obs, _ = env.reset(seed=0)
    assert obs and env.unwrapped.database is not None
    env.close()


def test_an_installed_wheel_never_looks_for_a_shared_folder(tmp_path, monkeypatch):
    """Outside a source checkout (no pyproject.toml beside the package folders) the default data
    folder is only the variable or the recorded import."""
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path))
    monkeypatch.delenv(DATA_DIR_VARIABLE, raising=False)
    fake = tmp_path / "site-packages" / "hiergym" / "envs" / "travel" / "travelplanner"
    fake.mkdir(parents=True)
    (tmp_path / "shared" / "data" / "travelplanner").mkdir(parents=True)
    monkeypatch.setattr(tp_tasks, "__file__", str(fake / "tasks.py"))
    assert tp_tasks._checkout_data_dir() is None and tp_tasks.default_data_dir() is None


def test_every_shipped_query_is_solved_by_the_oracle_through_the_tools(base):
    tasks = read_queries(default_queries(), base.db)
    cells = {(t.split, t.difficulty) for t in tasks}
    assert len(tasks) == 48 and len(cells) == 9
    assert {t.days for t in tasks} == {3, 5, 7}
    for task in tasks:
        base.reset(seed=0, options={"task": task})
        calls = oracle_actions(base)
        assert len(calls) <= base.max_turns
        out = play(base, calls, options={"task": task})
        assert out.verdict["reward"] == 1.0, (task.task_id, out.verdict)


def test_shipped_queries_are_what_the_generator_makes(base):
    """Regenerating from TravelPlanner's data reproduces the file (and re-proves every query)."""
    made = generate(base.sandbox, base.db)
    shipped = [json.loads(line) for line in default_queries().read_text().splitlines()]
    assert [t.to_record() for t in made] == shipped


MUTANT_CODES = {
    "no_submit": {"no_submission"},
    "malformed_json": {"no_submission"},
    "missing_day": {"schema"},
    "repeated_restaurant": {"is_valid_restaurants"},
    "invented_attraction": {"ungrounded"},  # grounding comes first: no search showed it
    "conflicting_transport": {"is_valid_transportation"},
    "accommodation_never_looked_up": {"ungrounded"},
    "restaurant_in_other_city": {"ungrounded", "wrong_city"},
    "one_dollar_over_budget": {"valid_cost"},
    "room_type_violated": {"valid_room_type"},
}


@pytest.mark.parametrize("seed", [0, 5])
def test_each_mutant_fails_at_its_level_for_the_reason_it_targets(base, seed):
    task, calls = _solve(base, seed)
    for m in mutants():
        mtask, actions = m.apply(task, list(calls), base.sandbox.db)
        out = play(base, actions, options={"task": mtask, "max_turns": len(actions)})
        codes = {f["code"] for f in _level(out.verdict, m.level)["findings"]}
        assert out.verdict["first_failed"] == m.level, (m.name, out.verdict)
        assert MUTANT_CODES[m.name] <= codes, (m.name, codes)


def test_levels_agree_with_travelplanners_evaluation(base):
    """On the oracle's plan and on plans that break commonsense or hard checks, the levels'
    per-check results are what TravelPlanner's evaluation answers."""
    task, calls = _solve(base, 2)
    compared = 0
    considered = [m for m in mutants() if m.level in ("commonsense", "hard")]
    assert len(considered) >= 4
    for m in [None, *considered]:
        mtask, actions = (task, calls) if m is None else m.apply(task, list(calls), base.sandbox.db)
        out = play(base, actions, options={"task": mtask, "max_turns": len(actions)})
        report = evaluate_plan(mtask.record, actions[-1].arguments["plan"], base.db)
        commonsense = _level(out.verdict, "commonsense")["metrics"]
        assert commonsense == {n: ok for n, (ok, _) in report["commonsense"].items()}, m
        hard = _level(out.verdict, "hard")
        if report["hard"] is None:  # TravelPlanner skips them; so does the level
            assert hard.get("skipped") and not hard["passed"]
        else:
            assert hard["metrics"] == {n: ok for n, (ok, _) in report["hard"].items()}, m
        compared += not all(commonsense.values()) or not hard["passed"]
    assert compared == len(considered)  # every mutant broke something the evaluation also saw


def test_grounding_catches_what_travelplanners_checks_let_through(base):
    """TravelPlanner reads only the attractions before the last ';', so an invented last
    attraction passes its checks; the grounding level names it."""
    task, calls = _solve(base, 1)
    plan = copy.deepcopy(calls[-1].arguments["plan"])
    day = next(d for d in plan if not d["current_city"].startswith("from "))
    day["attraction"] += f"Museum of Imaginary Things, {day['current_city']}"
    out = _finish(base, task, calls, plan)
    assert _travelplanner_passes(out.verdict)  # TravelPlanner's own checks let it through
    grounding = _level(out.verdict, "grounding")
    assert out.verdict["first_failed"] == "grounding"
    assert [f["code"] for f in grounding["findings"]] == ["ungrounded"]
    assert "Museum of Imaginary Things" in grounding["findings"][0]["message"]


def test_grounding_reports_stated_route_details_without_failing_on_them(base):
    """A drive's stated cost, duration and distance are strings TravelPlanner never reads (it
    costs the leg from the database): a difference is reported, not scored."""
    task, calls = _solve(base, 1)
    plan = copy.deepcopy(calls[-1].arguments["plan"])
    leg = plan[0]["transportation"]
    head, cost = leg.rsplit("cost: ", 1)
    plan[0]["transportation"] = f"{head}cost: {int(cost) + 7}"
    out = _finish(base, task, calls, plan)
    grounding = _level(out.verdict, "grounding")
    [finding] = grounding["findings"]
    assert finding["code"] == "detail_differs" and "cost" in finding["message"]
    assert isinstance(finding["turn"], int) and grounding["passed"]
    assert out.verdict["reward"] == 1.0


def test_gold_style_plans_replay_to_full_reward(base):
    """TravelPlanner's annotators write multi-city legs "from A(State) to B(State)" and copy
    durations and distances from live look-ups; a plan written so, by an agent that fetched
    every item, scores 1.0. The city pair of a leg is still grounded."""
    task = next(t for t in base.tasks if t.visiting_city_number > 1)
    base.reset(seed=0, options={"task": task})
    calls = oracle_actions(base)
    plan = copy.deepcopy(calls[-1].arguments["plan"])
    state = lambda c: f"{c}({base.db.city_state[c]})"  # noqa: E731
    for day in plan:
        if day["current_city"].startswith("from "):
            a, b = day["current_city"][5:].split(" to ")
            day["current_city"] = f"from {state(a)} to {state(b)}"
            head, _, rest = day["transportation"].partition(", duration: ")
            mode = head.split(",")[0]
            cost = rest.rsplit("cost: ", 1)[1]
            day["transportation"] = (
                f"{mode}, from {state(a)} to {state(b)}, duration: 1 day 1 hour, "
                f"distance: 1,234 km, cost: {cost}"
            )
    out = _finish(base, task, calls, plan)
    assert out.verdict["reward"] == 1.0, out.verdict
    grounding = _level(out.verdict, "grounding")
    assert {f["code"] for f in grounding["findings"]} == {"detail_differs"}
    wrong = copy.deepcopy(plan)
    leg = wrong[0]["transportation"]
    other = next(c for c in base.db.city_state if c not in leg and c != task.org)
    wrong[0]["transportation"] = leg.replace(f"from {state(task.org)} to ", f"from {other} to ")
    out = _finish(base, task, calls, wrong)
    assert out.verdict["first_failed"] == "grounding"
    assert "ungrounded" in {f["code"] for f in _level(out.verdict, "grounding")["findings"]}


def test_a_plan_to_another_city_fails_grounding(base):
    """For a one-city trip TravelPlanner never checks that the city is the destination."""
    trip = next(t for t in base.tasks if t.visiting_city_number == 1)
    base.reset(seed=0, options={"task": trip})
    calls = oracle_actions(base)
    elsewhere = replace(trip, dest=next(c for c in ("Austin", "Boston") if c != trip.dest))
    out = play(base, calls, options={"task": elsewhere})
    assert _travelplanner_passes(out.verdict, "commonsense")
    assert out.verdict["first_failed"] == "grounding"
    assert {f["code"] for f in _level(out.verdict, "grounding")["findings"]} == {"off_request"}


def test_plan_shape_errors_name_their_path():
    plan, errors = parse_plan(
        [{"current_city": "Boston", "breakfast": 3, "extra": "x"}, "day two"], days=3
    )
    text = " | ".join(errors)
    assert plan is None
    for part in [
        "the plan has 2 entries; the trip has 3 days",
        "plan[0].transportation must be a string",
        "plan[0].breakfast must be a string",
        "plan[0] has unknown fields ['extra']",
        "plan[1] must be an object",
    ]:
        assert part in text, part
    assert parse_plan({"days": []}, 3)[0] is None


def test_tools_answer_in_pages_and_refuse_bad_input_clearly(base):
    env = base.sandbox
    first = tp_tools.search_restaurants.fn(env, city="myrtle beach")
    assert first["city"] == "Myrtle Beach" and len(first["results"]) == 20
    costs = [r["average_cost"] for r in first["results"]]
    assert costs == sorted(costs) and first["total"] > 20
    second = tp_tools.search_restaurants.fn(env, city="Myrtle Beach", page=2)
    assert not {r["name"] for r in second["results"]} & {r["name"] for r in first["results"]}
    route = tp_tools.get_distance.fn(env, origin="Detroit", destination="Norfolk")
    assert route["distance"] == "1,144 km" and route["cost"] == {"self-driving": 57, "taxi": 1144}
    assert "Austin" in tp_tools.search_cities.fn(env, state="texas")["cities"]
    bad = [
        (tp_tools.search_accommodations, {"city": "Myrtle Bech"}, "did you mean 'Myrtle Beach'"),
        (tp_tools.search_cities, {"state": "Texsa"}, "did you mean 'Texas'"),
        (tp_tools.get_distance, {"origin": "Detroit", "destination": "Detroit"}, "same city"),
        (tp_tools.get_distance, {"origin": "Detroit", "destination": "X", "mode": "walk"}, "mode"),
        (tp_tools.search_attractions, {"city": "Boston", "page": 99}, "page must be"),
        (
            tp_tools.search_flights,
            {"origin": "Detroit", "destination": "Norfolk", "date": "2022-03-01"},
            "no flight data was imported",
        ),
    ]
    for tool, arguments, message in bad:
        with pytest.raises(ToolError, match=message):
            tool.fn(env, **arguments)


def test_bad_actions_are_observations_and_the_episode_goes_on(base):
    base.reset(seed=0)
    for action in [
        "{not json",
        '{"name": "search_hotels", "arguments": {"city": "Austin"}}',
        '{"name": "search_restaurants", "arguments": {"city": ["Austin"]}}',
        json.dumps({"name": "search_restaurants", "arguments": {"city": "x" * 5000}}),
        json.dumps(
            {
                "name": "search_restaurants",
                "arguments": {"city": "Austin'; DROP TABLE restaurants; --"},
            }
        ),
        '{"name": "submit", "arguments": {"plan": "a great trip"}}',
    ]:
        obs, reward, terminated, truncated, _ = base.step(action)
        assert obs.startswith("error: ") and not terminated and not truncated and reward == 0.0
    assert base.sandbox.db.execute("SELECT count(*) FROM restaurants").fetchone()[0] == 9551


def test_queries_from_a_file_map_level_to_difficulty_and_hash_splits(base, tmp_path):
    record = {  # TravelPlanner's Hugging Face form: date and local_constraint as Python literals
        "org": "Detroit",
        "dest": "Norfolk",
        "days": 3,
        "visiting_city_number": 1,
        "date": "['2022-03-16', '2022-03-17', '2022-03-18']",
        "people_number": 2,
        "local_constraint": "{'house rule': None, 'cuisine': ['Italian'], 'room type': None, 'transportation': 'no flight'}",
        "budget": 3000,
        "query": "A trip from Detroit to Norfolk.",
        "level": "medium",
    }
    path = tmp_path / "mine.jsonl"
    path.write_text(json.dumps(record) + "\n")
    [task] = read_queries(path, base.db)
    assert (task.task_id, task.difficulty, task.cuisines) == ("mine:1", "medium", ("Italian",))
    assert task.transportation == "no flight" and task.dates[-1] == "2022-03-18"
    env = gym.make(ENV_ID, queries=path, split=task.split, difficulty="medium")
    obs, info = env.reset(seed=0)
    assert obs.startswith("A trip from Detroit to Norfolk.") and info["task_id"] == "mine:1"
    out = play(env, oracle_actions(env), seed=0)
    assert out.verdict["reward"] == 1.0, out.verdict
    other = next(s for s in ("train", "dev", "test") if s != task.split)
    with pytest.raises(TaskError, match=f"no medium query in split '{other}'"):
        gym.make(ENV_ID, queries=path, split=other, difficulty="medium")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"org": "Atlantis"}, "org 'Atlantis' is not a city"),
        ({"dest": "Texsa", "visiting_city_number": 2, "days": 5}, "did you mean 'Texas'"),
        ({"date": ["2022-03-16"]}, "date must list 3 dates"),
        ({"level": "expert"}, "level must be one of"),
        ({"local_constraint": {"room type": "suite"}}, "room type"),
        ({"budget": "cheap"}, "budget must be a positive number"),
    ],
)
def test_a_bad_query_record_is_a_task_error_naming_its_line(base, tmp_path, change, message):
    good = json.loads(default_queries().read_text().splitlines()[0])
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps({**good, **change}) + "\n")
    with pytest.raises(TaskError, match=f"line 2: .*{message}"):
        read_queries(path, base.db)


def test_imported_flights_are_searched_and_grounded(tmp_path):
    for f in DATA.iterdir():
        (tmp_path / f.name).symlink_to(f)
    shipped = json.loads(default_queries().read_text().splitlines()[0])
    org, dest, dates = shipped["org"], shipped["dest"], shipped["date"]
    (tmp_path / "clean_Flights_2022.csv").write_text(
        "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,DestCityName,Distance\n"
        f"F0000001,1,08:00,10:30,2 hours 30 minutes,{dates[0]},{org},{dest},400.0\n"
        f"F0000002,1,18:00,20:30,2 hours 30 minutes,{dates[-1]},{dest},{org},400.0\n"
    )
    queries = tmp_path / "one.jsonl"
    queries.write_text(json.dumps(shipped) + "\n")
    from hiergym.envs.travel.tasks import split_of

    env = gym.make(
        ENV_ID, data_dir=tmp_path, queries=queries, split=split_of(org, dest), difficulty="easy"
    )
    env.reset(seed=0)
    calls = oracle_actions(env)
    plan = calls[-1].arguments["plan"]
    assert plan[0]["transportation"].startswith("Flight Number: F0000001")  # $1 beats driving
    out = play(env, calls, seed=0)
    assert out.verdict["reward"] == 1.0, out.verdict
    shifted = copy.deepcopy(plan)
    shifted[0]["transportation"] = shifted[0]["transportation"].replace("08:00", "08:30")
    out = _finish(env.unwrapped, env.unwrapped.task, calls, shifted)
    [finding] = _level(out.verdict, "grounding")["findings"]
    assert finding["code"] == "detail_differs" and "depart" in finding["message"]
    assert out.verdict["reward"] == 1.0  # a flight's times are not what TravelPlanner evaluates
    renumbered = copy.deepcopy(plan)
    renumbered[0]["transportation"] = plan[0]["transportation"].replace("F0000001", "F0000002")
    out = _finish(env.unwrapped, env.unwrapped.task, calls, renumbered)
    assert out.verdict["first_failed"] == "grounding"  # F0000002 flies the other way, another day
    env.close()


def test_the_oracle_flies_where_no_road_goes_and_says_why_a_query_has_no_plan(base, tmp_path):
    for f in DATA.iterdir():
        (tmp_path / f.name).symlink_to(f)
    shipped = json.loads(default_queries().read_text().splitlines()[0])
    dest = shipped["dest"]
    org = next(
        c
        for c in sorted(base.db.city_state)
        if c != dest
        and base.db.routes.get((c, dest)) is None
        and base.db.routes.get((dest, c)) is None
    )
    dates = shipped["date"]
    (tmp_path / "clean_Flights_2022.csv").write_text(
        "Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,DestCityName,Distance\n"
        f"F0000001,300,08:00,10:30,2 hours 30 minutes,{dates[0]},{org},{dest},900.0\n"
        f"F0000002,300,18:00,20:30,2 hours 30 minutes,{dates[-1]},{dest},{org},900.0\n"
    )
    record = {**shipped, "org": org, "budget": 100_000}
    queries = tmp_path / "fly.jsonl"
    impossible = {
        **record,
        "level": "medium",
        "local_constraint": {
            "cuisine": ["Martian"],
        },
    }
    queries.write_text(json.dumps(record) + "\n" + json.dumps(impossible) + "\n")
    from hiergym.envs.travel.tasks import split_of
    from hiergym.envs.travel.travelplanner.oracle import Unsolvable, solve

    env = gym.make(
        ENV_ID, data_dir=tmp_path, queries=queries, split=split_of(org, dest), difficulty="easy"
    )
    env.reset(seed=0)
    calls = oracle_actions(env)
    plan = calls[-1].arguments["plan"]
    assert plan[0]["transportation"].startswith("Flight Number: F0000001")
    assert plan[-1]["transportation"].startswith("Flight Number: F0000002")
    assert play(env, calls, seed=0).verdict["reward"] == 1.0
    [task] = [t for t in read_queries(queries, env.unwrapped.db) if t.difficulty == "medium"]
    found = solve(env.unwrapped.sandbox, task)
    assert isinstance(found, Unsolvable) and "cuisines Martian" in found.reason
    over = replace(env.unwrapped.task, budget=100.0)
    found = solve(env.unwrapped.sandbox, over)
    assert isinstance(found, Unsolvable) and "over the budget $100" in found.reason
    with pytest.raises(RuntimeError, match="cannot solve .*over the budget"):
        env.unwrapped.make_oracle().plan(over)
    env.close()


def test_any_well_shaped_plan_gets_a_verdict_never_a_verifier_error(base):
    """TravelPlanner's checks parse free text; on a plan of the right shape they must judge,
    never crash (a crash would be a VerifierError out of step())."""
    import random

    from hiergym.envs.travel.travelplanner.plan import FIELDS

    task, calls = _solve(base, 4)
    rng = random.Random("fuzz")
    pieces = ["from ", " to ", ",", ";", "(", ")", "-", "", " ", "Flight Number: ", "Taxi",
              "Self-driving", "cost: ", "duration: ", "distance: 1,2 km", task.org, task.dest,
              "Departure Time: 25:99", "\u00e9"]  # fmt: skip
    for _ in range(300):
        plan = copy.deepcopy(calls[-1].arguments["plan"])
        for _ in range(rng.randint(1, 6)):
            day, key = rng.choice(plan), rng.choice(FIELDS)
            junk = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
            day[key] = junk if rng.random() < 0.7 else day[key] + junk
        out = _finish(base, task, calls, plan)
        assert 0.0 <= out.verdict["reward"] <= 1.0


def test_an_empty_plan_grounds_nothing(base):
    """A plan that names nothing ("-" in every field) used to score 1.0 at grounding (0 items,
    all grounded) and full marks for the levels after it under ``weighted``."""
    from hiergym.testing import AGGREGATE_NAMES, normalised_reward

    task, calls = _solve(base, 0)
    plan = copy.deepcopy(calls[-1].arguments["plan"])
    for unit in plan:
        for key in unit:
            if key not in ("days", "current_city"):
                unit[key] = "-"
    out = _finish(base, task, calls, plan)
    grounding = _level(out.verdict, "grounding")
    assert grounding["score"] == 0.0 and not grounding["passed"]
    assert [f["code"] for f in grounding["findings"]] == ["nothing_to_ground"]
    levels = base.verdict.levels
    assert max(normalised_reward(a, levels, task) for a in AGGREGATE_NAMES) <= 0.25 + 1e-9


def test_travelplanner_hack_matrix_holds_on_the_outcome_reward():
    """A memorised plan (no searches) and another query's plan earn at most 0.4 under every
    aggregator: commonsense and hard only count for a plan the agent was shown."""
    from hiergym.testing import run_hack_matrix

    rows = run_hack_matrix(ENV_ID, seeds=(0, 1))
    bad = [
        (r.name, r.seed, r.breaches(process=False), r.error)
        for r in rows
        if r.breaches(process=False)
    ]
    assert not bad, bad
