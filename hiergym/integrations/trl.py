"""TRL adapter: any hiergym id as a ``GRPOTrainer(environment_factory=...)`` environment.

TRL (>= 1.x, ``environment_factory``) creates one environment instance per rollout, calls
``reset(**row)`` with the dataset row, exposes every public method of the instance's class as a
tool (its schema read by ``transformers.utils.get_json_schema`` from the signature and the
Google-style docstring), and runs the model's tool calls against it. Here:

* :func:`environment_factory` returns a zero-argument callable building one env per instance; the
  class it builds has one method per tool of the env, named as the tool, with the parameters,
  required arguments, types and descriptions of the schema the env publishes (a part of a schema
  that Python type hints cannot carry, e.g. nested object properties or bounds, is appended to that
  argument's description as JSON Schema, so the model still sees it);
* ``reset(task_id=..., seed=...)`` maps a row to a task and returns its prompt (TRL appends it to
  the row's last user message); a row without either gets the session's next seed;
* :func:`reward_functions` reads the verdict: ``hiergym_reward`` (the aggregate the env pays) and
  one ``level_<name>`` per level, so TRL logs ``rewards/level_<name>/mean`` per level; use
  :func:`reward_weights` (1 for the aggregate, 0 for the levels) so only the aggregate is trained on;
* :func:`submit_reward` scores single-call tasks (one completion holding the ``submit`` call) as a
  plain TRL reward function, no environment needed.

An episode the trainer ends before ``submit`` (completion budget, tool-call cap) is verified as
truncated (:class:`~hiergym.integrations.session.EpisodeSession`), so its verdict says why it failed.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, Union

from .session import EpisodeSession

# --------------------------------------------------------------------------------------------
# JSON Schema -> Python signature (what transformers' get_json_schema reads back)


def _hint(schema: dict[str, Any]) -> Any:
    """The Python type hint that renders as ``schema`` (as close as type hints allow)."""
    if not isinstance(schema, dict) or not schema:
        return Any
    if "enum" in schema and all(isinstance(v, str | int | float | bool) for v in schema["enum"]):
        return Literal[tuple(schema["enum"])]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            members = [_hint(s) for s in schema[key]]
            return Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007
    kind = schema.get("type")
    if isinstance(kind, list):
        members = [_hint({**schema, "type": k}) for k in kind]
        return Union[tuple(members)] if len(members) > 1 else members[0]  # noqa: UP007
    if kind == "string":
        return str
    if kind == "integer":
        return int
    if kind == "number":
        return float
    if kind == "boolean":
        return bool
    if kind == "null":
        return type(None)
    if kind == "array":
        items = schema.get("items")
        return list[_hint(items)] if isinstance(items, dict) and items else list
    if kind == "object":
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict) and extra and not schema.get("properties"):
            return dict[str, _hint(extra)]
        return dict
    return Any


def _core(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without its description, for comparing what a type hint kept."""
    return {k: v for k, v in schema.items() if k != "description"}


def _lossless(schema: dict[str, Any], hint: Any) -> bool:
    from transformers.utils.chat_template_utils import _parse_type_hint

    try:
        rendered = _parse_type_hint(hint)
    except Exception:
        return False
    original = _core(schema)
    if original == rendered:
        return True
    # anyOf [X, null] renders as X with nullable: the same set of values
    members = original.get("anyOf")
    if isinstance(members, list) and {"type": "null"} in members and rendered.get("nullable"):
        rest = [m for m in members if m != {"type": "null"}]
        return len(rest) == 1 and rest[0] == {k: v for k, v in rendered.items() if k != "nullable"}
    return False


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def tool_method(schema: dict[str, Any], session_attr: str = "session") -> Callable[..., str]:
    """A method for one tool schema (OpenAI function format): its name, docstring and signature
    render back to the schema through ``transformers.utils.get_json_schema``; calling it runs the
    tool in ``self.<session_attr>`` and returns the observation. Unknown or missing arguments go to
    the env as they came, which answers with its own error observation."""
    fn_schema = schema["function"]
    name = fn_schema["name"]
    params = fn_schema.get("parameters") or {}
    properties: dict[str, Any] = params.get("properties") or {}
    required = set(params.get("required") or [])

    def method(self: Any, **arguments: Any) -> str:
        return getattr(self, session_attr).call(name, arguments)

    parameters = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    annotations: dict[str, Any] = {}
    arg_docs = []
    for arg, prop in properties.items():
        hint = _hint(prop)
        optional = arg not in required
        if optional and not _accepts_none(hint):
            hint = typing.Optional[hint]  # noqa: UP045 - the default below is None
        annotations[arg] = hint
        parameters.append(
            inspect.Parameter(
                arg,
                inspect.Parameter.KEYWORD_ONLY,
                default=None if optional else inspect.Parameter.empty,
                annotation=hint,
            )
        )
        description = _one_line(prop.get("description", "") or arg)
        if not _lossless(prop, hint if not optional else _hint(prop)):
            description += f" JSON Schema: {json.dumps(_core(prop), sort_keys=True)}"
        arg_docs.append(f"    {arg}: {description}")
    annotations["return"] = str
    summary = _one_line(fn_schema.get("description", "") or name)
    doc = summary + ("\n\nArgs:\n" + "\n".join(arg_docs) if arg_docs else "")
    doc += "\n\nReturns:\n    The tool's result, as the environment shows it."
    method.__name__ = name
    method.__qualname__ = name
    method.__doc__ = doc
    method.__annotations__ = annotations
    method.__signature__ = inspect.Signature(parameters, return_annotation=str)  # type: ignore[attr-defined]
    return method


