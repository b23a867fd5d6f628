"""The env's message log keeps each call once: in ``tool_calls``, not also in the content."""

from __future__ import annotations

import gymnasium as gym
import pytest

import hiergym  # noqa: F401
from hiergym.envs.tools import parse_action, prose_of

CALL = '{"name": "search", "arguments": {"query": "jacket"}}'


@pytest.fixture(scope="module")
def shopping():
    env = gym.make("hiergym/Shopping-v0")
    yield env
    env.close()


@pytest.mark.parametrize(
    ("action", "content"),
    [
        (CALL, ""),
        (f"<tool_call>{CALL}</tool_call>", ""),
        (f"Let me look.\n<tool_call>{CALL}</tool_call>", "Let me look."),
        (f"I will search.\n```json\n{CALL}\n```\nthen decide.", "I will search.\n\nthen decide."),
        (f"Searching now: {CALL} and then the cart.", "Searching now:  and then the cart."),
    ],
)
def test_a_call_written_as_text_is_logged_once(shopping, action, content):
    """A model that writes its call as text (a tokenizer without a response template) gets the
    call back in ``tool_calls`` only: a chat template renders content and tool_calls both, so
    keeping the text whole showed every call twice in the next prompt."""
    shopping.reset(seed=0)
    shopping.step(action)
    assistant = shopping.unwrapped.messages[2]
    assert assistant["role"] == "assistant"
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["search"]
    assert assistant["content"] == content
    assert prose_of(action) == content
    assert '"search"' not in assistant["content"]


def test_an_openai_message_keeps_its_content_beside_its_tool_calls(shopping):
    shopping.reset(seed=0)
    message = {
        "role": "assistant",
        "content": "Searching for the jacket.",
        "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "search",
             "arguments": '{"query": "jacket"}'}}
        ],
    }  # fmt: skip
    shopping.step(message)
    assistant = shopping.unwrapped.messages[2]
    assert assistant["content"] == "Searching for the jacket."
    assert [c["function"]["name"] for c in assistant["tool_calls"]] == ["search"]


def test_text_without_a_call_is_logged_whole(shopping):
    shopping.reset(seed=0)
    shopping.step("I am not sure what to do.")
    assert shopping.unwrapped.messages[2]["content"] == "I am not sure what to do."


def test_prose_of_leaves_what_parse_action_did_not_read():
    text = f'Note {{"not": "a call"}} then {CALL}'
    assert [c.name for c in parse_action(text)] == ["search"]
    assert prose_of(text) == 'Note {"not": "a call"} then'
