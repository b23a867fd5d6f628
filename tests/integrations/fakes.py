"""Scripted LLM backends for the integration tests: they play a task's oracle plan or junk."""

from __future__ import annotations

import json
from typing import Any

import gymnasium as gym

from hiergym.agents.llm import Completion

ENV_ID = "hiergym/Shopping-v0"


def oracle_plans(env_id: str, split: str, difficulty: str) -> dict[str, list[Any]]:
    """Task prompt -> the oracle's calls, for every task of (split, difficulty)."""
    env = gym.make(env_id, split=split, difficulty=difficulty)
    base = env.unwrapped
    oracle = base.make_oracle()
    plans = {}
    for task in base.tasks:
        obs, _ = env.reset(options={"task_id": task.task_id})
        plans[obs] = list(oracle.plan(task))
    env.close()
    return plans


class ScriptedBackend:
    """At a group's first step, the request at batch position 0 plays the oracle's plan and every
    other one plays junk (an invalid call, then a wrong submit); each remembers its role through
    the content of its own assistant messages. Counts backend calls."""

    name = "scripted"
    native_tools = True

    def __init__(self, plans: dict[str, list[Any]]):
        self.plans = plans
        self.batch_calls = 0
        self.batch_sizes: list[int] = []

    def complete_batch(self, requests, *, seed, temperature, max_tokens):
        self.batch_calls += 1
        self.batch_sizes.append(len(requests))
        return [self._one(messages, j) for j, (messages, _tools) in enumerate(requests)]

    def complete(self, messages, tools, *, seed, temperature, max_tokens):
        return self._one(messages, 0)

    def _one(self, messages: list[dict[str, Any]], position: int) -> Completion:
        mine = [m for m in messages if m["role"] == "assistant"]
        role = mine[0]["content"] if mine else ("oracle" if position == 0 else "junk")
        prompt = next(m["content"] for m in messages if m["role"] == "user")
        turn = len(mine)
        if role == "oracle":
            plan = self.plans[prompt]
            call = plan[min(turn, len(plan) - 1)]
            name, args = call.name, call.arguments
        elif turn == 0:
            name, args = "view_product", {"product_id": "NOPE"}
        else:
            name, args = "submit", {"product_id": "NOPE", "options": {}, "message": "no"}
        return Completion(
            text=role,
            tool_calls=[
                {
                    "id": f"c{turn}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(args)},
                }
            ],
            prompt_tokens=10 * (turn + 1),
            completion_tokens=3,
        )