def _accepts_none(hint: Any) -> bool:
    origin = typing.get_origin(hint)
    return hint is Any or (
        origin in (Union, types.UnionType) and type(None) in typing.get_args(hint)
    )


# --------------------------------------------------------------------------------------------
# The environment class


class HiergymTRLEnv:
    """Base of the classes :func:`environment_class` builds; holds no public method but ``reset``
    (TRL turns every other public method into a tool)."""

    env_id: str = ""
    make_kwargs: dict[str, Any] = {}

    def __init__(self) -> None:
        self.session = EpisodeSession(self.env_id, **self.make_kwargs)

    def reset(self, task_id: str | None = None, seed: int | None = None, **row: Any) -> str:
        """Start the episode of a dataset row: its ``task_id``, else its ``seed``, else the next
        seed of this instance. Returns the task prompt."""
        return self.session.reset(task_id=task_id, seed=seed)


def environment_class(env_id: str, **make_kwargs: Any) -> type[HiergymTRLEnv]:
    """A :class:`HiergymTRLEnv` subclass for ``env_id`` with one method per tool."""
    probe = EpisodeSession(env_id, **make_kwargs)
    try:
        schemas = probe.tool_schemas
    finally:
        probe.close()
    reserved = {"reset", "get_reward", "session"}
    namespace: dict[str, Any] = {
        "env_id": env_id,
        "make_kwargs": dict(make_kwargs),
        "__doc__": f"{env_id} for TRL: one episode per instance, its tools as methods.",
    }
    for schema in schemas:
        name = schema["function"]["name"]
        if name in reserved or name.startswith("_") or not name.isidentifier():
            raise ValueError(
                f"{env_id}: tool {name!r} cannot be a TRL environment method (reserved or not an "
                "identifier); rename the tool"
            )
        namespace[name] = tool_method(schema)
    cls_name = env_id.split("/")[-1].replace("-", "_").replace(".", "_") + "_TRLEnv"
    return type(cls_name, (HiergymTRLEnv,), namespace)


def environment_factory(env_id: str, **make_kwargs: Any) -> Callable[[], HiergymTRLEnv]:
    """The ``environment_factory`` for ``GRPOTrainer``: each call builds one env instance.

    ``make_kwargs`` go to ``gym.make`` (split, difficulty, aggregate, max_turns, ...).
    """
    return environment_class(env_id, **make_kwargs)


# --------------------------------------------------------------------------------------------
# Rewards


def level_names(env_id: str, **make_kwargs: Any) -> list[str]:
    probe = EpisodeSession(env_id, **make_kwargs)
    try:
        return probe.level_names
    finally:
        probe.close()


def _sessions(environments: Sequence[Any] | None) -> list[EpisodeSession]:
    if environments is None:
        raise ValueError(
            "hiergym reward functions read the env's verdict: pass environment_factory="
            "hiergym.integrations.trl.environment_factory(ENV_ID) to GRPOTrainer"
        )
    return [e.session for e in environments]


