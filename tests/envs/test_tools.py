from __future__ import annotations

import json

import pytest

from hiergym.envs.tools import (
    MAX_ACTION_CHARS,
    ActionParseError,
    Toolbox,
    ToolCall,
    parse_action,
    tool,
    validate_arguments,
)
from hiergym.errors import ToolError


@tool
def lookup(
    state,
    query: str,
    limit: int = 5,
    price: float | None = None,
    tags: list[str] | None = None,
    opts: dict[str, str] | None = None,
) -> dict:
    """Look something up.

    Args:
        query: what to look for.
        limit: how many results.
        price: a price cap.
        tags: tags to match.
        opts: option values.
    """
    if query == "boom":
        raise ToolError("no such thing")
    return {"query": query, "limit": limit}


BOX = Toolbox([lookup])


def test_schema_from_signature_and_docstring():
    fn = lookup.schema()["function"]
    assert fn["name"] == "lookup"
    assert fn["description"] == "Look something up."
    props = fn["parameters"]["properties"]
    assert props["query"] == {"type": "string", "description": "what to look for."}
    assert props["limit"]["type"] == "integer"
    # standard JSON Schema: optional values are anyOf with null (not OpenAPI's "nullable")
    assert props["price"]["anyOf"] == [{"type": "number"}, {"type": "null"}]
    assert props["tags"]["anyOf"][0] == {"type": "array", "items": {"type": "string"}}
    assert props["opts"]["anyOf"][0]["additionalProperties"] == {"type": "string"}
    assert "nullable" not in json.dumps(fn)
    assert fn["parameters"]["required"] == ["query"]
    assert fn["parameters"]["additionalProperties"] is False


@pytest.mark.parametrize(
    "action",
    [
        '{"name": "lookup", "arguments": {"query": "x"}}',
        '<tool_call>{"name": "lookup", "arguments": {"query": "x"}}</tool_call>',
        '```json\n{"name": "lookup", "arguments": {"query": "x"}}\n```',
        'Sure, I will search. {"name": "lookup", "arguments": {"query": "x"}} Done.',
        {
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"query": "x"}'},
                }
            ]
        },
        [{"name": "lookup", "arguments": {"query": "x"}}],
        ToolCall("lookup", {"query": "x"}),
        '{"name": "lookup", "parameters": {"query": "x"}}',
    ],
)
def test_accepted_action_formats(action):
    calls = parse_action(action)
    assert [(c.name, dict(c.arguments)) for c in calls] == [("lookup", {"query": "x"})]


def test_several_hermes_blocks_in_one_message():
    text = 'thinking... <tool_call>{"name": "a", "arguments": {}}</tool_call>\n<tool_call>{"name": "b", "arguments": {"k": 1}}</tool_call>'
    calls = parse_action(text)
    assert [c.name for c in calls] == ["a", "b"]
    assert calls[0].id != calls[1].id


@pytest.mark.parametrize(
    ("action", "fragment"),
    [
        ("", "empty"),
        ("search for jackets please", "not valid JSON"),
        ('{"name": "lookup", "arguments": {"query": "x"}', "not valid JSON"),
        ('{"arguments": {}}', "needs a string 'name'"),
        ('{"name": "lookup", "arguments": [1, 2]}', "must be a JSON object"),
        ("[" * 5000 + "]" * 5000, "nested"),
        ("x" * (MAX_ACTION_CHARS + 1), "the cap is"),
        (json.dumps([{"name": "a", "arguments": {}}] * 9), "at most 8"),
        ("42", "expected a tool call object"),
    ],
)
def test_bad_actions_raise_parse_errors_with_a_fix(action, fragment):
    with pytest.raises(ActionParseError, match=fragment):
        parse_action(action)


def test_validation_messages_name_expected_and_received():
    errors = validate_arguments(
        lookup, {"querry": "x", "limit": "3", "price": True, "tags": ["a", 2], "opts": {"k": 1}}
    )
    text = " | ".join(errors)
    assert "missing required argument 'query'" in text
    assert "unexpected argument 'querry'; did you mean 'query'?" in text
    assert "limit must be integer, got string '3'" in text
    assert "price must be number or null, got boolean true" in text
    assert "tags[1] must be string, got integer 2" in text
    assert "opts.k must be string, got integer 1" in text


