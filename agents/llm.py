"""LLM agents: the chat is built from ``info["messages"]`` and each step's ``new_messages``.

Backends implement ``complete(messages, tools, *, seed, temperature, max_tokens) -> Completion``
(and optionally ``complete_batch``). ``tools=None`` means the prompt carries the tool schemas and the
model answers with ``<tool_call>{...}</tool_call>`` blocks (the fallback for servers without native
tool calling).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hiergym.errors import HiergymError


class LLMError(HiergymError):
    """A backend could not produce a completion (after its retries)."""


@dataclass(frozen=True)
class Completion:
    text: str
    tool_calls: list[dict[str, Any]] | None = None  # OpenAI format
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Backend(Protocol):
    name: str
    native_tools: bool

    def complete(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]] | None,
        *,
        seed: int | None,
        temperature: float,
        max_tokens: int,
    ) -> Completion: ...


TOOL_PROMPT = (
    "You can call these tools. Each is described by an OpenAI function schema:\n{schemas}\n\n"
    "To call a tool, reply with one or more blocks exactly like\n"
    '<tool_call>{{"name": "<tool name>", "arguments": {{...}}}}</tool_call>\n'
    "and nothing else."
)


def prompt_based_messages(
    messages: Sequence[dict[str, Any]], tools: Sequence[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The chat for a model without native tools: schemas in the system prompt, calls and results as
    ``<tool_call>`` / ``<tool_response>`` text (the Hermes convention)."""
    schemas = "\n".join(json.dumps(t["function"]) for t in tools)
    out: list[dict[str, Any]] = []
    for m in messages:
        role = m["role"]
        if role == "system":
            out.append(
                {
                    "role": "system",
                    "content": f"{m['content']}\n\n{TOOL_PROMPT.format(schemas=schemas)}",
                }
            )
        elif role == "assistant" and m.get("tool_calls"):
            blocks = "\n".join(
                f'<tool_call>{{"name": {json.dumps(c["function"]["name"])}, "arguments": {c["function"]["arguments"]}}}</tool_call>'
                for c in m["tool_calls"]
            )
            out.append({"role": "assistant", "content": blocks})
        elif role == "tool":
            text = f"<tool_response>\n{m['content']}\n</tool_response>"
            if (
                out
                and out[-1]["role"] == "user"
                and out[-1]["content"].startswith("<tool_response>")
            ):
                out[-1] = {"role": "user", "content": out[-1]["content"] + "\n" + text}
            else:
                out.append({"role": "user", "content": text})
        else:
            out.append({"role": role, "content": m.get("content") or ""})
    if not any(m["role"] == "system" for m in out):
        out.insert(0, {"role": "system", "content": TOOL_PROMPT.format(schemas=schemas)})
    return out


@dataclass
class EpisodeUsage:
    """What the harness records per episode: tokens, requests, and the sampling settings used."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    requests: int = 0
    seed: int | None = None
    temperature: float = 0.0
    model: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "requests": self.requests,
            "seed": self.seed,
            "temperature": self.temperature,
            "model": self.model,
        }


def member_seed(seed: int | None, slot: int) -> int | None:
    """The sampling seed of group member ``slot`` of an episode seeded ``seed``: ``seed`` itself
    for slot 0 (a group of one samples as a lone episode does), else a value drawn from
    ``numpy.random.SeedSequence([seed, slot])`` in [0, 2**31), so it repeats neither another
    member's seed nor (in practice) the seed of a neighbouring group (``seed + 1``, ...)."""
    if seed is None or slot == 0:
        return seed
    import numpy as np

    return int(np.random.SeedSequence([int(seed), int(slot)]).generate_state(1)[0] >> 1)


