"""Tool environments: the shared core and one package per domain."""

from .core import EpisodeState, TaskSet, ToolEnv, Trajectory, Turn
from .registry import list_envs, register_domain
from .replay import FailureReplay
from .sandbox import HttpBackend, LiveBackend, Sandbox, ToolCache
from .tools import Tool, Toolbox, ToolCall, ToolResult, parse_action, tool

__all__ = [
    "EpisodeState",
    "FailureReplay",
    "HttpBackend",
    "LiveBackend",
    "Sandbox",
    "TaskSet",
    "Tool",
    "ToolCache",
    "ToolCall",
    "ToolEnv",
    "ToolResult",
    "Toolbox",
    "Trajectory",
    "Turn",
    "list_envs",
    "parse_action",
    "register_domain",
    "tool",
]
