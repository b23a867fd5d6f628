"""Every env publishes standard JSON Schema for its tools (issue 11): valid Draft 2020-12, no
OpenAPI-only keywords, and the oracle's calls satisfy both the published schema and the env's own
validator (they are the same contract)."""

from __future__ import annotations

import json

import gymnasium as gym
import jsonschema
import pytest

import hiergym
from hiergym.envs.registry import missing_data
from hiergym.envs.tools import validate_arguments
from hiergym.testing import oracle_actions

ENV_IDS = [e.env_id for e in hiergym.list_envs()]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_tool_schemas_are_standard_json_schema(env_id):
    if missing_data(env_id):
        pytest.skip(missing_data(env_id))
    env = gym.make(env_id)
    base = env.unwrapped
    for schema in base.toolbox.schemas():
        params = schema["function"]["parameters"]
        jsonschema.Draft202012Validator.check_schema(params)
        text = json.dumps(params)
        assert '"nullable"' not in text and "$ref" not in text, schema["function"]["name"]
    base.reset(seed=0)
    for call in oracle_actions(env):
        tool = base.toolbox[call.name]
        jsonschema.validate(dict(call.arguments), tool.parameters)
        assert validate_arguments(tool, call.arguments) == []
    env.close()


def test_travel_publishes_the_itinerary_as_a_nested_schema_not_prose():
    env = gym.make("hiergym/Travel-v0")
    submit = env.unwrapped.toolbox["submit"].parameters["properties"]["itinerary"]
    day = submit["properties"]["days"]["items"]
    activity = day["properties"]["activities"]["items"]
    assert set(activity["required"]) == {"type", "start", "end", "cost"}
    assert activity["properties"]["type"]["enum"] == [
        "flight",
        "train",
        "transfer",
        "meal",
        "attraction",
    ]
    assert day["properties"]["accommodation"]["anyOf"][1] == {"type": "null"}
    assert submit["properties"]["days"]["maxItems"] == 14
    env.close()


def test_travelplanner_publishes_its_plan_days_as_a_schema_not_prose():
    if missing_data("hiergym/TravelPlanner-v0"):
        pytest.skip(missing_data("hiergym/TravelPlanner-v0"))
    env = gym.make("hiergym/TravelPlanner-v0")
    day = env.unwrapped.toolbox["submit"].parameters["properties"]["plan"]["items"]
    assert "accommodation" in day["required"] and day["additionalProperties"] is False
    assert day["properties"]["breakfast"] == {
        "type": "string", "maxLength": 1000, "description": '"-" for none'
    }  # fmt: skip
    env.close()
