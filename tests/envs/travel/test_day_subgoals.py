"""Travel's ``day_k_planned`` subgoals against a policy hunting for them: travel times between one
bed and its city's hubs, asked in every combination, are no week of planned days."""

from __future__ import annotations

import gymnasium as gym

from hiergym.envs.tools import ToolCall
from hiergym.envs.travel.rules import house_rule_ok, house_rules_of, room_type_ok
from hiergym.envs.travel.verifier import world_of


def test_one_beds_hub_legs_in_every_combination_plan_only_its_arrival_and_departure() -> None:
    # Boston -> Florida, 7 days. Before the fix each new *set* of legs planned a day: one hotel
    # search and seven get_distance calls between the hotel and its city's airport and station
    # (no meal place, no other city) reached all seven day_k_planned subgoals.
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="easy")
    base = env.unwrapped
    task = base.tasks.get("travel-test-easy-0003")
    assert task.days == 7 and task.is_region
    env.reset(seed=0, options={"task": task})
    world = world_of(base.sandbox.db)
    city = sorted(c for c in world.regions[task.destination] if c != task.origin)[0]
    _, _, _, _, info = env.step(ToolCall("search_hotels", {"city": city}))
    bed = next(
        h["id"]
        for h in info["results"][0].data["results"]
        if room_type_ok(task.room_type, h["room_type"])
        and house_rule_ok(task.house_rule, house_rules_of(h["house_rules"]))
    )
    airport, station = world.hub("airport", city), world.hub("station", city)
    legs = [
        ([bed], [airport]),  # a departure: the bed city's journey out
        ([airport], [bed]),  # an arrival: its journey in
        ([bed], [station]),
        ([station], [bed]),
        ([bed], [airport, station]),
        ([airport, station], [bed]),
        ([bed, airport], [station]),
    ]
    reached = []
    for origins, destinations in legs:
        _, _, _, _, info = env.step(
            ToolCall("get_distance", {"origins": origins, "destinations": destinations})
        )
        assert info["results"][0].ok
        reached.append(info["subgoals"]["reached"])
    assert reached == [["day_1_planned"], ["day_2_planned"], [], [], [], [], []]


def test_a_day_at_the_bed_city_needs_a_full_days_meals_not_one_restaurant_each() -> None:
    # Cincinnati -> Tampa, 3 days. Before the fix each unused meal place planned a day: one hotel
    # and restaurant search, then get_distance from the hotel to one restaurant at a time, reached
    # every day_k_planned with no plan of the day's breakfast, lunch and dinner.
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="easy")
    base = env.unwrapped
    task = base.tasks.get("travel-test-easy-0002")
    assert task.days == 3 and not task.is_region
    env.reset(seed=0, options={"task": task})
    _, _, _, _, info = env.step(ToolCall("search_hotels", {"city": task.destination}))
    bed = next(
        h["id"]
        for h in info["results"][0].data["results"]
        if room_type_ok(task.room_type, h["room_type"])
        and house_rule_ok(task.house_rule, house_rules_of(h["house_rules"]))
    )
    _, _, _, _, info = env.step(ToolCall("search_restaurants", {"city": task.destination}))
    meals = [r["id"] for r in info["results"][0].data["results"]]
    assert len(meals) >= 6

    def distances(places: list[str]) -> list[str]:
        _, _, _, _, info = env.step(
            ToolCall("get_distance", {"origins": [bed], "destinations": places})
        )
        assert info["results"][0].ok
        return info["subgoals"]["reached"]

    assert [distances([m]) for m in meals[:3]] == [[], [], []]
    assert distances(meals[:3]) == ["day_1_planned"]  # breakfast, lunch and dinner places
    assert distances(meals[:3]) == []  # asked again: spent
    assert distances(meals[2:5]) == []  # two new places are no full day
    assert distances(meals[3:6]) == ["day_2_planned"]
