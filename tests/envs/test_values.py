"""Agent values at the edges of their types are normalised once, at the boundary in core.

Huge JSON integers, ints beyond 64 bits, NaN and infinities, lone surrogates, NUL and other control
characters become a clear error observation before any tool or verifier sees them (issue 9, class A).
"""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall, parse_action


def _step(env, action):
    obs, reward, term, trunc, info = env.step(action)
    return obs, info


@pytest.mark.parametrize(
    "action",
    [
        '{"name": "search", "arguments": {"query": "x", "page": ' + "9" * 5000 + "}}",
        'Sure: {"name": "search", "arguments": {"page": ' + "9" * 5000 + "}} thanks",
        "<tool_call>" + '{"name": "search", "arguments": {"page": ' + "9" * 4400 + "}}</tool_call>",
    ],
)
def test_a_json_integer_too_long_to_convert_is_a_parse_error(shopping, action):
    shopping.reset(seed=0)
    obs, info = _step(shopping, action)
    assert obs.startswith("error:") and "digits" in obs
    assert info["results"][0].error in ("parse_error", "invalid_arguments")


def test_the_prose_fallback_keeps_the_nesting_cap():
    deep = '{"name": "search", "arguments": {"query": ' + '{"a":' * 40 + "1" + "}" * 40 + "}}"
    with pytest.raises(Exception, match="nested deeper"):
        parse_action("Here you go: " + deep + " bye")


BAD_VALUES = [
    ("lone surrogate", "\ud800", "surrogate"),
    ("NUL", "B0\x00X", "control character"),
    ("escape", "a\x1b[2J", "control character"),
    ("NaN", float("nan"), "finite"),
    ("infinity", float("inf"), "finite"),
    ("int beyond float range", 10**400, "64-bit"),
    ("int beyond 64 bits", 2**64, "64-bit"),
]


@pytest.mark.parametrize(("label", "value", "says"), BAD_VALUES, ids=[b[0] for b in BAD_VALUES])
@pytest.mark.parametrize("as_text", [True, False])
def test_edge_values_become_clear_errors_before_any_tool(
    shopping, caplog, label, value, says, as_text
):
    shopping.reset(seed=0)
    key = "query" if isinstance(value, str) else "max_price"
    call = {"name": "search", "arguments": {"query": "jacket", key: value}}
    action = json.dumps(call) if as_text else ToolCall("search", call["arguments"])
    with caplog.at_level("ERROR", logger="hiergym"):
        obs, info = _step(shopping, action)
    assert obs.startswith("error:") and says in obs, obs
    assert info["results"][0].error == "invalid_arguments"
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_nested_edge_values_are_found_wherever_they_are(shopping):
    shopping.reset(seed=0)
    obs, _ = _step(
        shopping,
        ToolCall("select_options", {"product_id": "B0", "options": {"size\ud800": "M"}}),
    )
    assert obs.startswith("error:") and "surrogate" in obs


def test_a_bad_value_in_submit_is_a_format_failure_not_a_crash(shopping):
    shopping.reset(seed=0)
    _, reward, term, trunc, info = shopping.step(
        ToolCall("submit", {"product_id": "\ud800", "options": {}, "message": "x"}),
    )
    assert info["results"][0].error == "invalid_arguments"
    env = gym.make("hiergym/Shopping-v0", max_turns=1)
    env.reset(seed=0)
    _, reward, term, trunc, info = env.step(
        json.dumps({"name": "submit", "arguments": {"product_id": "\ud800", "options": {}}})
    )
    assert trunc and info["verdict"].first_failed == "format" and reward == 0.0


def test_a_python_action_over_the_size_cap_is_refused(shopping):
    shopping.reset(seed=0)
    obs, info = _step(shopping, ToolCall("search", {"query": "x" * 300_000}))
    assert obs.startswith("error:") and "cap" in obs


def test_ordinary_text_keeps_its_whitespace_and_unicode(shopping):
    shopping.reset(seed=0)
    obs, info = _step(
        shopping, json.dumps({"name": "search", "arguments": {"query": "café\tjacket\n"}})
    )
    assert not obs.startswith("error:"), obs
