"""Subgoal boundaries: the turn that first completes a domain's milestone is marked in ``info``
(with the subgoal's reward), once per episode, and never for work that misses it."""

from __future__ import annotations

import json

import gymnasium as gym

from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions


def _steps(env: gym.Env, actions: list) -> list[dict]:
    infos = []
    for action in actions:
        _, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
    return infos


def test_shopping_marks_the_turns_that_find_the_product_and_choose_the_variant() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    env.reset(seed=0)
    oracle = oracle_actions(env)
    names = [c.name for c in oracle]
    infos = _steps(env, oracle)
    reached = {i: info["subgoals"]["reached"] for i, info in enumerate(infos)}
    assert reached[names.index("view_product")] == ["found_product"]
    assert reached[names.index("select_options")] == ["chose_variant"]
    final = infos[-1]["subgoals"]
    assert final["total"] == 2
    assert final["done"] == {
        "found_product": names.index("view_product"),
        "chose_variant": names.index("select_options"),
    }
    assert infos[names.index("view_product")]["subgoal_rewards"] == {"found_product": 0.5}
    assert all(not info["subgoal_rewards"] for i, info in enumerate(infos) if not reached[i])

    # repeating the work reaches nothing again: each subgoal counts once per episode
    env.reset(seed=0, options={"task": base.task})
    view = next(c for c in oracle if c.name == "view_product")
    infos = _steps(env, [view, view, view])
    assert [i["subgoals"]["reached"] for i in infos] == [["found_product"], [], []]


def test_a_product_that_misses_the_ask_reaches_no_subgoal() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    env.reset(seed=0)
    task = base.task
    other = next(t for t in base.tasks if t.category != task.category)
    env.reset(seed=0, options={"task": task})
    infos = _steps(env, [ToolCall("view_product", {"product_id": other.target_id})])
    assert infos[0]["results"][0].ok
    assert infos[0]["subgoals"]["reached"] == [] and infos[0]["subgoals"]["done"] == {}


def test_a_fork_keeps_the_subgoals_already_reached() -> None:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    oracle = oracle_actions(env)
    upto = [c.name for c in oracle].index("view_product") + 1
    _steps(env, oracle[:upto])
    clone = env.unwrapped.fork()
    _, _, _, _, info = clone.step(oracle[upto - 1])
    assert info["subgoals"]["reached"] == []
    assert info["subgoals"]["done"] == {"found_product": upto - 1}


def test_rtl_marks_a_compiling_and_a_matching_design() -> None:
    env = gym.make("hiergym/RTL-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    code = oracle_actions(env)[-1].arguments["code"]
    module = code[code.index("module") :]
    header = module[: module.index(";") + 1]
    broken = header + "\nendmodule\n"  # the right ports, no logic: compiles, matches nothing
    infos = _steps(
        env,
        [
            ToolCall("compile", {"code": broken}),
            ToolCall("simulate", {"code": broken}),
            ToolCall("simulate", {"code": code}),
        ],
    )
    assert infos[0]["subgoals"]["reached"] == ["compiles"], infos[0]["results"][0].content[:300]
    assert infos[1]["subgoals"]["reached"] == []
    assert json.loads(infos[1]["results"][0].content)["ok"] is False
    assert infos[2]["subgoals"]["reached"] == ["matches_reference"]
    assert infos[2]["subgoal_rewards"] == {"matches_reference": 0.75}


def test_an_env_without_subgoals_adds_nothing_to_info() -> None:
    from hiergym.envs.travel.env import TravelEnv

    class Plain(TravelEnv):
        def subgoals(self) -> list:
            return []

    env = Plain(split="test", difficulty="easy")
    env.reset(seed=0)
    _, _, _, _, info = env.step(env.make_oracle().plan(env.task)[0])
    assert "subgoals" not in info and "subgoal_rewards" not in info


# ---- Travel: one subgoal per day of the drawn trip (built at reset) ---------------------------


def _travel(task_id: str) -> tuple[gym.Env, list]:
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="easy")
    task = env.unwrapped.tasks.get(task_id)
    env.reset(seed=0, options={"task": task})
    oracle = oracle_actions(env)
    env.reset(seed=0, options={"task": task})
    return env, oracle