def test_validation_checks_every_item_of_long_arrays_and_objects():
    # A wrong type past the 64th entry once slipped through and crashed the verifier downstream.
    tags = ["a"] * 100 + [7]
    opts = {f"k{i}": "v" for i in range(100)} | {"last": 7}
    errors = validate_arguments(lookup, {"query": "x", "tags": tags, "opts": opts})
    assert errors == [
        "tags[100] must be string, got integer 7",
        "opts.last must be string, got integer 7",
    ]
    many = validate_arguments(lookup, {"query": "x", "tags": [1] * 10_000})
    assert 1 <= len(many) <= 8  # the message stays short


def test_toolbox_check_and_run():
    assert BOX.check(ToolCall("lokup", {})).content.startswith(
        "error: unknown tool 'lokup'; did you mean 'lookup'?"
    )
    assert BOX.check(ToolCall("lookup", {"query": "x"})) is None
    assert BOX.run(ToolCall("lookup", {"query": "x"}), None).data == {"query": "x", "limit": 5}
    failed = BOX.run(ToolCall("lookup", {"query": "boom"}), None)
    assert not failed.ok and failed.error == "tool_error" and "no such thing" in failed.content


# ---- standard, nested JSON Schema from typed payloads (issue 11) ---------------------------

from typing import Annotated, Literal  # noqa: E402

from pydantic import Field  # noqa: E402
from typing_extensions import TypedDict  # noqa: E402  (pydantic needs it before Python 3.12)


class Leg(TypedDict):
    mode: Literal["flight", "train", "taxi"]
    cost: Annotated[float, Field(ge=0, le=1e7)]


class Plan(TypedDict):
    days: Annotated[int, Field(ge=1, le=30)]
    legs: list[Leg]
    note: str | None


@tool(terminal=True)
def submit_plan(state, plan: Plan) -> str:
    """Submit a plan.

    Args:
        plan: the whole plan.
    """
    return "ok"


def test_a_typed_payload_has_a_full_nested_schema():
    import jsonschema

    params = submit_plan.parameters
    jsonschema.Draft202012Validator.check_schema(params)
    plan = params["properties"]["plan"]
    assert plan["description"] == "the whole plan."
    assert plan["required"] == ["days", "legs", "note"] and plan["additionalProperties"] is False
    assert plan["properties"]["days"] == {"type": "integer", "minimum": 1, "maximum": 30}
    leg = plan["properties"]["legs"]["items"]
    assert leg["properties"]["mode"]["enum"] == ["flight", "train", "taxi"]
    assert leg["properties"]["cost"]["minimum"] == 0
    assert "$ref" not in json.dumps(params) and "$defs" not in json.dumps(params)


@pytest.mark.parametrize(
    ("plan", "says"),
    [
        ({"days": 0, "legs": [], "note": None}, "plan.days must be at least 1, got integer 0"),
        (
            {"days": 2, "legs": [{"mode": "boat", "cost": 1}], "note": None},
            "plan.legs[0].mode must be one of",
        ),
        (
            {"days": 2, "legs": [{"mode": "taxi"}], "note": None},
            "plan.legs[0]: missing required key 'cost'",
        ),
        ({"days": 2, "legs": [], "note": None, "x": 1}, "plan: unexpected key 'x'"),
        ({"days": 2, "legs": [], "note": 5}, "plan.note must be string or null, got integer 5"),
        (
            {"days": 2, "legs": [{"mode": "taxi", "cost": -1}], "note": None},
            "plan.legs[0].cost must be at least 0",
        ),
    ],
)
def test_nested_payloads_are_validated_with_precise_messages(plan, says):
    import jsonschema

    errors = validate_arguments(submit_plan, {"plan": plan})
    assert any(says in e for e in errors), errors
    with pytest.raises(jsonschema.ValidationError):  # the schema itself says the same
        jsonschema.validate({"plan": plan}, submit_plan.parameters)


def test_a_valid_nested_payload_passes_both():
    import jsonschema

    plan = {"days": 2, "legs": [{"mode": "taxi", "cost": 12.5}], "note": None}
    assert validate_arguments(submit_plan, {"plan": plan}) == []
    jsonschema.validate({"plan": plan}, submit_plan.parameters)
