"""verifiers adapter: ``load_environment(env_id, **kwargs)`` returns a multi-turn tool environment.

Run with verifiers' own eval command against any OpenAI-compatible endpoint::

    vf-eval hiergym.integrations.verifiers -a '{"env": "hiergym/Shopping-v0"}' \\
        -m MODEL -b http://localhost:8000/v1 -n 20 -r 4 -s

Each rollout owns one hiergym env, reset to its row's task. The model gets the env's tools with
the schemas the env publishes (native tool calling); each assistant message is one env step (its
tool calls, or its text, which the env parses like any action: JSON or ``<tool_call>`` blocks);
tool results come back as tool messages (a text action's observation as a user message). The
episode ends when the env ends it (``submit``, its turn budget); a rollout verifiers cuts short
is verified as truncated. The rubric pays the verdict's aggregate as ``hiergym_reward`` (weight 1)
and reports every level's score as a metric ``level_<name>`` (weight 0).

Written for verifiers 0.2.x (``vf.MultiTurnEnv``, ``vf.Rubric``, ``vf-eval``); the ``train``
extra pins it.
"""

from __future__ import annotations

import json
from typing import Any

import verifiers as vf
from datasets import Dataset

from .session import EpisodeSession


def _tool_defs(schemas: list[dict[str, Any]]) -> list[vf.Tool]:
    return [
        vf.Tool(
            name=s["function"]["name"],
            description=s["function"].get("description", ""),
            parameters=s["function"].get("parameters") or {"type": "object", "properties": {}},
        )
        for s in schemas
    ]


def _field(message: Any, name: str) -> Any:
    return message.get(name) if isinstance(message, dict) else getattr(message, name, None)


class HiergymEnv(vf.MultiTurnEnv):
    """A verifiers ``MultiTurnEnv`` over one hiergym id (see the module docstring)."""

    def __init__(self, env_id: str, make_kwargs: dict[str, Any], **kwargs: Any):
        self.hiergym_id = env_id
        self.make_kwargs = dict(make_kwargs)
        self._sessions: dict[str, EpisodeSession] = {}
        super().__init__(**kwargs)

    async def setup_state(self, state: vf.State) -> vf.State:
        session = EpisodeSession(self.hiergym_id, **self.make_kwargs)
        info = state.get("info") or {}
        if isinstance(info, str):
            info = json.loads(info)
        session.reset(task_id=info.get("task_id"), seed=info.get("seed"))
        self._sessions[state["trajectory_id"]] = session
        return state

    def _session(self, state: vf.State) -> EpisodeSession:
        return self._sessions[state["trajectory_id"]]

    async def env_response(
        self, messages: vf.Messages, state: vf.State, **kwargs: Any
    ) -> vf.Messages:
        session = self._session(state)
        last = messages[-1]
        content = _field(last, "content") or ""
        if not isinstance(content, str):
            content = json.dumps(content, default=str)
        calls = _field(last, "tool_calls") or []
        if calls:
            action: Any = {
                "role": "assistant",
                "content": content,
                "tool_calls": [
                    {
                        "id": _field(c, "id") or f"call_{i}",
                        "type": "function",
                        "function": {
                            "name": _field(c, "name"),
                            "arguments": _field(c, "arguments") or "{}",
                        },
                    }
                    for i, c in enumerate(calls)
                ],
            }
            observation = session.step(action)
            reply = [
                {"role": "tool", "content": m["content"], "tool_call_id": m["tool_call_id"]}
                for m in session.info.get("new_messages", [])
                if m["role"] == "tool"
            ]
            if not reply:  # the env answered the action as a whole (it could not be parsed)
                reply = [
                    {"role": "tool", "content": observation, "tool_call_id": a["id"]}
                    for a in action["tool_calls"]
                ]
        else:
            observation = session.step(content)
            reply = [{"role": "user", "content": observation}]
        if session.done:
            state["final_env_response"] = reply
        return reply

    @vf.stop
    async def episode_over(self, state: vf.State) -> bool:
        session = self._sessions.get(state["trajectory_id"])
        return session is not None and session.done

    @vf.cleanup
    async def record_verdict(self, state: vf.State) -> None:
        session = self._sessions.pop(state["trajectory_id"], None)
        if session is None:
            return
        try:
            verdict = session.finish()
            state["hiergym_verdict"] = verdict.to_dict()
            state["hiergym_task_id"] = session.info.get("task_id")
        finally:
            session.close()