def test_travel_subgoals_are_built_per_episode_one_per_day() -> None:
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="easy")
    base = env.unwrapped
    names = {}
    for task_id in ("travel-test-easy-0002", "travel-test-easy-0003"):  # 3 and 7 days
        env.reset(seed=0, options={"task": base.tasks.get(task_id)})
        _, _, _, _, info = env.step(ToolCall("search_hotels", {"city": base.task.destination}))
        names[task_id] = [g.name for g in base._subgoal_list]
        assert info["subgoals"]["total"] == base.task.days
    assert names["travel-test-easy-0002"] == ["day_1_planned", "day_2_planned", "day_3_planned"]
    assert names["travel-test-easy-0003"] == [f"day_{k}_planned" for k in range(1, 8)]


def test_travel_marks_each_day_at_the_oracles_travel_times_for_it() -> None:
    # Charlotte -> 2 cities in Florida, 5 days: the oracle asks one get_distance per day (hotel,
    # meals and rides of that day), after the searches that showed those places.
    env, oracle = _travel("travel-test-easy-0010")
    names = [c.name for c in oracle]
    distances = [i for i, n in enumerate(names) if n == "get_distance"]
    assert len(distances) == 5
    infos = _steps(env, oracle)
    assert infos[-1]["verdict"].reward == 1.0
    assert infos[-1]["subgoals"]["done"] == {
        f"day_{k + 1}_planned": turn for k, turn in enumerate(distances)
    }
    assert infos[distances[0]]["subgoal_rewards"] == {"day_1_planned": 0.2}
    assert all(not infos[i]["subgoals"]["reached"] for i in range(len(infos)) if i not in distances)


def test_travel_repeating_a_days_travel_times_plans_no_second_day() -> None:
    env, oracle = _travel("travel-test-easy-0010")
    first = [c.name for c in oracle].index("get_distance")
    infos = _steps(env, [*oracle[:first], oracle[first], oracle[first], oracle[first]])
    assert [i["subgoals"]["reached"] for i in infos[first:]] == [["day_1_planned"], [], []]


def test_travel_irrelevant_padding_and_stuffing_plan_nothing() -> None:
    env, oracle = _travel("travel-test-easy-0010")  # Charlotte -> Florida
    base = env.unwrapped
    distances = [c for c in oracle if c.name == "get_distance"]
    # keyword stuffing: every place id of the oracle's plan, never shown by a search
    places = sorted(
        {p for c in distances for k in ("origins", "destinations") for p in c.arguments[k]}
    )
    stuffed = [ToolCall("get_distance", {"origins": places[:6], "destinations": places[6:12]})]
    # padding: another trip's whole work (Dallas -> California), then the stuffed call again
    other = base.tasks.get("travel-test-easy-0000")
    env.reset(seed=0, options={"task": other})
    padding = oracle_actions(env)[:-1]
    env.reset(seed=0, options={"task": base.tasks.get("travel-test-easy-0010")})
    infos = _steps(env, [*stuffed, *padding, *stuffed])
    assert all(i["results"][0].ok for i in infos)
    assert all(i["subgoals"]["reached"] == [] for i in infos)
    # the right searches but distances that touch no bed of the trip plan nothing either
    searches = [c for c in oracle if c.name.startswith("search_")]
    restaurants = [p for p in places if p.startswith("R-")]
    infos = _steps(
        env,
        [
            *searches,
            ToolCall(
                "get_distance", {"origins": restaurants[:3], "destinations": restaurants[3:6]}
            ),
        ],
    )
    assert all(i["subgoals"]["reached"] == [] for i in infos)


