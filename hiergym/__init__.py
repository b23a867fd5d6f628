"""hiergym: Gymnasium environments for tool-using LLM agents, scored by hierarchical verifiers.

``import hiergym`` registers the built-in domains and every installed plugin, then::

    env = gymnasium.make("hiergym/Shopping-v0", split="test", difficulty="hard")
"""

from __future__ import annotations

from hiergym.envs.core import ToolEnv, Trajectory, Turn, fork_env
from hiergym.envs.registry import broken_plugins, list_envs, load_plugins, register_domain
from hiergym.envs.tools import ToolCall, ToolResult, parse_action
from hiergym.errors import (
    HiergymError,
    PluginError,
    SandboxError,
    TaskError,
    ToolError,
    VerifierError,
)
from hiergym.rewards import HierarchicalReward, HierarchicalVerifier, ProcessReward, Verdict

__version__ = "0.1.0"


BUILTIN_DOMAINS = ("shopping", "travel", "geometry", "rtl", "dialogue")
"""Packages under hiergym.envs whose ``register()`` runs at import (string entry points: cheap)."""


def _register_builtins() -> None:
    import importlib

    from hiergym.envs.registry import registering

    with registering("builtin"):
        for name in BUILTIN_DOMAINS:
            importlib.import_module(f"hiergym.envs.{name}").register()
        importlib.import_module("hiergym.remote").register()  # hiergym/Remote-v0 (hiergym serve)


_register_builtins()
load_plugins()

__all__ = [
    "HierarchicalReward",
    "HierarchicalVerifier",
    "HiergymError",
    "PluginError",
    "ProcessReward",
    "SandboxError",
    "TaskError",
    "ToolCall",
    "ToolEnv",
    "ToolError",
    "ToolResult",
    "Trajectory",
    "Turn",
    "Verdict",
    "VerifierError",
    "broken_plugins",
    "fork_env",
    "list_envs",
    "load_plugins",
    "parse_action",
    "register_domain",
]
