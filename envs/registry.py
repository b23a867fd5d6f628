"""Env registration: built-in domains and third-party plugins, under Gymnasium ids ``hiergym/<Domain>-vN``.

Built-ins register at ``import hiergym`` with string entry points, so nothing heavy is imported
before ``gym.make``. A plugin package declares
``[project.entry-points."hiergym.domains"] mydomain = "mypkg:register"``; hiergym calls each
``register()`` once. A plugin that fails is recorded by name (``hiergym list`` shows it broken) and
never stops the others or the built-ins.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gymnasium as gym

from hiergym.errors import PluginError, did_you_mean

ENTRY_POINT_GROUP = "hiergym.domains"


@dataclass(frozen=True)
class EnvEntry:
    env_id: str
    env_class: str
    source: str  # "builtin", the plugin's entry-point name, or "user" (registered by code)


@dataclass(frozen=True)
class BrokenPlugin:
    name: str
    target: str
    error: str


_ENVS: dict[str, EnvEntry] = {}
_BROKEN: dict[str, BrokenPlugin] = {}
_current_source = "user"
"""Who registers now: "builtin" while hiergym registers its domains, a plugin's entry-point name
while it loads, "user" otherwise (a test, a notebook, a script)."""


@contextlib.contextmanager
def registering(source: str) -> Iterator[None]:
    """Record ``source`` on the envs registered inside the block."""
    global _current_source
    previous, _current_source = _current_source, source
    try:
        yield
    finally:
        _current_source = previous


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
    """The entry point of every hiergym id: the env, wrapped in its reward wrappers.

    ``gym.make(id, max_episode_steps=N)`` would add Gymnasium's ``TimeLimit``, which cuts the episode
    with no verdict and reward 0; here it becomes ``max_turns=N``, so the env truncates on that
    same step *with* a verdict (TimeLimit, still outside, agrees). A misspelled argument is a
    ``TypeError`` that names the closest one.
    """
    from hiergym.rewards.wrappers import HierarchicalReward, ProcessReward

    cls = load_class(env_class)
    limit = _requested_time_limit()
    if limit is not None:
        if kwargs.get("max_turns") not in (None, limit):
            raise ValueError(
                f"max_episode_steps={limit} and max_turns={kwargs['max_turns']} disagree; "
                "pass max_turns only (the env verifies the episode when it runs out of turns)"
            )
        kwargs["max_turns"] = limit
    _check_kwargs(cls, kwargs)
    env = cls(aggregate=aggregate, aggregate_params=aggregate_params, **kwargs)
    env = HierarchicalReward(env, aggregate, **(aggregate_params or {}))
    if process_reward:
        env = ProcessReward(env)
    return env


def shadowing_problem() -> str | None:
    """Why ``hiergym`` imported here is not the installed package, or None.

    Run from a folder that holds a directory named ``hiergym`` (the parent of a clone, say),
    Python imports that directory as an empty namespace package instead: nothing registers and
    ``gym.make("hiergym/...")`` fails with "Namespace hiergym not found" (in Ray or pool workers
    too, whose working directory is the driver's).
    """
    module = sys.modules.get("hiergym")
    if module is None or getattr(module, "__file__", None) is not None:
        return None
    where = ", ".join(str(p) for p in getattr(module, "__path__", []))
    return (
        f"the folder {where} shadows the installed hiergym package (it is imported as an empty "
        "namespace package, so no env is registered); run from another directory, e.g. cd into "
        "the clone, or rename that folder"
    )


def _requested_time_limit() -> int | None:
    """The ``max_episode_steps`` that the ``gym.make`` calling this entry point was given."""
    import inspect

    frame = inspect.currentframe()
    try:
        for _ in range(6):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                return None
            code = frame.f_code
            if code.co_name == "make" and code.co_filename == gym.envs.registration.__file__:
                steps = frame.f_locals.get("max_episode_steps")
                return int(steps) if isinstance(steps, int) and steps > 0 else None
        return None
    finally:
        del frame


_MAKE_KWARGS = ("aggregate", "aggregate_params", "process_reward")


def _check_kwargs(cls: Any, kwargs: dict[str, Any]) -> None:
    import inspect

    accepted: set[str] = set(_MAKE_KWARGS)
    takes_any = False
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = inspect.signature(init).parameters.values()
        accepted |= {p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break  # this __init__ does not pass unknown kwargs on to its parents
        takes_any = klass.__name__ == "object"
    accepted.discard("self")
    if takes_any:
        return
    unknown = [k for k in kwargs if k not in accepted]
    if unknown:
        key = unknown[0]
        raise TypeError(
            f"{cls.__name__} got an unexpected argument {key!r}{did_you_mean(key, sorted(accepted))}; "
            f"it takes {', '.join(sorted(accepted))}"
        )


def declares_plugins() -> bool:
    """Whether any installed distribution may declare a ``hiergym.domains`` entry point.

    A cheap look (~3 ms) before ``importlib.metadata``'s full scan (importing it, and logging,
    and parsing every distribution's metadata: ~40 ms, a large share of what ``import hiergym``
    adds to ``import gymnasium``): read the ``entry_points.txt``
    of each ``*.dist-info`` / ``*.egg-info`` folder on ``sys.path`` for the group's name. Anything
    this look cannot see through (a zip or egg on the path, a custom distribution finder) answers
    True, so the full scan decides.
    """
    if any(
        hasattr(finder, "find_distributions") and finder is not importlib.machinery.PathFinder
        for finder in sys.meta_path
    ):
        return True
    needle = ENTRY_POINT_GROUP.encode()
    for entry in sys.path:
        folder = entry or "."
        if folder.lower().endswith(".egg") or (
            os.path.exists(folder) and not os.path.isdir(folder)
        ):
            return True  # an egg or a zip: its metadata sits where this look does not read
        try:
            names = os.listdir(folder)
        except OSError:
            continue
        for name in names:
            if not name.lower().endswith((".dist-info", ".egg-info")):
                continue
            try:
                with open(os.path.join(folder, name, "entry_points.txt"), "rb") as f:
                    if needle in f.read():
                        return True
            except OSError:
                continue  # no entry points (or an .egg-info file, which has none)
    return False


def load_plugins() -> None:
    """Call every ``hiergym.domains`` entry point once; record failures instead of raising."""
    if not declares_plugins():
        return
    import importlib.metadata
    import logging

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in _BROKEN or any(e.source == ep.name for e in _ENVS.values()):
            continue
        try:
            with registering(ep.name):
                ep.load()()
        except Exception as e:  # a broken plugin must never break the built-ins
            _BROKEN[ep.name] = BrokenPlugin(ep.name, ep.value, f"{type(e).__name__}: {e}")
            logging.getLogger("hiergym").warning(
                "hiergym plugin %r (%s) failed to load: %s", ep.name, ep.value, e
            )


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
