"""The OpenAI-compatible backend against in-process servers: httpx.MockTransport and a real local HTTP server."""

from __future__ import annotations

import json
import threading
import time

import gymnasium as gym
import httpx
import pytest

from hiergym.agents import LLMAgent, LLMError, load
from hiergym.agents.openai_compatible import OpenAICompatible

from ..fake_openai import call, completion, fake_openai


def backend(handler, **kw):
    b = OpenAICompatible("http://llm.test/v1", "tiny", transport=httpx.MockTransport(handler), **kw)
    b.sleep = lambda s: None
    return b


def test_native_tools_seed_temperature_and_usage_flow_into_the_env():
    seen = []

    def handler(request):
        body = json.loads(request.content)
        seen.append(body)
        assert request.url.path == "/v1/chat/completions"
        return httpx.Response(
            200, json=completion(tool_calls=[call("search", {"query": "rain jacket"})])
        )

    agent = LLMAgent(backend(handler), temperature=0.7)
    env = gym.make("hiergym/Shopping-v0")
    agent.reset(seed=123)
    obs, info = env.reset(seed=0)
    action = agent.act(obs, info)
    obs, *_, info = env.step(action)
    assert obs.startswith('{"page": 1')
    body = seen[0]
    assert body["seed"] == 123 and body["temperature"] == 0.7 and body["model"] == "tiny"
    assert {t["function"]["name"] for t in body["tools"]} >= {"search", "submit"}
    assert body["messages"][0]["role"] == "system" and body["messages"][1]["role"] == "user"
    assert agent.episode_stats() == {
        "prompt_tokens": 11,
        "completion_tokens": 7,
        "requests": 1,
        "seed": 123,
        "temperature": 0.7,
        "model": "tiny",
    }
    assert info["new_messages"][-2]["tool_calls"][0]["function"]["name"] == "search"


def test_falls_back_to_prompt_based_tools_when_the_server_rejects_them():
    bodies = []

    def handler(request):
        body = json.loads(request.content)
        bodies.append(body)
        if "tools" in body:
            return httpx.Response(
                400, json={"error": {"message": "this model does not support tools"}}
            )
        return httpx.Response(
            200, json=completion('<tool_call>{"name": "view_cart", "arguments": {}}</tool_call>')
        )

    b = backend(handler)
    agent = LLMAgent(b)
    env = gym.make("hiergym/Shopping-v0")
    obs, info = env.reset(seed=0)
    obs, *_, info = env.step(agent.act(obs, info))
    assert obs == '{"items": [], "total": 0}'
    assert not b.native_tools and "tools" not in bodies[-1]
    assert (
        "<tool_call>" in bodies[-1]["messages"][0]["content"]
        and '"name": "submit"' in bodies[-1]["messages"][0]["content"]
    )
    # the next turn goes prompt-based straight away, with the earlier call and its result as text
    agent.act(obs, info)
    later = bodies[-1]["messages"]
    assert later[2] == {
        "role": "assistant",
        "content": '<tool_call>{"name": "view_cart", "arguments": {}}</tool_call>',
    }
    assert later[3]["role"] == "user" and later[3]["content"].startswith("<tool_response>")


def test_retries_with_backoff_on_429_and_5xx_then_gives_up_clearly():
    statuses = iter([429, 503, 200])
    sleeps = []

    def flaky(request):
        status = next(statuses)
        if status == 429:
            return httpx.Response(429, headers={"retry-after": "2"}, text="slow down")
        if status == 503:
            return httpx.Response(503, text="overloaded")
        return httpx.Response(200, json=completion("ok"))

    b = backend(flaky, backoff=0.25)
    b.sleep = sleeps.append
    assert b.complete([{"role": "user", "content": "hi"}], None).text == "ok"
    assert sleeps == [2.0, 0.5]  # Retry-After honoured, then exponential backoff

    down = backend(lambda r: httpx.Response(500, text="boom"), max_retries=2)
    with pytest.raises(LLMError, match="failed after 3 attempts: HTTP 500"):
        down.complete([{"role": "user", "content": "hi"}], None)
    with pytest.raises(LLMError, match="HTTP 401"):
        backend(lambda r: httpx.Response(401, text="bad key")).complete(
            [{"role": "user", "content": "x"}], None
        )
    with pytest.raises(LLMError, match="not an OpenAI chat completion"):
        backend(lambda r: httpx.Response(200, json={"nope": 1})).complete(
            [{"role": "user", "content": "x"}], None
        )


def test_transport_errors_are_retried():
    attempts = []

    def handler(request):
        attempts.append(1)
        if len(attempts) < 3:
            raise httpx.ConnectError("refused")
        return httpx.Response(200, json=completion("back"))

    assert backend(handler).complete([{"role": "user", "content": "x"}], None).text == "back"
    assert len(attempts) == 3


def test_concurrency_cap():
    lock, state = threading.Lock(), {"now": 0, "max": 0}

    def handler(request):
        with lock:
            state["now"] += 1
            state["max"] = max(state["max"], state["now"])
        time.sleep(0.02)
        with lock:
            state["now"] -= 1
        return httpx.Response(200, json=completion("x"))

    b = backend(handler, max_concurrency=2)
    threads = [
        threading.Thread(target=b.complete, args=([{"role": "user", "content": "x"}], None))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state["max"] == 2


def _scripted(body):
    """Looks around twice, then submits."""
    tools_done = sum(m["role"] == "tool" for m in body["messages"])
    if tools_done < 2:
        return completion(
            tool_calls=[call("search", {"query": f"item {tools_done}"}, f"c{tools_done}")]
        )
    return completion(
        tool_calls=[
            call("submit", {"product_id": "B0NOSUCH00", "options": {}, "message": "this one"})
        ]
    )


@pytest.fixture
def llm_server():
    """A real HTTP server speaking the OpenAI protocol."""
    with fake_openai(_scripted) as server:
        yield server.url


def test_bench_with_an_openai_agent_over_real_http(llm_server, tmp_path):
    from hiergym.cli import main

    spec = f"openai:scripted/model-1@{llm_server}"
    assert (
        main(
            [
                "bench",
                "--agents",
                spec,
                "--envs",
                "shopping",
                "--episodes",
                "2",
                "--difficulties",
                "easy",
                "--out",
                str(tmp_path),
                "--quiet",
                "--temperature",
                "0.3",
            ]
        )
        == 0
    )
    rows = [json.loads(x) for x in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["error"] is None for r in rows)
    assert all(r["turns"] == 3 and r["verdict"]["first_failed"] == "format" for r in rows)
    stats = rows[1]["agent_stats"]
    assert (
        stats["requests"] == 3
        and stats["prompt_tokens"] == 33
        and stats["seed"] == 1
        and stats["temperature"] == 0.3
    )
    assert stats["model"] == "scripted/model-1"


def test_load_rejects_malformed_specs():
    from hiergym.errors import PluginError

    with pytest.raises(PluginError, match="openai:MODEL@URL"):
        load("openai:model-without-url")
    with pytest.raises(PluginError, match="did you mean 'oracle'"):
        load("oracel")
