"""Env registration: built-in domains and third-party plugins, under Gymnasium ids ``hiergym/<Domain>-vN``.

Built-ins register at ``import hiergym`` with string entry points, so nothing heavy is imported
before ``gym.make``. A plugin package declares
``[project.entry-points."hiergym.domains"] mydomain = "mypkg:register"``; hiergym calls each
``register()`` once. A plugin that fails is recorded by name (``hiergym list`` shows it broken) and
never stops the others or the built-ins.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from hiergym.errors import PluginError, did_you_mean

ENTRY_POINT_GROUP = "hiergym.domains"
log = logging.getLogger("hiergym")


@dataclass(frozen=True)
class EnvEntry:
    env_id: str
    env_class: str
    source: str  # "builtin" or the plugin's entry-point name


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    target: str
    error: str


_ENVS: dict[str, EnvEntry] = {}
_BROKEN: dict[str, BrokenPlugin] = {}
_current_source = "builtin"


def register_domain(env_id: str, env_class: str, **default_kwargs: Any) -> None:
    """Register ``env_id`` for a :class:`~hiergym.envs.core.ToolEnv` subclass named ``"module:Class"``.

    ``gym.make(env_id, aggregate=..., process_reward=..., **env_kwargs)`` then builds the env wrapped
    in :class:`~hiergym.rewards.wrappers.HierarchicalReward` (and ProcessReward when asked).
    """
    if not env_id.startswith("hiergym/"):
        raise PluginError(
            f"hiergym env ids live in the hiergym namespace: expected 'hiergym/<Domain>-v<N>', got {env_id!r}"
        )
    if env_id in gym.registry:
        if _ENVS.get(env_id, EnvEntry(env_id, "", "")).env_class == env_class:
            return  # registering the same thing twice (a re-import) is harmless
        raise PluginError(
            f"{env_id!r} is already registered (by {_ENVS.get(env_id)}); bump the version or rename"
        )
    gym.register(
        id=env_id,
        entry_point="hiergym.envs.registry:make_env",
        kwargs={"env_class": env_class, **default_kwargs},
    )
    _ENVS[env_id] = EnvEntry(env_id, env_class, _current_source)


def load_class(path: str) -> Any:
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise PluginError(f"cannot load {path!r}: {e}") from e


def make_env(
    env_class: str,
    aggregate: Any = "gated",
    aggregate_params: dict[str, Any] | None = None,
    process_reward: bool = False,
    **kwargs: Any,
) -> gym.Env:
    """The entry point of every hiergym id: the env, wrapped in its reward wrappers."""
    from hiergym.rewards.wrappers import HierarchicalReward, ProcessReward

    cls = load_class(env_class)
    env = cls(aggregate=aggregate, aggregate_params=aggregate_params, **kwargs)
    env = HierarchicalReward(env, aggregate, **(aggregate_params or {}))
    if process_reward:
        env = ProcessReward(env)
    return env


def load_plugins() -> None:
    """Call every ``hiergym.domains`` entry point once; record failures instead of raising."""
    global _current_source
    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BROKEN or any(e.source == ep.name for e in _ENVS.values()):
            continue
        _current_source = ep.name
        try:
            ep.load()()
        except Exception as e:  # a broken plugin must never break the built-ins
            _BROKEN[ep.name] = BrokenPlugin(ep.name, ep.value, f"{type(e).__name__}: {e}")
            log.warning("hiergym plugin %r (%s) failed to load: %s", ep.name, ep.value, e)
        finally:
            _current_source = "builtin"


def missing_data(env_id: str) -> str | None:
    """Why ``env_id`` cannot be made with its defaults here (its env class says), or ``None``."""
    env_class = load_class(gym.spec(env_id).kwargs["env_class"])
    check = getattr(env_class, "missing_data", None)
    return check() if check is not None else None


def list_envs() -> list[EnvEntry]:
    return sorted(_ENVS.values(), key=lambda e: e.env_id)


def broken_plugins() -> list[BrokenPlugin]:
    return list(_BROKEN.values())


def resolve_env_id(name: str) -> str:
    """A registered id from an exact id or a short domain name (``shopping``); else a did-you-mean error."""
    if name in _ENVS:
        return name
    by_short = {e.env_id.split("/", 1)[1].split("-v")[0].lower(): e.env_id for e in _ENVS.values()}
    if name.lower() in by_short:
        return by_short[name.lower()]
    broken = (
        f" (plugin {name!r} is installed but broken: {_BROKEN[name].error})"
        if name in _BROKEN
        else ""
    )
    raise PluginError(
        f"no env {name!r}{broken}{did_you_mean(name, list(_ENVS) + list(by_short))}; "
        f"registered: {', '.join(_ENVS) or 'none'}"
    )
