"""``hiergym serve``: hiergym envs over HTTP and WebSocket, one env per session (FastAPI + uvicorn).

Start it with ``hiergym serve --envs shopping,travel --port 8000`` (loopback only unless a token
is set) and connect with :class:`hiergym.remote.RemoteEnv`, with OpenEnv's ``GenericEnvClient``, or
with any WebSocket/HTTP client.

Protocol
--------
Every body is JSON. hiergym objects inside ``info`` are tagged (``{"__hg__": "Verdict", "reward",
"aggregate", "levels": [...]}``, ``ToolResult``, ``ToolCall``, ``LevelResult``, ``Finding``, ``tuple``,
non-finite ``float``); :func:`hiergym.remote.decode` rebuilds them, other clients can read them as
they are. An action is text, a tool call ``{"name", "arguments"}``, an OpenAI assistant message, or
a list of those (``RemoteEnv`` also sends tagged ``ToolCall`` objects).

A **result** (what reset and step answer)::

    {"observation": {"text": OBS, "info": INFO}, "reward": R, "done": BOOL,
     "terminated": BOOL, "truncated": BOOL,
     "turn": {"index", "action", "calls", "results"},     # step only: the turn it recorded
     "verdict": VERDICT, "end": "submitted"|"max_turns", "submission": TOOLCALL}  # final step

``INFO`` is the env's info; ``info["tools"]`` is sent on reset and replaced by
``{"__hg__": "same"}`` while the schemas do not change, and on a step that recorded a turn
``info["results"]`` is left out (``results_in_turn: true``): they are ``turn["results"]``.
``verdict`` is the env's own verdict, ``info["verdict"]`` the one the reward wrapper paid.

**WebSocket** (OpenEnv's message protocol): ``/ws?env_id=ID`` (or ``/envs/NAME/ws``; plain ``/ws``
when one env is served). Other query parameters are env kwargs (strings), ``kwargs=JSON`` typed
ones. The connection is the session: its env is made on connect and closed on disconnect (its
worker processes too). Messages::

    -> {"type": "reset", "data": {"seed": 7, "options": {...}}}
    -> {"type": "step",  "data": {"action": ACTION}}   # or {"text": ...} or the call itself
    -> {"type": "state"}            -> {"type": "close"}
    <- {"type": "observation", "data": RESULT}
    <- {"type": "state", "data": {"episode_id", "step_count", "env_id", "task_id", "done", ...}}
    <- {"type": "error", "data": {"message", "code", "status", "exception"}}

Error codes follow OpenEnv's (``INVALID_JSON``, ``UNKNOWN_TYPE``, ``VALIDATION_ERROR``,
``EXECUTION_ERROR``, ``CAPACITY_REACHED``, ``FACTORY_ERROR``, ``SESSION_ERROR``) plus ``UNKNOWN_ENV``;
a full server sends ``CAPACITY_REACHED`` (status 503) and closes with code 1013; an idle session
is closed with code 1001.

**HTTP** (stateful sessions; OpenEnv's HTTP ``/reset`` and ``/step`` are stateless, so these differ)::

    POST   /sessions               {"env_id": ID, "kwargs": {...}}  -> 201 {"session_id", "env_id"}
    POST   /sessions/{sid}/reset   {"seed": 7, "options": {...}}    -> RESULT
    POST   /sessions/{sid}/step    {"action": ACTION}               -> RESULT
    GET    /sessions/{sid}/state   [?task=1: the task, tagged]      -> state
    DELETE /sessions/{sid}                                          -> {"closed": true}
    GET    /envs  /health  /metrics

Errors are ``{"error": {"code", "message", "exception"?}}`` with 400 (bad request or env
arguments), 401 (token), 404 (unknown env id: did-you-mean; unknown or closed session: why),
409 (step before reset), 413 (request over ``--max-request-bytes``), 503 (``--max-sessions``
reached; ``Retry-After``), 500 (the env raised: ``exception`` names the class, e.g.
``VerifierError``). Nothing a client sends stops the server or another session.

Sessions: an idle one (no request for ``--idle-timeout`` seconds) is closed and its env freed;
``/metrics`` reports sessions (active, created, closed, idle-closed, rejected), steps (total, per
second over the last 10 s), server-side latency percentiles of step and reset, the server's RSS
and its child processes (Geometry's python workers), and the garbage collector's state
(:class:`GcPolicy`: frozen and tracked objects, full collections). Auth: ``--token`` (or
``HIERGYM_SERVE_TOKEN``) requires ``Authorization: Bearer TOKEN`` on every route but ``/health``
(compared with :func:`hmac.compare_digest`); without a token the server binds loopback only.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import difflib
import gc
import hmac
import ipaddress
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response

from hiergym.errors import did_you_mean
from hiergym.remote import TAG, decode, encode

log = logging.getLogger("hiergym.server")

TOKEN_ENV = "HIERGYM_SERVE_TOKEN"


INLINE = ("hiergym/Shopping-v0", "hiergym/Travel-v0", "hiergym/TravelPlanner-v0")


@dataclass
class ServeConfig:
    """What ``hiergym serve`` is configured with (its command-line flags)."""

    envs: tuple[str, ...] = ()
    """Served ids or short names; empty: every registered id."""
    max_sessions: int = 1024
    token: str | None = None
    idle_timeout: float = 600.0
    max_request_bytes: int = 1 << 20
    """Largest request body or WebSocket message; an action over the env's own cap (32,000
    characters) still reaches the env and comes back as an error observation."""
    threads: int = 16
    """Env calls run in a thread pool of this size (a slow tool never stalls other sessions);
    0 runs every call on the event loop."""
    inline: tuple[str, ...] = INLINE
    """Ids whose calls run on the event loop instead: their tools are in-process lookups of a
    millisecond or less, and a thread hop (GIL hand-offs of up to 5 ms under load) would cost
    more than the call. Envs whose tools start processes (RTL, Geometry) are never listed."""
    full_gc_s: float = 600.0
    """The cyclic garbage collector's policy (:class:`GcPolicy`): every object alive at start-up and
    at each tick of a second is frozen (``gc.freeze``), so Python's collections scan only what
    the last second made, and the whole heap is collected once every ``full_gc_s`` seconds.
    ``0``: Python's default collector (whose full collections of a heap holding 1,024 sessions
    stall every session for 0.3-1 s)."""


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        exception: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.exception, self.headers = exception, headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.exception:
            error["exception"] = self.exception
        return {"error": error}


def _env_error(e: Exception) -> ApiError:
    import gymnasium as gym

    from hiergym.errors import TaskError, ToolError

    name = type(e).__name__
    if isinstance(e, gym.error.ResetNeeded):
        return ApiError(409, "SESSION_ERROR", f"{e}; call reset first", "ResetNeeded")
    if isinstance(e, TaskError | ToolError):  # the client asked for something that is not there
        return ApiError(400, "VALIDATION_ERROR", f"{name}: {e}", name)
    return ApiError(500, "EXECUTION_ERROR", f"the env raised {name}: {e}", name)


# --------------------------------------------------------------------------------------------
# Sessions


@dataclass
class Session:
    id: str
    env_id: str
    kwargs: dict[str, Any]
    env: Any
    transport: str
    created: float = field(default_factory=time.monotonic)
    last_active: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    episode: int = 0
    steps: int = 0
    done: bool = False
    closed: str | None = None
    tools_sent: Any = None
    ws: Any = None
    inline: bool = False


class Metrics:
    WINDOW = 10.0

    def __init__(self) -> None:
        self.step_ms: collections.deque[float] = collections.deque(maxlen=20_000)
        self.reset_ms: collections.deque[float] = collections.deque(maxlen=5_000)
        self.step_times: collections.deque[float] = collections.deque(maxlen=200_000)
        self.counts = collections.Counter()
        self.started = time.monotonic()

    def record(self, kind: str, ms: float) -> None:
        self.counts[kind + "s"] += 1
        if kind == "step":
            self.step_ms.append(ms)
            self.step_times.append(time.monotonic())
        else:
            self.reset_ms.append(ms)

    def steps_per_s(self) -> float:
        now = time.monotonic()
        window = min(self.WINDOW, max(now - self.started, 1e-9))
        times = self.step_times
        n = 0
        for t in reversed(times):
            if t < now - window:
                break
            n += 1
        return n / window


def percentiles(values: Any) -> dict[str, float | int]:
    data = sorted(values)
    if not data:
        return {"n": 0}

    def q(p: float) -> float:
        return round(data[min(len(data) - 1, int(p * len(data)))], 3)

    return {"n": len(data), "p50": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(data[-1], 3)}


class GcPolicy:
    """Keeps Python's cyclic collector off the long-lived heap of a server holding many sessions.

    Why: with 1,024 sessions the heap holds 300-400k tracked objects, and Python starts a full
    (generation 2) collection each time the objects that survived younger collections grow by
    a quarter of it; each stops the event loop, and so every session, for 0.3 s idle and over
    1 s under load (measured with ``gc.callbacks`` in ``perf serve``), which was the step
    latency's p99. ``tick`` freezes what is alive (``gc.freeze``: O(1), and frozen objects are
    still freed by reference counting when a session drops them), so a collection scans only
    what was made since the last tick. What freezing cannot free is cyclic garbage among frozen
    objects: every ``full_s`` seconds the heap is unfrozen and collected once (one pause in that
    interval), then frozen again."""

    def __init__(self, full_s: float, clock: Any = time.monotonic) -> None:
        self.full_s = full_s
        self.clock = clock
        self.last_full = clock()
        self.full_collections = 0
        self.last_full_ms: float | None = None

    @property
    def enabled(self) -> bool:
        return self.full_s > 0

    def start(self) -> None:
        """At start-up: what was imported and preloaded is collected once and frozen."""
        if self.enabled:
            gc.collect()
            gc.freeze()
            self.last_full = self.clock()

    def tick(self) -> None:
        if not self.enabled:
            return
        if self.clock() - self.last_full >= self.full_s:
            start = time.perf_counter()
            gc.unfreeze()
            gc.collect()
            self.last_full_ms = (time.perf_counter() - start) * 1000
            self.full_collections += 1
            self.last_full = self.clock()
        gc.freeze()

    def stop(self) -> None:
        if self.enabled:
            gc.unfreeze()

    def metrics(self) -> dict[str, Any]:
        return {
            "policy": "freeze" if self.enabled else "python",
            "frozen": gc.get_freeze_count(),
            "tracked": len(gc.get_objects()),
            "full_every_s": self.full_s,
            "full_collections": self.full_collections,
            "last_full_ms": None if self.last_full_ms is None else round(self.last_full_ms, 1),
            "collections": [g["collections"] for g in gc.get_stats()],
        }

    async def run(self, every: float = 1.0) -> None:
        while True:
            await asyncio.sleep(every)
            self.tick()


class SessionStore:
    """Live sessions, their creation under ``max_sessions`` and their clean-up."""

    RECENT = 4096

    def __init__(self, config: ServeConfig, served: dict[str, str]):
        import anyio

        self.config = config
        self.served = served  # every accepted name (ids and short names) -> id
        self.sessions: dict[str, Session] = {}
        self.pending = 0
        self.recent: collections.OrderedDict[str, str] = collections.OrderedDict()
        self.metrics = Metrics()
        self.gc = GcPolicy(config.full_gc_s)
        self.limiter = anyio.CapacityLimiter(max(1, config.threads))

    async def call(self, fn: Any, *args: Any, inline: bool = False) -> Any:
        import anyio

        if inline or self.config.threads <= 0:
            return fn(*args)
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)

    def resolve(self, name: str | None) -> str:
        if not name:
            ids = sorted(set(self.served.values()))
            if len(ids) == 1:
                return ids[0]
            raise ApiError(400, "VALIDATION_ERROR", f"say which env: env_id is one of {ids}")
        if name in self.served:
            return self.served[name]
        if name.lower() in self.served:
            return self.served[name.lower()]
        ids = sorted(set(self.served.values()))
        raise ApiError(
            404,
            "UNKNOWN_ENV",
            f"no env {name!r} is served here{did_you_mean(name, list(self.served))}; "
            f"served: {', '.join(ids)}",
        )

    async def create(self, env_id: str | None, kwargs: Any, transport: str) -> Session:
        resolved = self.resolve(env_id)
        if not isinstance(kwargs, dict):
            raise ApiError(400, "VALIDATION_ERROR", f"kwargs must be an object, got {kwargs!r}")
        if len(self.sessions) + self.pending >= self.config.max_sessions:
            self.metrics.counts["rejected"] += 1
            raise ApiError(
                503,
                "CAPACITY_REACHED",
                f"the server holds its maximum of {self.config.max_sessions} sessions "
                "(--max-sessions); close one or retry later",
                headers={"Retry-After": "5"},
            )
        self.pending += 1
        try:
            env = await self.call(_make, resolved, kwargs)
        finally:
            self.pending -= 1
        sid = secrets.token_urlsafe(16)
        session = Session(sid, resolved, kwargs, env, transport)
        session.inline = resolved in self.config.inline
        self.sessions[sid] = session
        self.metrics.counts["created"] += 1
        return session

    def get(self, sid: str) -> Session:
        session = self.sessions.get(sid)
        if session is not None:
            return session
        why = self.recent.get(sid)
        if why is not None:
            raise ApiError(404, "SESSION_ERROR", f"session {sid!r} was closed: {why}")
        raise ApiError(
            404,
            "SESSION_ERROR",
            f"no session {sid!r} on this server (ids come from POST /sessions; sessions idle "
            f"for {self.config.idle_timeout:g} s are closed, as are all sessions on a restart)",
        )

    async def run(self, session: Session, fn: Any, *args: Any) -> Any:
        async with session.lock:
            if session.closed is not None:
                raise ApiError(404, "SESSION_ERROR", f"session was closed: {session.closed}")
            session.last_active = time.monotonic()
            try:
                return await self.call(fn, *args, inline=session.inline)
            finally:
                session.last_active = time.monotonic()

    async def close(self, session: Session, reason: str) -> None:
        if session.closed is not None:
            return
        session.closed = reason
        self.sessions.pop(session.id, None)
        self.recent[session.id] = reason
        while len(self.recent) > self.RECENT:
            self.recent.popitem(last=False)
        self.metrics.counts["closed"] += 1
        async with session.lock:  # an in-flight step finishes first
            try:
                await self.call(session.env.close)
            except Exception:  # noqa: BLE001 - a failing close must not keep the session alive
                log.exception("closing session %s (%s) failed", session.id, session.env_id)

    async def reap(self) -> None:
        """Close every session idle for longer than the idle timeout, every few seconds."""
        timeout = self.config.idle_timeout
        while True:
            await asyncio.sleep(min(5.0, max(timeout / 4, 0.05)))
            now = time.monotonic()
            for session in list(self.sessions.values()):
                if now - session.last_active > timeout and not session.lock.locked():
                    self.metrics.counts["idle_closed"] += 1
                    reason = f"idle for more than {timeout:g} s (--idle-timeout)"
                    await self.close(session, reason)
                    if session.ws is not None:
                        with contextlib.suppress(Exception):  # the peer may be gone
                            await session.ws.close(code=1001, reason="idle timeout")

    async def close_all(self) -> None:
        for session in list(self.sessions.values()):
            await self.close(session, "the server shut down")


def _make(env_id: str, kwargs: dict[str, Any]) -> Any:
    import gymnasium as gym

    from hiergym.errors import HiergymError

    try:
        # Gymnasium's passive checker wrapper only warns, and after a reset that raised (an
        # unknown task_id) it breaks the next step; the client's own gym.make checks anyway.
        return gym.make(env_id, disable_env_checker=True, **kwargs)
    except (TypeError, ValueError, HiergymError) as e:
        raise ApiError(
            400, "FACTORY_ERROR", f"gym.make({env_id!r}, ...) failed: {e}", type(e).__name__
        ) from e
    except Exception as e:
        raise ApiError(
            500,
            "FACTORY_ERROR",
            f"gym.make({env_id!r}) raised {type(e).__name__}: {e}",
            type(e).__name__,
        ) from e


# --------------------------------------------------------------------------------------------
# The env calls (run in the thread pool) and their answers as JSON text


def _do_reset(session: Session, seed: Any, options: Any) -> str:
    env = session.env
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ApiError(
            400, "VALIDATION_ERROR", f"seed must be a non-negative integer, got {seed!r}"
        )
    if not isinstance(options, dict):
        raise ApiError(400, "VALIDATION_ERROR", f"options must be an object, got {options!r}")
    base = env.unwrapped
    try:
        options = decode(options, tasks=_task_classes(base))
    except (ValueError, KeyError, TypeError) as e:
        raise ApiError(400, "VALIDATION_ERROR", f"bad options: {e}") from e
    try:
        obs, info = env.reset(seed=seed, options=options or None)
    except Exception as e:
        raise _env_error(e) from e
    session.episode += 1
    session.steps = 0
    session.done = False
    session.tools_sent = None
    return _result(session, obs, 0.0, False, False, info, None)


def _task_classes(base: Any) -> dict[str, Any]:
    tasks = getattr(getattr(base, "tasks", None), "tasks", None)
    if not tasks:
        return {}
    cls = type(tasks[0])
    return {f"{cls.__module__}:{cls.__qualname__}": cls}


def _do_step(session: Session, action: Any) -> str:
    env = session.env
    base = env.unwrapped
    try:
        action = decode(action)
    except (ValueError, KeyError, TypeError) as e:
        raise ApiError(400, "VALIDATION_ERROR", f"bad action: {e}") from e
    trajectory = getattr(base, "trajectory", None)
    before = len(trajectory.turns) if trajectory is not None else 0
    try:
        obs, reward, terminated, truncated, info = env.step(action)
    except Exception as e:
        raise _env_error(e) from e
    trajectory = getattr(base, "trajectory", None)
    turn = None
    if trajectory is not None and len(trajectory.turns) > before:
        turn = trajectory.turns[-1]
    session.steps += 1
    session.done = bool(terminated or truncated)
    return _result(session, obs, reward, terminated, truncated, info, turn)


def _result(
    session: Session,
    obs: Any,
    reward: float,
    terminated: bool,
    truncated: bool,
    info: dict[str, Any],
    turn: Any,
) -> str:
    info = dict(info)
    tools = info.get("tools")
    if tools is not None:
        if session.tools_sent is not None and (
            tools is session.tools_sent or tools == session.tools_sent
        ):
            info["tools"] = {TAG: "same"}
        else:
            session.tools_sent = tools
    body: dict[str, Any] = {
        "observation": {"text": obs, "info": None},
        "reward": float(reward),
        "done": bool(terminated or truncated),
        "terminated": bool(terminated),
        "truncated": bool(truncated),
    }
    if turn is not None:
        if info.get("results") is turn.results:
            del info["results"]
            body["results_in_turn"] = True
        body["turn"] = {
            "index": turn.index,
            "action": turn.action,
            "calls": list(turn.calls),
            "results": list(turn.results),
        }
        if terminated or truncated:
            base = session.env.unwrapped
            trajectory = base.trajectory
            body["verdict"] = getattr(base, "verdict", None)
            body["end"] = trajectory.end
            body["submission"] = trajectory.submission
    same_tools = info.get("tools") == {TAG: "same"}
    if same_tools:
        del info["tools"]
    body["observation"]["info"] = info
    data = encode(body)
    if same_tools:
        data["observation"]["info"]["tools"] = {TAG: "same"}
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def _state(session: Session, with_task: bool) -> dict[str, Any]:
    base = session.env.unwrapped
    task = getattr(base, "task", None)
    trajectory = getattr(base, "trajectory", None)
    state: dict[str, Any] = {
        "session_id": session.id,
        "episode_id": f"{session.id}-{session.episode}",
        "episode": session.episode,
        "step_count": len(trajectory.turns) if trajectory is not None else 0,
        "steps": session.steps,
        "env_id": session.env_id,
        "kwargs": session.kwargs,
        "task_id": getattr(task, "task_id", None),
        "done": session.done,
        "end": getattr(trajectory, "end", None),
        "idle_s": round(time.monotonic() - session.last_active, 3),
        "transport": session.transport,
    }
    sandbox = getattr(base, "sandbox", None)
    if sandbox is not None and isinstance(getattr(sandbox, "stats", None), dict):
        state["sandbox_stats"] = dict(sandbox.stats)
    if with_task and task is not None:
        state["task"] = encode(task)
    return state


# --------------------------------------------------------------------------------------------
# The app


class Guard:
    """Bearer-token auth (constant-time compare) and the request-size cap, as ASGI middleware."""

    def __init__(self, app: Any, token: str | None, max_bytes: int):
        self.app = app
        self.token = token.encode() if token else None
        self.max_bytes = max_bytes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope.get("path") != "/health":
            auth = headers.get(b"authorization", b"")
            given = auth[7:] if auth[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self.token):
                if kind == "websocket":
                    await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
                    return None
                return await _send_json(
                    send,
                    401,
                    {
                        "error": {
                            "code": "UNAUTHORIZED",
                            "message": "a valid 'Authorization: Bearer <token>' header is required",
                        }
                    },
                    {"www-authenticate": "Bearer"},
                )
        if kind == "http":
            length = headers.get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                return await _send_json(send, 413, _too_large(int(length), self.max_bytes))
        return await self.app(scope, receive, send)


def _too_large(size: int, cap: int) -> dict[str, Any]:
    return {
        "error": {
            "code": "REQUEST_TOO_LARGE",
            "message": f"the request is {size:,} bytes; the cap is {cap:,} (--max-request-bytes)",
        }
    }


async def _send_json(
    send: Any, status: int, body: Any, headers: dict[str, str] | None = None
) -> None:
    raw = json.dumps(body).encode()
    hdrs = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    hdrs += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": hdrs})
    await send({"type": "http.response.body", "body": raw})


def served_names(envs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """Every name a client may use for the served envs (ids and short names) -> id."""
    import hiergym  # noqa: F401 - registers the ids
    from hiergym.envs.registry import list_envs, resolve_env_id

    ids = [resolve_env_id(e) for e in envs] if envs else [e.env_id for e in list_envs()]
    names: dict[str, str] = {}
    for env_id in ids:
        names[env_id] = env_id
        names[env_id.split("/", 1)[-1].split("-v")[0].lower()] = env_id
    return names


def create_app(config: ServeConfig | None = None) -> Any:
    """The FastAPI app of ``hiergym serve`` (see the module docstring for the protocol)."""
    config = config or ServeConfig()
    store = SessionStore(config, served_names(config.envs))

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> Any:
        store.gc.start()
        tasks = [asyncio.create_task(store.reap()), asyncio.create_task(store.gc.run())]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            await store.close_all()
            store.gc.stop()

    app = FastAPI(title="hiergym serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.store = store
    app.add_middleware(Guard, token=config.token, max_bytes=config.max_request_bytes)

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, e: ApiError) -> Any:
        return JSONResponse(e.body(), status_code=e.status, headers=e.headers)

    @app.exception_handler(Exception)
    async def _crash(request: Any, e: Exception) -> Any:  # a server bug: answered, logged
        log.exception("request %s failed", request.url.path)
        return JSONResponse(
            {"error": {"code": "INTERNAL", "message": f"{type(e).__name__}: {e}"}}, status_code=500
        )

    def text(body: str, status: int = 200) -> Any:
        return Response(body, status_code=status, media_type="application/json")

    async def read_json(request: Request) -> dict[str, Any]:
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > config.max_request_bytes:
                raise ApiError(
                    413,
                    "REQUEST_TOO_LARGE",
                    _too_large(size, config.max_request_bytes)["error"]["message"],
                )
            chunks.append(chunk)
        raw = b"".join(chunks)
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise ApiError(400, "INVALID_JSON", f"the body is not JSON: {e}") from e
        if not isinstance(body, dict):
            raise ApiError(400, "VALIDATION_ERROR", "the body must be a JSON object")
        return body

    @app.get("/health")
    async def health() -> Any:
        return {
            "status": "healthy",
            "sessions": len(store.sessions),
            "max_sessions": config.max_sessions,
        }

    @app.get("/envs")
    async def envs() -> Any:
        return {"envs": sorted(set(store.served.values()))}

    @app.get("/metrics")
    async def metrics() -> Any:
        return _metrics(store)

    @app.post("/sessions", status_code=201)
    async def create(request: Request) -> Any:
        body = await read_json(request)
        session = await store.create(body.get("env_id"), body.get("kwargs", {}), "http")
        return {"session_id": session.id, "env_id": session.env_id}

    @app.post("/sessions/{sid}/reset")
    async def reset(sid: str, request: Request) -> Any:
        body = await read_json(request)
        session = store.get(sid)
        t = time.perf_counter()
        out = await store.run(
            session, _do_reset, session, body.get("seed"), body.get("options") or {}
        )
        store.metrics.record("reset", (time.perf_counter() - t) * 1e3)
        return text(out)

    @app.post("/sessions/{sid}/step")
    async def step(sid: str, request: Request) -> Any:
        body = await read_json(request)
        session = store.get(sid)
        if "action" not in body:
            raise ApiError(400, "VALIDATION_ERROR", 'the body must be {"action": ...}')
        t = time.perf_counter()
        try:
            out = await store.run(session, _do_step, session, body["action"])
        except ApiError:
            store.metrics.counts["step_errors"] += 1
            raise
        store.metrics.record("step", (time.perf_counter() - t) * 1e3)
        return text(out)

    @app.get("/sessions/{sid}/state")
    async def state(sid: str, task: int = 0) -> Any:
        session = store.get(sid)
        return await store.run(session, _state, session, bool(task))

    @app.delete("/sessions/{sid}")
    async def delete(sid: str) -> Any:
        session = store.get(sid)
        await store.close(session, "closed by the client")
        return {"closed": True}

    async def websocket_session(websocket: WebSocket, env_id: str | None) -> None:
        await websocket.accept()
        params = dict(websocket.query_params)
        params.pop("env_id", None)
        try:
            kwargs = json.loads(params.pop("kwargs", "{}"))
            if not isinstance(kwargs, dict):
                raise ValueError("kwargs must be a JSON object")
            kwargs.update(params)
            session = await store.create(env_id, kwargs, "ws")
        except (ApiError, ValueError) as e:
            err = e if isinstance(e, ApiError) else ApiError(400, "VALIDATION_ERROR", str(e))
            await _ws_error(websocket, err)
            await websocket.close(code=1013 if err.status == 503 else 1008)
            return
        session.ws = websocket
        try:
            while True:
                raw = await websocket.receive_text()
                reply = await _ws_message(store, session, raw)
                if reply is None:
                    break
                await websocket.send_text(reply)
        except (WebSocketDisconnect, RuntimeError):  # gone, or closed under us (idle timeout)
            pass
        finally:
            await store.close(session, "the client disconnected")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close()

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket_session(websocket, websocket.query_params.get("env_id"))

    @app.websocket("/envs/{name}/ws")
    async def ws_env(websocket: WebSocket, name: str) -> None:
        await websocket_session(websocket, name)

    routes = ["/health", "/envs", "/metrics", "/sessions", "/ws"]
    actions = ["reset", "step", "state"]

    @app.api_route("/{path:path}", methods=["GET", "POST", "PUT", "DELETE", "PATCH"])
    async def unknown(path: str) -> Any:
        parts = path.strip("/").split("/")
        if len(parts) == 3 and parts[0] == "sessions":
            hint = did_you_mean(parts[2], actions) or f"; a session has {', '.join(actions)}"
        else:
            close = difflib.get_close_matches("/" + path, routes, n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else f"; routes: {', '.join(routes)}"
        raise ApiError(404, "NOT_FOUND", f"no route /{path}{hint}")

    return app


async def _ws_error(websocket: Any, e: ApiError) -> None:
    data: dict[str, Any] = {"message": e.message, "code": e.code, "status": e.status}
    if e.exception:
        data["exception"] = e.exception
    await websocket.send_text(json.dumps({"type": "error", "data": data}))


def _ws_error_text(e: ApiError) -> str:
    data: dict[str, Any] = {"message": e.message, "code": e.code, "status": e.status}
    if e.exception:
        data["exception"] = e.exception
    return json.dumps({"type": "error", "data": data})


async def _ws_message(store: SessionStore, session: Session, raw: str) -> str | None:
    """The answer to one WebSocket message (None: the client closed the session)."""
    if len(raw) > store.config.max_request_bytes:
        return _ws_error_text(
            ApiError(
                413,
                "VALIDATION_ERROR",
                _too_large(len(raw), store.config.max_request_bytes)["error"]["message"],
            )
        )
    try:
        message = json.loads(raw)
    except ValueError as e:
        return _ws_error_text(ApiError(400, "INVALID_JSON", f"Invalid JSON: {e}"))
    if not isinstance(message, dict):
        return _ws_error_text(ApiError(400, "VALIDATION_ERROR", "a message is a JSON object"))
    kind = message.get("type")
    data = message.get("data") or {}
    t = time.perf_counter()
    try:
        if not isinstance(data, dict):
            raise ApiError(400, "VALIDATION_ERROR", "data must be a JSON object")
        if kind == "reset":
            out = await store.run(
                session, _do_reset, session, data.get("seed"), data.get("options") or {}
            )
            store.metrics.record("reset", (time.perf_counter() - t) * 1e3)
        elif kind == "step":
            action = _ws_action(data)
            out = await store.run(session, _do_step, session, action)
            store.metrics.record("step", (time.perf_counter() - t) * 1e3)
        elif kind == "state":
            state = await store.run(session, _state, session, bool(data.get("task")))
            return json.dumps({"type": "state", "data": state})
        elif kind == "close":
            return None
        else:
            raise ApiError(
                400,
                "UNKNOWN_TYPE",
                f"Unknown message type: {kind!r}"
                f"{did_you_mean(str(kind), ['reset', 'step', 'state', 'close'])}",
            )
    except ApiError as e:
        if kind == "step":
            store.metrics.counts["step_errors"] += 1
        return _ws_error_text(e)
    except Exception as e:  # noqa: BLE001 - a server bug answers this message, the session goes on
        log.exception("websocket message failed")
        return _ws_error_text(ApiError(500, "EXECUTION_ERROR", f"{type(e).__name__}: {e}"))
    return '{"type":"observation","data":' + out + "}"


def _ws_action(data: dict[str, Any]) -> Any:
    if "action" in data:
        return data["action"]
    for key in ("text", "message", "content"):
        if isinstance(data.get(key), str) and "tool_calls" not in data:
            return data[key]
    if data:
        return data  # the call itself ({"name", "arguments"}) or an OpenAI assistant message
    raise ApiError(400, "VALIDATION_ERROR", 'a step needs data {"action": ...}')


def _metrics(store: SessionStore) -> dict[str, Any]:
    counts = store.metrics.counts
    by_env = collections.Counter(s.env_id for s in store.sessions.values())
    by_transport = collections.Counter(s.transport for s in store.sessions.values())
    out: dict[str, Any] = {
        "sessions": {
            "active": len(store.sessions),
            "max": store.config.max_sessions,
            "by_env": dict(by_env),
            "by_transport": dict(by_transport),
            "created": counts["created"],
            "closed": counts["closed"],
            "idle_closed": counts["idle_closed"],
            "rejected": counts["rejected"],
        },
        "steps": {
            "total": counts["steps"],
            "errors": counts["step_errors"],
            "per_s": round(store.metrics.steps_per_s(), 2),
        },
        "resets": counts["resets"],
        "latency_ms": {
            "step": percentiles(store.metrics.step_ms),
            "reset": percentiles(store.metrics.reset_ms),
        },
        "uptime_s": round(time.monotonic() - store.metrics.started, 1),
        "gc": store.gc.metrics(),
    }
    try:
        import psutil

        me = psutil.Process()
        children = me.children(recursive=True)
        rss = 0
        for c in children:
            with contextlib.suppress(psutil.Error):
                rss += c.memory_info().rss
        out["process"] = {
            "pid": me.pid,
            "rss_mb": round(me.memory_info().rss / 2**20, 1),
            "children": len(children),
            "children_rss_mb": round(rss / 2**20, 1),
        }
    except ImportError:
        out["process"] = {"pid": os.getpid()}
    return out


# --------------------------------------------------------------------------------------------
# Running it


def check_bind(host: str, token: str | None) -> None:
    """Refuse a non-loopback address without a token (anyone who reaches it could run tools)."""
    if token:
        return
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(
            f"refusing to bind {host!r} without a token: anyone who can reach it could run "
            f"tools and read tasks. Pass --token T (or set {TOKEN_ENV}), or bind 127.0.0.1"
        )


def uvicorn_config(app: Any, host: str, port: int, config: ServeConfig, **kwargs: Any) -> Any:
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        ws_max_size=config.max_request_bytes,
        # Compression costs both ends CPU on every message; a compressing client can't ask for it.
        ws_per_message_deflate=kwargs.pop("ws_per_message_deflate", False),
        backlog=max(2048, config.max_sessions * 2),
        log_level=kwargs.pop("log_level", "warning"),
        **kwargs,
    )


LAZY_IMPORTS = ("sqlalchemy", "orjson", "rapidfuzz.process", "rapidfuzz.distance")
"""What ``import hiergym`` leaves to first use (the tool cache's SQLAlchemy, the fast JSON reader,
did-you-mean's matcher)."""


def warm_lazy_imports() -> list[str]:
    """Import :data:`LAZY_IMPORTS` (those installed; returns them). In a server their first use
    is a client's step, and an import there (SQLAlchemy: ~300 ms) holds the event loop, and so
    every session: the one stall left in ``perf serve``'s paced phase once the collector was
    tamed."""
    import importlib

    done = []
    for name in LAZY_IMPORTS:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)
            done.append(name)
    return done


