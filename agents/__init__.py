"""Agents: the protocol, the random floor, the oracle ceiling, and ``load(spec)``."""

from __future__ import annotations

from typing import Any

from hiergym.errors import PluginError, did_you_mean

from .base import Agent
from .llm import Completion, LLMAgent, LLMError
from .oracle_agent import OracleAgent
from .random_agent import RandomAgent

BUILTIN = ("random", "oracle", "openai", "hf")
AGENT_OPTIONS = ("temperature", "seed", "max_tokens")


def load(spec: str, *, seed: int = 0, **options: Any) -> Any:
    """An agent by name, the same in the CLI and in code.

    * ``"random"`` / ``"random:SEED"`` — schema-valid random calls;
    * ``"oracle"`` — the domain's oracle;
    * ``"openai:MODEL@URL"`` — an OpenAI-compatible endpoint, e.g.
      ``openai:Qwen/Qwen2.5-7B-Instruct@http://localhost:8000/v1`` (key from ``HIERGYM_API_KEY`` or
      ``OPENAI_API_KEY``);
    * ``"hf:PATH"`` — a local transformers model directory or hub id.

    ``options``: temperature, seed and max_tokens go to an LLM agent, the rest to its backend;
    random and oracle agents ignore them.
    """
    kind, _, arg = spec.partition(":")
    if kind == "random":
        return RandomAgent(seed=int(arg) if arg else seed, name=spec)
    if kind == "oracle":
        return OracleAgent(name=spec)
    agent_opts = {k: v for k, v in options.items() if k in AGENT_OPTIONS}
    backend_opts = {k: v for k, v in options.items() if k not in AGENT_OPTIONS}
    if kind == "openai":
        model, at, url = arg.rpartition("@")
        if not at or not model or not url.startswith(("http://", "https://")):
            raise PluginError(
                f"expected openai:MODEL@URL (e.g. openai:my-model@http://localhost:8000/v1), got {spec!r}"
            )
        from .openai_compatible import OpenAICompatible

        return LLMAgent(OpenAICompatible(url, model, **backend_opts), name=spec, **agent_opts)
    if kind == "hf":
        if not arg:
            raise PluginError(f"expected hf:PATH (a model directory or hub id), got {spec!r}")
        from .transformers_backend import Transformers

        return LLMAgent(Transformers(arg, **backend_opts), name=spec, **agent_opts)
    raise PluginError(
        f"unknown agent {spec!r}{did_you_mean(kind, BUILTIN)}; expected random[:SEED], oracle, "
        "openai:MODEL@URL or hf:PATH"
    )


__all__ = ["Agent", "Completion", "LLMAgent", "LLMError", "OracleAgent", "RandomAgent", "load"]
