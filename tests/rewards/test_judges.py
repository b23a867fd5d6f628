from __future__ import annotations

import json

import gymnasium as gym
import httpx
import pytest

from hiergym.agents.openai_compatible import OpenAICompatible
from hiergym.envs.sandbox import ToolCache
from hiergym.errors import VerifierError
from hiergym.rewards.judges import LLMJudge
from hiergym.testing import oracle_actions, play


def judge_backend(reply: str, seen: list):
    def handler(request):
        seen.append(json.loads(request.content))
        return httpx.Response(
            200, json={"choices": [{"message": {"role": "assistant", "content": reply}}]}
        )

    return OpenAICompatible(
        "http://judge.test/v1", "judge-model", transport=httpx.MockTransport(handler)
    )


def test_llm_judge_is_blended_into_the_response_level_and_cached(tmp_path):
    seen: list = []
    judge = LLMJudge(
        judge_backend('{"score": 8, "reason": "clear"}', seen),
        cache=ToolCache(f"sqlite:///{tmp_path}/j.sqlite"),
    )
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="hard", judge=judge)
    for _ in range(2):
        env.reset(seed=5)
        out = play(env, oracle_actions(env), seed=5)
    response = out.verdict["levels"][-1]
    assert response["metrics"] == {"rubric": 1.0, "judge": 0.8} and response[
        "score"
    ] == pytest.approx(0.9)
    assert judge.requests == 1 and len(seen) == 1  # the second verdict came from the cache
    body = seen[0]
    assert (
        body["temperature"] == 0.0
        and "The assistant wrote: I recommend" in body["messages"][0]["content"]
    )


def test_an_unreadable_judge_is_a_verifier_error(tmp_path):
    judge = LLMJudge(
        judge_backend("I think it is fine", []), cache=ToolCache(f"sqlite:///{tmp_path}/j.sqlite")
    )
    env = gym.make("hiergym/Shopping-v0", judge=judge)
    env.reset(seed=0)
    with pytest.raises(VerifierError, match="without a score"):
        play(env, oracle_actions(env), seed=0)