def test_travel_a_hotel_that_breaks_the_room_or_house_rule_is_no_bed() -> None:
    from hiergym.envs.travel.rules import HOUSE_RULES, house_rules_of, room_type_ok

    env = gym.make("hiergym/Travel-v0", split="test", difficulty="hard")
    base = env.unwrapped
    task = next(t for t in base.tasks if t.house_rule and not t.is_region)
    env.reset(seed=0, options={"task": task})
    oracle_search = next(c for c in oracle_actions(env) if c.name == "search_hotels")
    env.reset(seed=0, options={"task": task})

    def ok(h: dict) -> bool:
        return HOUSE_RULES[task.house_rule] not in house_rules_of(
            h["house_rules"]
        ) and room_type_ok(task.room_type, h["room_type"])

    _, _, _, _, info = env.step(ToolCall("search_hotels", {"city": task.destination}))
    banned = next(h for h in info["results"][0].data["results"] if not ok(h))
    _, _, _, _, info = env.step(ToolCall("search_restaurants", {"city": task.destination}))
    meals = [r["id"] for r in info["results"][0].data["results"][:3]]  # a full day's meals
    _, _, _, _, info = env.step(
        ToolCall("get_distance", {"origins": [banned["id"]], "destinations": meals})
    )
    assert info["results"][0].ok and info["subgoals"]["reached"] == []
    _, _, _, _, info = env.step(oracle_search)
    fine = next(h for h in info["results"][0].data["results"] if ok(h))
    _, _, _, _, info = env.step(
        ToolCall("get_distance", {"origins": [fine["id"]], "destinations": meals})
    )
    assert info["subgoals"]["reached"] == ["day_1_planned"]


# ---- Geometry: one subgoal per measurement the task needs (the grounding level's rule) --------


def _geometry(family: str) -> tuple[gym.Env, list]:
    env = gym.make("hiergym/Geometry-v0", split="test", difficulty="hard")
    task = next(t for t in env.unwrapped.tasks if t.family == family)
    env.reset(seed=0, options={"task": task})
    oracle = oracle_actions(env)
    env.reset(seed=0, options={"task": task})
    return env, oracle


def test_geometry_marks_each_measurement_at_the_turn_that_obtains_it() -> None:
    # distance_angle, hard: three anchors in three cameras and the frames linking them. The oracle
    # detects, measures the depth (the anchor need), lifts the pixel and transforms it to world.
    env, oracle = _geometry("distance_angle")
    task = env.unwrapped.task
    assert [n[0] for n in task.evidence] == ["anchor", "anchor", "anchor", "frames"]
    names = [c.name for c in oracle]
    depths = [i for i, n in enumerate(names) if n == "depth_at"]
    transforms = [i for i, n in enumerate(names) if n == "transform"]
    infos = _steps(env, oracle)
    assert infos[-1]["verdict"].reward == 1.0
    anchors = [f"anchor:{cam}:{obj}" for _, cam, obj, _, _ in task.evidence[:3]]
    frames = "frames:" + "+".join(task.evidence[3][1:])
    # each camera's transform to world joins one more frame: the chain is whole at the last one
    assert infos[-1]["subgoals"]["done"] == {
        **dict(zip(anchors, depths, strict=True)),
        frames: transforms[-1],
    }
    assert infos[depths[0]]["subgoal_rewards"] == {anchors[0]: 0.25}
    assert infos[-1]["subgoals"]["reached"] == []  # the submit itself measures nothing


def test_geometry_a_wrong_pixel_a_repeat_or_another_scene_reaches_nothing() -> None:
    env, oracle = _geometry("distance_angle")
    depth = next(c for c in oracle if c.name == "depth_at")
    off = ToolCall("depth_at", {**depth.arguments, "u": depth.arguments["u"] + 5})
    infos = _steps(env, [off, depth, depth, depth])
    assert all(i["results"][0].ok for i in infos)
    assert [i["subgoals"]["reached"] for i in infos] == [
        [],
        [infos[1]["subgoals"]["reached"][0]],
        [],
        [],
    ]
    assert infos[1]["subgoals"]["reached"][0].startswith("anchor:")
    # another scene's measurements (padding) meet none of this task's needs
    env2, other = _geometry("area_volume")
    task = env.unwrapped.task
    env.reset(seed=0, options={"task": task})
    padding = [c for c in other[:-1] if c.arguments.get("scene") != task.scene_id]
    assert padding
    infos = _steps(env, padding)
    assert all(i["subgoals"]["reached"] == [] for i in infos)


