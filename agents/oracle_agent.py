"""The oracle as an agent: replays the domain oracle's plan for the env's current task."""

from __future__ import annotations

from typing import Any

from hiergym.envs.tools import ToolCall


class OracleAgent:
    """Acts out ``env.unwrapped.make_oracle().plan(task)``, one call per step."""

    def __init__(self, env: Any = None, name: str = "oracle"):
        self.name = name
        self.env = None
        self._plan: list[ToolCall] = []
        self._task_id: Any = None
        if env is not None:
            self.bind(env)

    def bind(self, env: Any) -> None:
        self.env = env.unwrapped
        self._oracle = self.env.make_oracle()
        self._task_id = None

    def act(self, observation: str, info: dict[str, Any]) -> ToolCall:
        if self.env is None:
            raise RuntimeError("OracleAgent needs an env: OracleAgent(env) or agent.bind(env)")
        if info.get("turn", 0) == 0 or self._task_id != info.get("task_id"):
            self._plan = list(self._oracle.plan(self.env.task))
            self._task_id = info.get("task_id")
        turn = info.get("turn", 0)
        if turn >= len(self._plan):
            return self._plan[-1]
        return self._plan[turn]
