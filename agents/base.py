"""The agent protocol the harness and users program against."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from hiergym.envs.tools import ToolCall


@runtime_checkable
class Agent(Protocol):
    """``act(observation, info) -> raw text or ToolCall``; ``bind(env)`` is called before each episode."""

    name: str

    def bind(self, env: Any) -> None: ...

    def act(self, observation: str, info: dict[str, Any]) -> str | ToolCall: ...
