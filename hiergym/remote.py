"""RemoteEnv: a hiergym env served by ``hiergym serve``, used as if it ran in this process.

Client API (what a trainer or rollout loop calls)::

    import gymnasium as gym
    import hiergym
    from hiergym.remote import AsyncRemoteEnv, RemoteEnv

    env = RemoteEnv("http://127.0.0.1:8000", "hiergym/Shopping-v0", token=None,
                    split="test", difficulty="hard")          # kwargs go to gym.make on the server
    env = gym.make("hiergym/Remote-v0", url="http://127.0.0.1:8000", env_id="shopping")  # the same
    obs, info = env.reset(seed=7)                           # info["tools"], info["messages"], ...
    obs, reward, terminated, truncated, info = env.step('{"name": "search", "arguments": {...}}')
    info["verdict"]                                         # a hiergym.rewards.Verdict on the last step
    env.close()                                             # frees the server's env (and workers)

    async with AsyncRemoteEnv(url, "hiergym/Shopping-v0") as aenv:   # same, over httpx.AsyncClient
        obs, info = await aenv.reset(seed=7)
        obs, reward, terminated, truncated, info = await aenv.step(action)

* Observations, rewards, ``terminated``/``truncated`` and ``info`` are the ones the in-process env
  returns: ``info["verdict"]`` is rebuilt as a :class:`~hiergym.rewards.Verdict` (levels, findings,
  metrics, evidence, weights), ``info["results"]`` as :class:`~hiergym.envs.tools.ToolResult`
  tuples, NaN/inf and tuples survive the trip. Actions may be text, a ``ToolCall``, an OpenAI
  assistant message, or a list of those, as in-process.
* ``env.trajectory`` mirrors the server's trajectory turn by turn (so ``ProcessReward`` can wrap a
  RemoteEnv on the client), ``env.verdict`` is the server env's own verdict, ``env.task`` the task
  (fetched on first use), ``env.messages`` the chat.
* ``reset(options={"task": task})`` sends a task object (any task with ``to_json``/``from_json``),
  ``options={"task_id": ...}`` a task of the set.
* White-box helpers for conformance tests and audits (``make_oracle``, ``mutants``, ``attacks``,
  ``twins``, ``turn_checks``, ``toolbox``, ``tasks``, ``sandbox``, ``verifier``) come from a local copy of
  the env built on first use (:attr:`RemoteEnv.local`; it needs the domain's data on this machine).
  No episode ever runs on it.
* Defaults come from the environment: ``HIERGYM_REMOTE_URL``, ``HIERGYM_REMOTE_ENV``,
  ``HIERGYM_REMOTE_TOKEN`` (so ``gym.make("hiergym/Remote-v0")`` also works in subprocesses,
  e.g. ``gym.make_vec(..., vectorization_mode="async")``).
* Errors: an env exception on the server is raised here as the same hiergym error class when it is
  one (``VerifierError`` stays a ``VerifierError``), ``gymnasium.error.ResetNeeded`` when stepping
  before reset, else :class:`RemoteError` (``status``, ``code``, ``message``). A full server raises
  :class:`ServerBusy` (HTTP 503).

The wire format (:func:`encode` / :func:`decode`) is plain JSON; hiergym objects are tagged
``{"__hg__": "Verdict", ...}``; the server (:mod:`hiergym.server`) documents the protocol.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium as gym

TAG = "__hg__"
DEFAULT_TIMEOUT = 600.0
"""Seconds a request may take (an RTL synthesis or a cold sandbox build can take minutes)."""


# --------------------------------------------------------------------------------------------
# The wire codec


def encode(value: Any) -> Any:
    """``value`` as JSON-ready data; hiergym records, tuples and non-finite floats are tagged."""
    t = type(value)
    if t is str or t is int or t is bool or value is None:
        return value
    if t is dict:
        if TAG not in value:
            out = {}
            for k, v in value.items():
                if type(k) is not str:
                    break
                tv = type(v)
                out[k] = v if tv is str or tv is int or tv is bool or v is None else encode(v)
            else:
                return out
        return {TAG: "dict", "items": [[encode(k), encode(v)] for k, v in value.items()]}
    if t is list:
        return [v if type(v) is str else encode(v) for v in value]
    if t is float:
        return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}
    return _encode_other(value)


def _encode_other(value: Any) -> Any:
    if isinstance(value, bool | str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {TAG: "float", "v": repr(value)}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, tuple):
        return {TAG: "tuple", "items": [encode(v) for v in value]}
    if isinstance(value, Mapping):
        return encode(dict(value))
    kind = type(value).__name__
    if kind in _RECORDS and type(value).__module__.startswith("hiergym."):
        return {TAG: kind, **{f: encode(getattr(value, f)) for f in _RECORDS[kind]}}
    if hasattr(value, "to_json") and hasattr(type(value), "from_json"):
        cls = type(value)
        return {
            TAG: "task",
            "type": f"{cls.__module__}:{cls.__qualname__}",
            "json": value.to_json(),
        }
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with gymnasium
        np = None
    if np is not None:
        if isinstance(value, np.ndarray):
            return {
                TAG: "ndarray",
                "dtype": value.dtype.str,
                "shape": list(value.shape),
                "data": encode(value.ravel().tolist()),
            }
        if isinstance(value, np.generic):
            return encode(value.item())
    if isinstance(value, set | frozenset):
        kind = "frozenset" if isinstance(value, frozenset) else "set"
        return {TAG: kind, "items": encode(sorted(value, key=repr))}
    return {TAG: "repr", "v": repr(value)}


_RECORDS: dict[str, tuple[str, ...]] = {
    "Verdict": ("levels", "reward", "aggregate"),
    "LevelResult": (
        "name",
        "score",
        "passed",
        "findings",
        "skipped",
        "metrics",
        "weight",
        "difficulty",
        "threshold",
        "evidence",
    ),
    "Finding": ("code", "message", "turn"),
    "ToolResult": ("name", "ok", "content", "data", "error", "call_id"),
    "ToolCall": ("name", "arguments", "id"),
}


def _record_classes() -> dict[str, Any]:
    from hiergym.envs.tools import ToolCall, ToolResult
    from hiergym.rewards.levels import Finding, LevelResult, Verdict

    return {
        "Verdict": Verdict,
        "LevelResult": LevelResult,
        "Finding": Finding,
        "ToolResult": ToolResult,
        "ToolCall": ToolCall,
    }


_CLASSES: dict[str, Any] = {}


def decode(value: Any, *, tasks: Mapping[str, Any] | None = None) -> Any:
    """The inverse of :func:`encode`. ``tasks`` maps ``"module:Class"`` to the task classes this
    side accepts (a tagged task of any other type is an error: nothing is imported by name)."""
    if isinstance(value, list):
        return [decode(v, tasks=tasks) for v in value]
    if not isinstance(value, dict):
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: decode(v, tasks=tasks) for k, v in value.items()}
    if kind == "same":  # resolved by the client (the tools it already has)
        return value
    if kind == "float":
        return float(value["v"])
    if kind == "tuple":
        return tuple(decode(v, tasks=tasks) for v in value["items"])
    if kind == "dict":
        return {decode(k, tasks=tasks): decode(v, tasks=tasks) for k, v in value["items"]}
    if kind in ("set", "frozenset"):
        items = decode(value["items"], tasks=tasks)
        return frozenset(items) if kind == "frozenset" else set(items)
    if kind == "ndarray":
        import numpy as np

        return np.asarray(decode(value["data"]), dtype=np.dtype(value["dtype"])).reshape(
            value["shape"]
        )
    if kind == "repr":
        return value["v"]
    if kind == "task":
        cls = (tasks or {}).get(value.get("type"))
        if cls is None:
            raise ValueError(
                f"a task of type {value.get('type')!r} is not accepted here; expected one of "
                f"{sorted(tasks or {})}"
            )
        return cls.from_json(value["json"])
    if kind in _RECORDS:
        if not _CLASSES:
            _CLASSES.update(_record_classes())
        fields = {f: decode(value[f], tasks=tasks) for f in _RECORDS[kind] if f in value}
        for f in ("findings", "evidence", "levels"):
            if isinstance(fields.get(f), list):
                fields[f] = tuple(fields[f])
        return _CLASSES[kind](**fields)
    raise ValueError(f"unknown tag {kind!r} in a hiergym message")


def dumps(value: Any) -> str:
    """Strict JSON (ASCII, no NaN) of :func:`encode` (value)."""
    return json.dumps(encode(value), ensure_ascii=True, allow_nan=False, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Errors


class RemoteError(RuntimeError):
    """The server answered with an error: ``status`` (HTTP), ``code`` and ``message``."""

    def __init__(self, status: int, code: str, message: str, exception: str | None = None):
        super().__init__(f"{code} ({status}): {message}")
        self.status, self.code, self.message, self.exception = status, code, message, exception


class ServerBusy(RemoteError):
    """The server holds ``--max-sessions`` sessions (HTTP 503); retry later or raise the cap."""


def _raise_for(status: int, body: Any) -> None:
    error = body.get("error", {}) if isinstance(body, dict) else {}
    code = str(error.get("code", "HTTP_ERROR"))
    message = str(error.get("message", body))
    exception = error.get("exception")
    if status == 503:
        raise ServerBusy(status, code, message, exception)
    if exception == "ResetNeeded":
        raise gym.error.ResetNeeded(message)
    if exception:
        from hiergym import errors

        cls = getattr(errors, str(exception), None)
        if isinstance(cls, type) and issubclass(cls, errors.HiergymError):
            raise cls(message)
    raise RemoteError(status, code, message, exception)


# --------------------------------------------------------------------------------------------
# The client


def _default(value: str | None, var: str, what: str) -> str:
    value = value or os.environ.get(var)
    if not value:
        raise ValueError(f"RemoteEnv needs {what}: pass it, or set {var}")
    return value


class _Protocol:
    """What the sync and async clients share: request bodies and the parsing of answers."""

    def __init__(
        self,
        url: str | None,
        env_id: str | None,
        token: str | None,
        kwargs: dict[str, Any],
        timeout: float,
    ):
        self.url = _default(url, "HIERGYM_REMOTE_URL", "the server's url").rstrip("/")
        self.env_id = _default(env_id, "HIERGYM_REMOTE_ENV", "an env id (e.g. hiergym/Shopping-v0)")
        self.token = token if token is not None else os.environ.get("HIERGYM_REMOTE_TOKEN")
        self.kwargs = dict(kwargs)
        self.timeout = timeout
        self.session_id: str | None = None
        self.served_id: str | None = None
        self._tools: Any = None
        self._task_classes: dict[str, Any] = {}

    @property
    def headers(self) -> dict[str, str]:
        h = {"content-type": "application/json"}
        if self.token:
            h["authorization"] = f"Bearer {self.token}"
        return h

    def create_body(self) -> str:
        return dumps({"env_id": self.env_id, "kwargs": self.kwargs})

    def created(self, body: dict[str, Any]) -> None:
        self.session_id = body["session_id"]
        self.served_id = body["env_id"]

    def path(self, action: str) -> str:
        return f"{self.url}/sessions/{self.session_id}/{action}"

    def parse(self, body: dict[str, Any]) -> tuple[Any, ...]:
        """(obs, reward, terminated, truncated, info, turn, verdict, end, submission) from a
        result body."""
        obs = body["observation"]
        info = decode(obs["info"])
        tools = info.get("tools")
        if isinstance(tools, dict) and tools.get(TAG) == "same":
            info["tools"] = self._tools
        elif "tools" in info:
            self._tools = tools
        turn = body.get("turn")
        if turn is not None:
            turn = self._turn(turn)
            if body.get("results_in_turn"):
                info["results"] = turn.results
        verdict = decode(body["verdict"]) if body.get("verdict") is not None else None
        return (
            obs["text"],
            float(body.get("reward") or 0.0),
            bool(body.get("terminated")),
            bool(body.get("truncated")),
            info,
            turn,
            verdict,
            body.get("end"),
            decode(body["submission"]) if body.get("submission") is not None else None,
        )

    @staticmethod
    def _turn(data: dict[str, Any]) -> Any:
        from hiergym.envs.core import Turn

        return Turn(
            int(data["index"]),
            data["action"],
            tuple(decode(data["calls"])),
            tuple(decode(data["results"])),
        )


class RemoteEnv(gym.Env[str, Any]):
    """A ``gymnasium.Env`` whose episodes run on a ``hiergym serve`` server (see the module doc).

    Args:
        url: the server, e.g. ``http://127.0.0.1:8000`` (default ``$HIERGYM_REMOTE_URL``).
        env_id: a served id or short name, e.g. ``hiergym/Shopping-v0`` or ``shopping``
            (default ``$HIERGYM_REMOTE_ENV``).
        token: the server's bearer token (default ``$HIERGYM_REMOTE_TOKEN``).
        timeout: seconds per request.
        **kwargs: passed to ``gym.make(env_id, **kwargs)`` on the server (split, difficulty,
            max_turns, aggregate, process_reward, ...).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}
    splits: ClassVar[tuple[str, ...]] = ("train", "dev", "test")
    difficulties: ClassVar[tuple[str, ...]] = ("easy", "medium", "hard")
    remote: ClassVar[bool] = True

    def __init__(
        self,
        url: str | None = None,
        env_id: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        **kwargs: Any,
    ):
        import httpx

        from hiergym.envs.core import CHARSET, MAX_OBSERVATION_CHARS
        from hiergym.envs.spaces import ObservationText
        from hiergym.envs.tools import MAX_ACTION_CHARS

        self._proto = _Protocol(url, env_id, token, kwargs, timeout)
        self.observation_space = ObservationText(max_length=MAX_OBSERVATION_CHARS, charset=CHARSET)
        self.action_space = gym.spaces.Text(max_length=MAX_ACTION_CHARS, charset=CHARSET)
        self._client = httpx.Client(timeout=timeout, headers=self._proto.headers)
        self._local: Any = None
        self._clear_episode()
        self._proto.created(
            self._request("POST", f"{self._proto.url}/sessions", self._proto.create_body())
        )

    # ---- gymnasium API --------------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        super().reset(seed=seed)
        body = self._request("POST", self._proto.path("reset"), _reset_body(seed, options))
        obs, _, _, _, info, *_ = self._proto.parse(body)
        self._start_episode(info, options)
        return obs, info

    def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        body = self._request("POST", self._proto.path("step"), dumps({"action": action}))
        return self._stepped(self._proto.parse(body))

    def close(self) -> None:
        if self._proto.session_id is not None and not self._client.is_closed:
            with contextlib.suppress(Exception):  # the server may be gone already; nothing to free
                self._client.delete(f"{self._proto.url}/sessions/{self._proto.session_id}")
            self._proto.session_id = None
        if not self._client.is_closed:
            self._client.close()
        if self._local is not None:
            self._local.close()
            self._local = None

    def __del__(self) -> None:
        with contextlib.suppress(Exception):  # interpreter shutdown
            self.close()

    # ---- beyond gymnasium ----------------------------------------------------------------

    @property
    def session_id(self) -> str | None:
        return self._proto.session_id

    @property
    def served_id(self) -> str | None:
        """The id the server resolved ``env_id`` to (``shopping`` -> ``hiergym/Shopping-v0``)."""
        return self._proto.served_id

    def state(self) -> dict[str, Any]:
        """The session's state: ``episode_id``, ``step_count``, ``task_id``, ``done``, ..."""
        return self._request("GET", self._proto.path("state"))

    @property
    def task(self) -> Any:
        """The current task, as the server holds it (fetched once per episode)."""
        if self._task is None and self._task_id is not None:
            body = self._request("GET", self._proto.path("state") + "?task=1")
            self._task = self._decode_task(body["task"])
        return self._task

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self._messages)

    @property
    def local(self) -> Any:
        """A local copy of the env (``gym.make(served_id, **kwargs).unwrapped``), built on first
        use, for the white-box helpers below. Episodes never run on it."""
        if self._local is None:
            import hiergym  # noqa: F401 - registers the ids

            self._local = gym.make(self._proto.served_id, **self._proto.kwargs).unwrapped
        return self._local

    def make_oracle(self) -> Any:
        return self.local.make_oracle()

    def mutants(self) -> list[Any]:
        return self.local.mutants()

    def attacks(self) -> list[Any]:
        return self.local.attacks()

    def twins(self) -> list[Any]:
        return self.local.twins()

    def turn_checks(self) -> list[Any]:
        return self.local.turn_checks()

    @property
    def toolbox(self) -> Any:
        return self.local.toolbox

    @property
    def tasks(self) -> Any:
        return self.local.tasks

    @property
    def sandbox(self) -> Any:
        return self.local.sandbox

    @property
    def verifier(self) -> Any:
        return self.local.verifier

    @property
    def max_turns(self) -> int:
        return int(self.local.max_turns)

    # ---- internals -------------------------------------------------------------------------

    def _request(self, method: str, url: str, content: str | None = None) -> Any:
        r = self._client.request(method, url, content=content)
        return _answer(r.status_code, r.content)

    def _clear_episode(self) -> None:
        self.trajectory: Any = None
        self.verdict: Any = None
        self._task: Any = None
        self._task_id: Any = None
        self._messages: list[dict[str, Any]] = []

    def _start_episode(self, info: dict[str, Any], options: dict[str, Any] | None) -> None:
        from hiergym.envs.core import Trajectory

        self._clear_episode()
        self._task_id = info.get("task_id")
        if options and "task" in options:
            self._task = options["task"]
        self.trajectory = Trajectory(self._task if self._task is not None else _LazyTask(self))
        self._messages = list(info.get("messages", []))

    def _stepped(self, parsed: tuple[Any, ...]) -> tuple[str, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info, turn, verdict, end, submission = parsed
        if self.trajectory is not None and turn is not None:
            self.trajectory.turns.append(turn)
            self._messages.extend(info.get("new_messages", []))
            if submission is not None:
                self.trajectory.submission = submission
            if end is not None:
                self.trajectory.end = end
        if verdict is not None:
            self.verdict = verdict
        return obs, reward, terminated, truncated, info

    def _decode_task(self, data: Any) -> Any:
        local_cls = type(self.local.tasks.tasks[0])
        name = f"{local_cls.__module__}:{local_cls.__qualname__}"
        return decode(data, tasks={name: local_cls})


class _LazyTask:
    """The trajectory's task on the client: the real task object once anything reads it."""

    __slots__ = ("_env",)

    def __init__(self, env: RemoteEnv):
        self._env = env

    def __getattr__(self, name: str) -> Any:
        return getattr(self._env.task, name)


def _reset_body(seed: int | None, options: dict[str, Any] | None) -> str:
    return dumps({"seed": seed, "options": options or {}})


def _answer(status: int, content: bytes) -> Any:
    try:
        body = json.loads(content) if content else {}
    except ValueError:
        body = {"error": {"code": "BAD_RESPONSE", "message": content[:300].decode("latin-1")}}
    if status >= 400:
        _raise_for(status, body)
    return body


class AsyncRemoteEnv:
    """The async twin of :class:`RemoteEnv` (httpx.AsyncClient): ``await reset/step/close``.

    Create it with ``await AsyncRemoteEnv.create(url, env_id, **kwargs)`` or
    ``async with AsyncRemoteEnv(url, env_id, **kwargs) as env``. It returns what RemoteEnv returns
    (the verdict rebuilt, results as ToolResults); ``trajectory`` and ``verdict`` mirror the server.
    """

    def __init__(
        self,
        url: str | None = None,
        env_id: str | None = None,
        token: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        client: Any = None,
        **kwargs: Any,
    ):
        import httpx

        self._proto = _Protocol(url, env_id, token, kwargs, timeout)
        self._own_client = client is None
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self.trajectory: Any = None
        self.verdict: Any = None
        self._messages: list[dict[str, Any]] = []

    @classmethod
    async def create(cls, *args: Any, **kwargs: Any) -> AsyncRemoteEnv:
        env = cls(*args, **kwargs)
        await env.open()
        return env

    async def open(self) -> None:
        if self._proto.session_id is None:
            self._proto.created(
                await self._request(
                    "POST", f"{self._proto.url}/sessions", self._proto.create_body()
                )
            )

    async def __aenter__(self) -> AsyncRemoteEnv:
        await self.open()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session_id(self) -> str | None:
        return self._proto.session_id

    async def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        from hiergym.envs.core import Trajectory

        await self.open()
        body = await self._request("POST", self._proto.path("reset"), _reset_body(seed, options))
        obs, _, _, _, info, *_ = self._proto.parse(body)
        task = options.get("task") if options else None
        self.trajectory = Trajectory(task if task is not None else info.get("task_id"))
        self.verdict = None
        self._messages = list(info.get("messages", []))
        return obs, info

    async def step(self, action: Any) -> tuple[str, float, bool, bool, dict[str, Any]]:
        body = await self._request("POST", self._proto.path("step"), dumps({"action": action}))
        obs, reward, terminated, truncated, info, turn, verdict, end, submission = (
            self._proto.parse(body)
        )
        if self.trajectory is not None and turn is not None:
            self.trajectory.turns.append(turn)
            self._messages.extend(info.get("new_messages", []))
            if submission is not None:
                self.trajectory.submission = submission
            if end is not None:
                self.trajectory.end = end
        if verdict is not None:
            self.verdict = verdict
        return obs, reward, terminated, truncated, info

    async def state(self) -> dict[str, Any]:
        return await self._request("GET", self._proto.path("state"))

    async def close(self) -> None:
        if self._proto.session_id is not None:
            with contextlib.suppress(Exception):  # the server may be gone already
                await self._client.delete(
                    f"{self._proto.url}/sessions/{self._proto.session_id}",
                    headers=self._proto.headers,
                )
            self._proto.session_id = None
        if self._own_client:
            await self._client.aclose()

    async def _request(self, method: str, url: str, content: str | None = None) -> Any:
        r = await self._client.request(method, url, content=content, headers=self._proto.headers)
        return _answer(r.status_code, r.content)


def make_remote(env_class: str | None = None, **kwargs: Any) -> RemoteEnv:
    """The entry point of ``hiergym/Remote-v0``. ``env_class`` (in the spec's kwargs for tools that
    read ``spec.kwargs["env_class"]``, like hiergym.testing) is not an env argument."""
    return RemoteEnv(**kwargs)


def register() -> None:
    """Register ``hiergym/Remote-v0`` (called by ``import hiergym``; cheap: nothing is imported)."""
    if "hiergym/Remote-v0" not in gym.registry:
        gym.register(
            id="hiergym/Remote-v0",
            entry_point="hiergym.remote:make_remote",
            kwargs={"env_class": "hiergym.remote:RemoteEnv"},
            disable_env_checker=False,
        )