def _verdict(state: Any) -> dict[str, Any]:
    verdict = state.get("hiergym_verdict")
    if verdict is None:
        raise RuntimeError("the rollout ended without a hiergym verdict (setup failed?)")
    return verdict


def hiergym_reward(state: Any, **_: Any) -> float:
    """The aggregate reward of the episode's verdict."""
    return float(_verdict(state)["reward"])


def _level_metric(name: str) -> Any:
    def metric(state: Any, **_: Any) -> float:
        for level in _verdict(state)["levels"]:
            if level["name"] == name:
                return float(level["score"])
        raise KeyError(f"verdict has no level {name!r}")

    metric.__name__ = f"level_{name}"
    return metric


def rubric(level_names: list[str]) -> vf.Rubric:
    """``hiergym_reward`` as the reward, every level's score as a metric."""
    r = vf.Rubric(funcs=[hiergym_reward], weights=[1.0])
    for name in level_names:
        r.add_metric(_level_metric(name))
    return r


def task_rows(session: EpisodeSession, num_examples: int | None, seed: int) -> list[dict[str, Any]]:
    import random

    tasks = list(session.base.tasks)
    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    if num_examples is not None:
        order = order[:num_examples]
    rows = []
    for i in order:
        prompt = session.reset(task_id=tasks[i].task_id)
        rows.append(
            {
                "prompt": [
                    {"role": "system", "content": session.system_prompt},
                    {"role": "user", "content": prompt},
                ],
                "answer": "",
                "info": {"task_id": tasks[i].task_id},
            }
        )
    return rows


def load_environment(
    env_id: str | None = None,
    split: str = "test",
    difficulty: str = "easy",
    num_examples: int | None = None,
    seed: int = 0,
    max_turns: int | None = None,
    env: str | None = None,
    **make_kwargs: Any,
) -> HiergymEnv:
    """A verifiers environment over ``env_id``'s tasks of (split, difficulty).

    Args:
        env_id: any registered hiergym id (default hiergym/Shopping-v0). ``vf-eval`` keeps
            ``env_id`` for the module's name, so in ``-a`` pass it as ``env``.
        split, difficulty: which tasks; one dataset row per task (shuffled by ``seed``).
        num_examples: keep this many tasks (default: all).
        max_turns: the env's turn budget (default: the env's own); verifiers stops there too.
        **make_kwargs: more ``gym.make`` arguments (aggregate, ...).
    """
    if env is not None and env_id is not None and env != env_id:
        raise ValueError(f"env={env!r} and env_id={env_id!r} disagree; pass one")
    env_id = env or env_id or "hiergym/Shopping-v0"
    kwargs = {"split": split, "difficulty": difficulty, **make_kwargs}
    if max_turns is not None:
        kwargs["max_turns"] = int(max_turns)
    probe = EpisodeSession(env_id, **kwargs)
    try:
        rows = task_rows(probe, num_examples, seed)
        levels = probe.level_names
        tools = _tool_defs(probe.tool_schemas)
        turns = probe.base.max_turns
    finally:
        probe.close()
    dataset = Dataset.from_list(rows)
    return HiergymEnv(
        env_id,
        kwargs,
        dataset=dataset,
        eval_dataset=dataset,
        rubric=rubric(levels),
        tool_defs=tools,
        max_turns=turns + 1,  # the env decides the end; verifiers only backs it up
    )


__all__ = ["HiergymEnv", "hiergym_reward", "load_environment", "rubric"]
