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


def check(spec: str, *, timeout: float = 3.0) -> None:
    """Fail fast, before a run starts, on an agent that cannot work here: a malformed spec, a
    missing extra, a model folder that does not exist, an endpoint that does not answer.

    Raises:
        PluginError: saying what is wrong and how to fix it.
    """
    kind, _, arg = spec.partition(":")
    if kind in ("random", "oracle"):
        load(spec)
        return
    if kind == "openai":
        load(spec)  # validates MODEL@URL
        url = arg.rpartition("@")[2].rstrip("/")
        import httpx

        try:
            httpx.get(f"{url}/models", timeout=timeout)  # any HTTP answer means it is up
        except httpx.HTTPError as e:
            raise PluginError(
                f"agent {spec!r}: the endpoint {url} does not answer ({type(e).__name__}: {e}); "
                "start the server first or fix the URL"
            ) from e
        return
    if kind == "hf":
        if not arg:
            raise PluginError(f"expected hf:PATH (a model directory or hub id), got {spec!r}")
        import importlib.util
        from pathlib import Path

        for module in ("torch", "transformers"):
            if importlib.util.find_spec(module) is None:
                raise PluginError(
                    f"agent {spec!r} needs {module}: pip install 'hiergym[llm]' "
                    "(a CPU torch wheel is enough to run small models)"
                )
        looks_local = arg.startswith(("/", ".", "~")) or Path(arg).expanduser().exists()
        if looks_local and not Path(arg).expanduser().is_dir():
            raise PluginError(
                f"agent {spec!r}: no such folder {arg!r} (expected a model directory)"
            )
        return
    load(spec)  # raises the unknown-agent error with its did-you-mean


__all__ = [
    "Agent",
    "Completion",
    "LLMAgent",
    "LLMError",
    "OracleAgent",
    "RandomAgent",
    "check",
    "load",
]
