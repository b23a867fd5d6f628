"""Throw arbitrary actions at the env: it never raises and always answers with an observation."""

from __future__ import annotations

import json

import gymnasium as gym
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

ENV = gym.make("hiergym/Shopping-v0", split="test", difficulty="hard", max_turns=10_000_000)
ENV.reset(seed=0)
BASE = ENV.unwrapped
TOOLS = [t["function"]["name"] for t in BASE.toolbox.schemas() if t["function"]["name"] != "submit"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=50),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)
nasty_strings = st.sampled_from(
    [
        '"',
        "NEAR(a b)",
        "x*",
        "a:b",
        "'; DROP TABLE products; --",
        "(((",
        "^",
        "\x00",
        "\u202e",
        "jacket OR",
        "%",
        "_",
        "\\",
        "SELECT * FROM products",
        "<tool_call>",
        "' OR 1=1 --",
        "a" * 20_000,
    ]
) | st.text(max_size=200)

arguments = st.dictionaries(
    st.sampled_from(
        [
            "query",
            "product_id",
            "options",
            "category",
            "min_price",
            "max_price",
            "attribute",
            "page",
            "quantity",
            "message",
            "extra",
        ]
    ),
    json_values | nasty_strings,
    max_size=5,
)
calls = st.builds(
    lambda name, args: {"name": name, "arguments": args},
    st.sampled_from(TOOLS) | st.text(max_size=20),
    arguments,
)
actions = st.one_of(
    st.text(max_size=500),
    nasty_strings,
    calls.map(json.dumps),
    calls.map(lambda c: f"<tool_call>{json.dumps(c)}</tool_call>"),
    st.lists(calls, max_size=10).map(json.dumps),
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
    st.integers(1, 3000).map(lambda n: '{"a":' * n + "1" + "}" * n),
)


@settings(
    max_examples=10_000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
@given(actions)
def test_any_action_is_an_observation(action):
    if BASE.trajectory.end is not None or len(BASE.trajectory.turns) > 200:
        ENV.reset(seed=0)
    obs, reward, terminated, truncated, info = ENV.step(action)
    assert isinstance(obs, str) and ENV.observation_space.contains(obs)
    assert not terminated and not truncated and reward == 0.0
    turn = BASE.trajectory.turns[-1]
    assert all(r.error != "tool_crash" for r in turn.results), turn.results
