"""The LLM-backed simulated user over a fake OpenAI-compatible server on 127.0.0.1: its replies
are used, guarded (a reply that gives away an unasked requirement is replaced by the rule user's)
and cached like tool results, so a second process replays the run with the server gone."""

from __future__ import annotations

import json
import subprocess
import sys

import gymnasium as gym
import pytest

from hiergym.envs.tools import ToolCall

from ...fake_openai import fake_openai


def persona_echo(body):
    """Answers every message with the persona's budget line (the hidden budget), whatever was
    asked: right for a budget question, a leak for any other."""
    system = body["messages"][0]["content"]
    line = next(x for x in system.splitlines() if x.startswith("- budget: "))
    return "Let me think. " + line.removeprefix("- budget: ")


@pytest.fixture
def server():
    with fake_openai(persona_echo) as fake:
        yield fake


QUESTIONS = ("Which features does it need to have?", "What is your budget?")

REPLAY = """
import json, sys
import gymnasium as gym
import hiergym
from hiergym.envs.tools import ToolCall
env = gym.make("hiergym/ShoppingChat-v0", split="test", user=sys.argv[1])
env.reset(seed=5)
out = [env.step(ToolCall("message_user", {"text": q}))[0] for q in json.loads(sys.argv[2])]
print(json.dumps(out))
"""


def test_llm_user_replies_are_guarded_and_cached_for_replay(server, tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_DB_URL", f"sqlite:///{tmp_path}/cache.sqlite")
    spec = f"openai:persona-echo@{server.url}"
    env = gym.make("hiergym/ShoppingChat-v0", split="test", user=spec)
    _, info = env.reset(seed=5)
    assert info["user"] == "llm"
    task = env.unwrapped.task
    budget = task.slot("budget").answer
    first = env.step(ToolCall("message_user", {"text": QUESTIONS[0]}))[0]
    assert first == task.slot("features").answer  # the model leaked the budget: guarded
    second = env.step(ToolCall("message_user", {"text": QUESTIONS[1]}))[0]
    assert second == f"Let me think. {budget}"  # asked: the model's own words
    assert len(server.requests) == 2
    assert "hidden" in server.requests[0]["messages"][0]["content"]
    assert server.requests[1]["messages"][-2]["content"] == first  # it sees the history
    third = env.step(ToolCall("message_user", {"text": "Which features again?"}))[0]
    assert third == f"Let me think. {budget}"  # the budget is no secret once asked
    port = server.port
    server.stop()
    replay = subprocess.run(
        [sys.executable, "-c", REPLAY, spec, json.dumps(QUESTIONS)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "HIERGYM_DB_URL": f"sqlite:///{tmp_path}/cache.sqlite"},
    )
    assert replay.returncode == 0, replay.stderr[-2000:]
    assert json.loads(replay.stdout.strip().splitlines()[-1]) == [first, second]
    assert port  # the server is gone: every reply came from the cache


def test_a_user_model_that_is_down_is_an_error_observation(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_DB_URL", f"sqlite:///{tmp_path}/cache.sqlite")
    with socket_free_port() as port:
        spec = f"openai:nobody@http://127.0.0.1:{port}/v1"
    env = gym.make("hiergym/ShoppingChat-v0", split="test", user=spec)
    env.reset(seed=6)
    backend = env.unwrapped.user.backend
    backend.max_retries, backend.sleep = 0, lambda s: None
    obs, _, term, trunc, _ = env.step(ToolCall("message_user", {"text": "What is your budget?"}))
    assert obs.startswith("error:") and "simulated user's model failed" in obs
    assert not (term or trunc)


class socket_free_port:  # noqa: N801 - used as a context manager
    def __enter__(self):
        import socket

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        return self.sock.getsockname()[1]

    def __exit__(self, *exc):
        self.sock.close()
