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
    assert props["price"]["type"] == "number" and props["price"]["nullable"]
    assert props["tags"]["items"] == {"type": "string"}
    assert props["opts"]["additionalProperties"] == {"type": "string"}
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
    assert "price must be number, got boolean true" in text
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