def serve(
    host: str = "127.0.0.1",
    port: int = 8000,
    config: ServeConfig | None = None,
    preload: bool = True,
    log_level: str = "info",
) -> None:
    """Run the server until interrupted (what ``hiergym serve`` does)."""
    import gymnasium as gym
    import uvicorn

    config = config or ServeConfig()
    if config.token is None:
        config.token = os.environ.get(TOKEN_ENV) or None
    check_bind(host, config.token)
    app = create_app(config)
    if preload:  # build each sandbox once before the first client waits for it
        warm_lazy_imports()
        for env_id in sorted(set(app.state.store.served.values())):
            try:
                env = gym.make(env_id)
                warm = getattr(getattr(env.unwrapped, "sandbox", None), "warm", None)
                if warm is not None:
                    warm()
                env.close()
            except Exception as e:  # noqa: BLE001 - reported; sessions of it will say why
                log.warning("preloading %s failed: %s", env_id, e)
    uvicorn.Server(uvicorn_config(app, host, port, config, log_level=log_level)).run()


@dataclass
class Served:
    """A ``hiergym serve`` subprocess started by :func:`served`: its base ``url``, the process, and
    its log so far (``log_text()``)."""

    url: str
    process: Any
    log: Any
    final_log: str = ""
    """The whole log, kept when the server stopped (the file is gone then)."""

    def log_text(self) -> str:
        if self.log.closed:
            return self.final_log
        self.log.flush()
        self.log.seek(0)
        return self.log.read()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def served(*args: str, startup_s: float = 90.0, log_level: str = "warning") -> Any:
    """Run ``hiergym serve ARGS`` in a subprocess on a free loopback port until the block ends
    (for tests, benchmarks and notebooks): waits for ``/health``, yields a :class:`Served`, then
    terminates the server (killing it after 30 s). The server's output goes to a temporary file, never
    to a pipe nobody reads (which blocks a server once full)."""
    import subprocess
    import sys
    import tempfile

    import httpx

    def stop(server: Served) -> None:
        proc = server.process
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        server.final_log = server.log_text()
        server.log.close()

    def start() -> Served:
        port = _free_port()
        out = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by stop()
        proc = subprocess.Popen(
            [sys.executable, "-m", "hiergym.cli", "serve", "--port", str(port)]
            + ["--log-level", log_level, *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return Served(f"http://127.0.0.1:{port}", proc, out)

    for attempt in range(3):  # the free port may be taken before the server binds it: retry
        server = start()
        try:
            deadline = time.monotonic() + startup_s
            while True:
                if server.process.poll() is not None:
                    log = server.log_text()
                    if "address already in use" in log.lower() and attempt < 2:
                        break
                    raise RuntimeError(f"the server exited: {log[-2000:]}")
                try:
                    if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not come up in {startup_s:.0f} s")
                time.sleep(0.2)
        except BaseException:
            stop(server)
            raise
        if server.process.poll() is None:
            break
        stop(server)
    try:
        yield server
    finally:
        stop(server)
