"""Agents: the protocol, the random floor, the oracle ceiling, and ``load(spec)``."""

from __future__ import annotations

from typing import Any

from hiergym.errors import PluginError, did_you_mean

from .base import Agent
from .oracle_agent import OracleAgent
from .random_agent import RandomAgent

BUILTIN = ("random", "oracle")


def load(spec: str, *, seed: int = 0) -> Any:
    """An agent by name: ``"random"``, ``"random:SEED"`` or ``"oracle"``."""
    kind, _, arg = spec.partition(":")
    if kind == "random":
        return RandomAgent(seed=int(arg) if arg else seed, name=spec)
    if kind == "oracle":
        return OracleAgent(name=spec)
    raise PluginError(
        f"unknown agent {spec!r}{did_you_mean(kind, BUILTIN)}; expected one of {list(BUILTIN)} (random:SEED for a seed)"
    )


__all__ = ["Agent", "OracleAgent", "RandomAgent", "load"]