def test_geometry_measurements_inside_the_submit_reach_nothing() -> None:
    env, oracle = _geometry("point_transform")
    action = json.dumps([{"name": c.name, "arguments": dict(c.arguments)} for c in oracle])
    _, _, terminated, _, info = env.step(action)
    assert terminated and all(r.ok for r in info["results"])
    assert info["subgoals"]["reached"] == [] and info["subgoals"]["done"] == {}


def test_travel_a_fork_plans_its_own_days() -> None:
    env, oracle = _travel("travel-test-easy-0010")
    names = [c.name for c in oracle]
    first, second = [i for i, n in enumerate(names) if n == "get_distance"][:2]
    _steps(env, oracle[: first + 1])
    clone = env.unwrapped.fork()
    # the clone goes on to the second day; the original repeats the first (plans nothing new)
    for action in oracle[first + 1 : second + 1]:
        _, _, _, _, clone_info = clone.step(action)
    _, _, _, _, info = env.step(oracle[first])
    assert clone_info["subgoals"]["reached"] == ["day_2_planned"]
    assert info["subgoals"]["reached"] == [] and set(info["subgoals"]["done"]) == {"day_1_planned"}
    _, _, _, _, clone_info = clone.step(oracle[first])
    assert clone_info["subgoals"]["reached"] == []
    assert set(clone_info["subgoals"]["done"]) == {"day_1_planned", "day_2_planned"}


def test_shopping_results_inside_the_submit_reach_nothing() -> None:
    # the whole oracle as one action: the agent never read the product page or the selection it
    # submits, so no subgoal is paid for them (as at the grounding level)
    for env_id in ("hiergym/Shopping-v0", "hiergym/ShoppingList-v0"):
        env = gym.make(env_id, split="test", difficulty="easy")
        env.reset(seed=0)
        oracle = oracle_actions(env)
        action = json.dumps([{"name": c.name, "arguments": dict(c.arguments)} for c in oracle])
        _, _, terminated, _, info = env.step(action)
        assert terminated and all(r.ok for r in info["results"]), env_id
        assert info["subgoals"]["reached"] == [] and info["subgoals"]["done"] == {}, env_id


def test_rtl_compiles_and_simulates_inside_the_submit_reach_nothing() -> None:
    env = gym.make("hiergym/RTL-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    submit = oracle_actions(env)[-1]
    code = submit.arguments["code"]
    calls = [
        {"name": "compile", "arguments": {"code": code}},
        {"name": "simulate", "arguments": {"code": code}},
        {"name": submit.name, "arguments": dict(submit.arguments)},
    ]
    _, _, terminated, _, info = env.step(json.dumps(calls))
    assert terminated and all(r.ok for r in info["results"])
    assert info["subgoals"]["reached"] == [] and info["subgoals"]["done"] == {}


def test_a_subgoals_tools_are_a_set_of_names_and_a_hit_rule_needs_them() -> None:
    import pytest

    from hiergym.envs.core import Subgoal

    def never(*_: object) -> bool:
        return False

    assert Subgoal("a", never, tools=["search", "search"]).tools == frozenset({"search"})
    with pytest.raises(TypeError, match="not a str"):
        Subgoal("a", never, tools="search")
    with pytest.raises(ValueError, match="needs the tools"):
        Subgoal("a", never, hit=never)
    goal = Subgoal.of_results("a", ["view_product"], lambda r, task: True)
    assert goal.tools == frozenset({"view_product"}) and goal.hit is not None


def test_a_turn_without_a_subgoals_tools_never_asks_it() -> None:
    # a search turn cannot open a product page: Shopping's subgoals are not asked at all
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    env.reset(seed=0)
    asked: list[str] = []
    goals = []
    for g in base.subgoals():

        def hit(r: object, task: object, g: object = g) -> bool:
            asked.append(r.name)
            return g.hit(r, task)

        goals.append(type(g).of_results(g.name, g.tools, hit, g.weight, g.description))
    base.subgoals = lambda: list(goals)
    env.reset(seed=0)
    oracle = oracle_actions(env)
    search = next(c for c in oracle if c.name == "search")
    view = next(c for c in oracle if c.name == "view_product")
    _steps(env, [search, search, ToolCall("view_product", {"product_id": "NOPE"}), view])
    assert asked == ["view_product"]  # the failed view and the searches asked nothing