class LLMAgent:
    """An agent that asks a backend for the next assistant message.

    Args:
        backend: an ``OpenAICompatible`` or ``Transformers`` backend (anything with ``complete``).
        temperature: sampling temperature, passed to the backend and recorded.
        seed: a fixed sampling seed; ``None`` uses the episode seed the harness passes to ``reset``.
        max_tokens: completion budget per step.
    """

    def __init__(
        self,
        backend: Any,
        *,
        temperature: float = 0.0,
        seed: int | None = None,
        max_tokens: int = 1024,
        name: str | None = None,
    ):
        self.backend = backend
        self.temperature = temperature
        self.fixed_seed = seed
        self.max_tokens = max_tokens
        self.name = name or f"llm:{getattr(backend, 'name', type(backend).__name__)}"
        self.usage = EpisodeUsage(
            seed=seed, temperature=temperature, model=getattr(backend, "name", "")
        )
        self._chats: dict[int, list[dict[str, Any]]] = {}
        self.last_completions: list[Completion] = []

    def bind(self, env: Any) -> None:
        pass

    def reset(self, seed: int) -> None:
        self.usage = EpisodeUsage(
            seed=self.fixed_seed if self.fixed_seed is not None else seed,
            temperature=self.temperature,
            model=getattr(self.backend, "name", ""),
        )

    def chat(self, info: dict[str, Any], slot: int = 0) -> list[dict[str, Any]]:
        """The episode's chat so far: ``info["messages"]`` after reset, then each step's
        ``new_messages`` appended (envs send only what a step added). ``slot`` tells apart the
        episodes one agent serves at once (``act_batch``: the position in the batch, as in a
        vector env)."""
        if "messages" in info:
            chat = list(info["messages"])
        else:
            chat = self._chats.get(slot, []) + list(info.get("new_messages", []))
        self._chats[slot] = chat
        return chat

    def request(
        self, info: dict[str, Any], slot: int = 0
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]] | None]:
        """The messages and tools to send, native or prompt-based by the backend's capability."""
        messages = self.chat(info, slot)
        if getattr(self.backend, "native_tools", True):
            return list(messages), info["tools"]
        return prompt_based_messages(messages, info["tools"]), None

    def act(self, observation: str, info: dict[str, Any]) -> str | dict[str, Any]:
        messages, tools = self.request(info)
        completion = self.backend.complete(
            messages,
            tools,
            seed=self.usage.seed,
            temperature=self.temperature,
            max_tokens=self.max_tokens,
        )
        return self._record(completion)

    def act_batch(
        self, infos: Sequence[dict[str, Any]], slots: Sequence[int] | None = None
    ) -> list[str | dict[str, Any]]:
        """One step of several episodes in one backend call (batched generation where supported).

        ``slots`` names the episode of each info (default: its position), so a group whose
        finished episodes drop out of the batch keeps each chat apart. Each slot samples with its
        own seed, :func:`member_seed` of the episode seed and the slot (slot 0 keeps the episode
        seed), so a server that honours seeds does not answer a group's identical first requests
        identically; a backend with ``complete_batch`` gets the episode seed for its one batched
        generation, whose rows already draw different samples. The step's completions (with
        their token counts) stay in :attr:`last_completions`.
        """
        slots = list(range(len(infos))) if slots is None else list(slots)
        if len(slots) != len(infos):
            raise ValueError(f"act_batch: {len(infos)} infos but {len(slots)} slots")
        requests = [self.request(info, slot) for slot, info in zip(slots, infos, strict=True)]
        seeds = [member_seed(self.usage.seed, slot) for slot in slots]
        if hasattr(self.backend, "complete_batch"):
            completions = self.backend.complete_batch(
                requests,
                seed=self.usage.seed,
                temperature=self.temperature,
                max_tokens=self.max_tokens,
            )
        else:
            completions = [
                self.backend.complete(
                    m,
                    t,
                    seed=member_seed_,
                    temperature=self.temperature,
                    max_tokens=self.max_tokens,
                )
                for (m, t), member_seed_ in zip(requests, seeds, strict=True)
            ]
        self.last_completions = list(completions)
        return [self._record(c) for c in completions]

    def _record(self, completion: Completion) -> str | dict[str, Any]:
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        self.usage.requests += 1
        if completion.tool_calls:
            return {
                "role": "assistant",
                "content": completion.text,
                "tool_calls": completion.tool_calls,
            }
        return completion.text

    def episode_stats(self) -> dict[str, Any]:
        return self.usage.to_dict()