def reward_functions(env_id: str, **make_kwargs: Any) -> list[Callable[..., list[float]]]:
    """``[hiergym_reward, level_<name>, ...]``: the aggregate reward and one score per level,
    each read from the episode's verdict (TRL logs each as ``rewards/<name>/mean``)."""

    def hiergym_reward(completions: Any = None, environments: Any = None, **_: Any) -> list[float]:
        return [float(s.finish().reward) for s in _sessions(environments)]

    funcs: list[Callable[..., list[float]]] = [hiergym_reward]
    for name in level_names(env_id, **make_kwargs):

        def level(
            completions: Any = None, environments: Any = None, _name: str = name, **_: Any
        ) -> list[float]:
            return [s.level_score(_name) for s in _sessions(environments)]

        level.__name__ = f"level_{name}"
        level.__qualname__ = level.__name__
        funcs.append(level)
    return funcs


def reward_weights(env_id: str, **make_kwargs: Any) -> list[float]:
    """``GRPOConfig(reward_weights=...)`` for :func:`reward_functions`: train on the aggregate,
    log the levels."""
    return [1.0] + [0.0] * len(level_names(env_id, **make_kwargs))


def submit_reward(
    env_id: str, level: str | None = None, **make_kwargs: Any
) -> Callable[..., list[float]]:
    """A TRL reward function for tasks that end in one ``submit``: each completion is stepped as
    one action on a fresh episode of its row's task (``task_id`` column, else ``seed``) and scored
    by the verdict (the aggregate, or ``level``'s score). A completion that makes no valid submit
    call is scored as the env scores it (the verdict says why)."""
    session = EpisodeSession(env_id, **make_kwargs)
    if level is not None and level not in session.level_names:
        from hiergym.errors import did_you_mean

        raise ValueError(
            f"{env_id} has no level {level!r}{did_you_mean(level, session.level_names)}; "
            f"levels: {session.level_names}"
        )

    def reward(
        completions: Sequence[Any],
        task_id: Sequence[str] | None = None,
        seed: Sequence[int] | None = None,
        **_: Any,
    ) -> list[float]:
        scores = []
        for i, completion in enumerate(completions):
            session.reset(
                task_id=None if task_id is None else task_id[i],
                seed=None if seed is None else seed[i],
            )
            session.step(_as_action(completion))
            verdict = session.finish()
            scores.append(float(verdict.reward if level is None else verdict.level(level).score))
        return scores

    reward.__name__ = "hiergym_submit" if level is None else f"submit_{level}"
    return reward


def _as_action(completion: Any) -> Any:
    """A TRL completion (text, or conversational: a list of messages) as an env action."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, list) and completion:
        last = completion[-1]
        if isinstance(last, dict):
            if last.get("tool_calls"):
                calls = []
                for c in last["tool_calls"]:
                    fn = c.get("function", c)
                    args = fn.get("arguments", {})
                    calls.append(
                        {
                            "type": "function",
                            "id": c.get("id", ""),
                            "function": {
                                "name": fn.get("name", ""),
                                "arguments": args if isinstance(args, str) else json.dumps(args),
                            },
                        }
                    )
                return {
                    "role": "assistant",
                    "content": last.get("content") or "",
                    "tool_calls": calls,
                }
            return str(last.get("content") or "")
    return str(completion)


def task_dataset(env_id: str, n: int | None = None, seed: int = 0, **make_kwargs: Any) -> Any:
    """A ``datasets.Dataset`` of rows ``{"prompt": [system message, empty user message],
    "task_id": ...}`` over the env's tasks (the split and difficulty in ``make_kwargs``): the
    prompt is filled in by ``reset`` (TRL appends its return to the user message)."""
    from datasets import Dataset

    probe = EpisodeSession(env_id, **make_kwargs)
    try:
        tasks = list(probe.base.tasks)
        system = probe.system_prompt
    finally:
        probe.close()
    import random

    order = list(range(len(tasks)))
    random.Random(seed).shuffle(order)
    if n is not None:
        order = [order[i % len(order)] for i in range(n)]
    return Dataset.from_list(
        [
            {
                "prompt": [
                    {"role": "system", "content": system},
                    {"role": "user", "content": ""},
                ],
                "task_id": tasks[i].task_id,
            }
            for i in order
        ]
    )


__all__ = [
    "HiergymTRLEnv",
    "environment_class",
    "environment_factory",
    "level_names",
    "reward_functions",
    "reward_weights",
    "submit_reward",
    "task_dataset",
    "tool_method",
]
