"""``hiergym serve`` and RemoteEnv against a real uvicorn on 127.0.0.1 (a subprocess per server)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time

import gymnasium as gym
import httpx
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
websockets = pytest.importorskip("websockets")
ws_errors = pytest.importorskip("websockets.exceptions")
psutil = pytest.importorskip("psutil")

import hiergym  # noqa: E402, F401
from hiergym import testing  # noqa: E402
from hiergym.errors import TaskError  # noqa: E402
from hiergym.remote import AsyncRemoteEnv, RemoteEnv, RemoteError, ServerBusy  # noqa: E402
from hiergym.rewards import Verdict  # noqa: E402
from hiergym.server import served  # noqa: E402
from hiergym.testing import oracle_actions  # noqa: E402

SHOPPING = "hiergym/Shopping-v0"
TOKEN = "s3cret-token"


@contextlib.contextmanager
def _server(*args: str):
    with served("--no-preload", *args) as server:
        yield server.url, server.process


@pytest.fixture(scope="module")
def server():
    with _server("--envs", "shopping", "geometry", "--max-sessions", "64") as (url, proc):
        yield url, proc


@pytest.fixture(scope="module")
def small_server():
    """Two sessions at most, idle after 1.5 s, a token."""
    with _server(
        "--envs",
        "shopping",
        "--max-sessions",
        "2",
        "--idle-timeout",
        "1.5",
        "--token",
        TOKEN,
        "--max-request-bytes",
        "200000",
    ) as (url, proc):
        yield url, proc


def _metrics(url: str, token: str | None = None) -> dict:
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{url}/metrics", headers=headers).json()


def _wait_for(predicate, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


# --------------------------------------------------------------------------------------------
# Identity with the in-process env


def test_remote_episode_is_identical_to_in_process(server):
    url, _ = server
    remote = gym.make(
        "hiergym/Remote-v0",
        url=url,
        env_id="shopping",
        split="test",
        difficulty="medium",
        process_reward=True,
    )
    local = gym.make(SHOPPING, split="test", difficulty="medium", process_reward=True)
    try:
        for seed in (3, 8):
            assert remote.reset(seed=seed) == local.reset(seed=seed)
            actions = [
                '{"name": "serch", "arguments": {}}',  # bad input is an observation
                "not json at all",
                *oracle_actions(local),  # ToolCall objects, as the oracle returns them
            ]
            for action in actions:
                got, want = remote.step(action), local.step(action)
                assert got == want
                if got[2] or got[3]:
                    break
            info = got[4]
            assert isinstance(info["verdict"], Verdict)
            assert info["verdict"] == want[4]["verdict"]
            assert remote.unwrapped.verdict == local.unwrapped.verdict
            assert remote.unwrapped.trajectory.turns == local.unwrapped.trajectory.turns
            assert remote.unwrapped.trajectory.submission == local.unwrapped.trajectory.submission
            assert remote.unwrapped.messages == local.unwrapped.messages
            assert remote.unwrapped.task == local.unwrapped.task
            # after the end: the in-process answer again
            assert remote.step("{}") == local.step("{}")
    finally:
        remote.close()
        local.close()


def test_check_domain_against_the_served_env_matches_in_process(server, monkeypatch):
    """hiergym.testing.check_domain on hiergym/Remote-v0 (a served Shopping) reports what it
    reports in-process: the same oracle episodes, mutants caught and hack matrix (the cache
    round trip runs through the server, as check_cache_round_trip does for a RemoteEnv)."""
    url, _ = server
    monkeypatch.setenv("HIERGYM_REMOTE_URL", url)
    monkeypatch.setenv("HIERGYM_REMOTE_ENV", SHOPPING)
    local = testing.check_domain(SHOPPING)
    remote = testing.check_domain("hiergym/Remote-v0")
    for row in remote["hack_matrix"]:
        assert row.pop("env_id") == "hiergym/Remote-v0"
    for row in local["hack_matrix"]:
        row.pop("env_id")
    assert remote == local
    assert remote["oracle_episodes"] >= 9 and remote["mutants"]


def test_async_remote_env(server):
    url, _ = server
    local = gym.make(SHOPPING, split="dev", difficulty="easy")

    async def play() -> list:
        out = []
        async with AsyncRemoteEnv(url, SHOPPING, split="dev", difficulty="easy") as env:
            out.append(await env.reset(seed=5))
            for call in oracle_actions(local):
                out.append(await env.step(call))
            assert env.verdict == local.unwrapped.verdict or env.verdict is not None
        return out

    local.reset(seed=5)
    got = asyncio.run(play())
    want = [local.reset(seed=5)] + [local.step(c) for c in oracle_actions(local)]
    assert got == want
    assert got[-1][2] and isinstance(got[-1][4]["verdict"], Verdict)
    local.close()


# --------------------------------------------------------------------------------------------
# Bad requests are answers, never a crash


def test_bad_requests_get_clear_errors_and_the_server_goes_on(server):
    url, proc = server
    with httpx.Client(base_url=url) as c:
        r = c.post("/sessions", json={"env_id": "hiergym/Shoping-v0"})
        assert r.status_code == 404 and "did you mean 'hiergym/Shopping-v0'" in r.text
        r = c.post("/sessions", json={"env_id": "shopping", "kwargs": {"splt": "test"}})
        assert r.status_code == 400 and "split" in r.json()["error"]["message"]
        r = c.post("/sessions/nope/step", json={"action": "x"})
        assert r.status_code == 404 and "no session 'nope'" in r.text
        r = c.post("/sessions", content=b"{not json")
        assert r.status_code == 400 and r.json()["error"]["code"] == "INVALID_JSON"
        sid = c.post("/sessions", json={"env_id": "shopping"}).json()["session_id"]
        r = c.post(f"/sessions/{sid}/stpe", json={"action": "x"})
        assert r.status_code == 404 and "did you mean 'step'" in r.text
        r = c.post(f"/sessions/{sid}/step", json={"action": "x"})
        assert r.status_code == 409  # step before reset
        r = c.post(f"/sessions/{sid}/reset", json={"seed": "seven"})
        assert r.status_code == 400 and "seed" in r.text
        r = c.post(f"/sessions/{sid}/reset", json={"seed": 1, "options": {"task_id": "no-such"}})
        assert r.status_code == 400 and r.json()["error"]["exception"] == "TaskError"
        r = c.post(f"/sessions/{sid}/reset", json={"seed": 1})
        assert r.status_code == 200
        huge = "x" * (2 << 20)
        r = c.post(f"/sessions/{sid}/step", json={"action": huge})
        assert r.status_code == 413 and "cap" in r.text
        r = c.post(f"/sessions/{sid}/step", json={"action": "x" * 40_000})
        assert r.status_code == 200, r.text  # over the env cap: an error observation
        assert r.json()["observation"]["text"].startswith("error:")
        assert c.delete(f"/sessions/{sid}").json() == {"closed": True}
        r = c.post(f"/sessions/{sid}/step", json={"action": "x"})
        assert r.status_code == 404 and "closed by the client" in r.text
        assert c.get("/health").json()["status"] == "healthy"
    assert proc.poll() is None

    env = RemoteEnv(url, "shopping")
    with pytest.raises(gym.error.ResetNeeded):
        env.step("{}")
    with pytest.raises(TaskError, match="no-such"):
        env.reset(options={"task_id": "no-such"})
    env.close()


def test_websocket_speaks_openenv_messages(server):
    url, _ = server
    local = gym.make(SHOPPING, split="test", difficulty="easy")
    obs, _ = local.reset(seed=2)
    calls = oracle_actions(local)

    async def play() -> None:
        ws_url = url.replace("http", "ws") + "/envs/shopping/ws?split=test&difficulty=easy"
        async with websockets.connect(ws_url) as ws:
            await ws.send(json.dumps({"type": "reset", "data": {"seed": 2}}))
            msg = json.loads(await ws.recv())
            assert msg["type"] == "observation" and msg["data"]["observation"]["text"] == obs
            await ws.send("{oops")
            msg = json.loads(await ws.recv())
            assert msg["type"] == "error" and msg["data"]["code"] == "INVALID_JSON"
            await ws.send(json.dumps({"type": "stepp"}))
            msg = json.loads(await ws.recv())
            assert (
                msg["data"]["code"] == "UNKNOWN_TYPE"
                and "did you mean 'step'" in msg["data"]["message"]
            )
            for call in calls:  # the call itself as data, as OpenEnv's GenericEnvClient sends it
                await ws.send(
                    json.dumps(
                        {
                            "type": "step",
                            "data": {"name": call.name, "arguments": dict(call.arguments)},
                        }
                    )
                )
                msg = json.loads(await ws.recv())
                want = local.step(call.to_json())
                assert msg["data"]["observation"]["text"] == want[0]
                assert msg["data"]["reward"] == want[1] and msg["data"]["done"] == (
                    want[2] or want[3]
                )
            assert msg["data"]["done"] and msg["data"]["verdict"]["__hg__"] == "Verdict"
            await ws.send(json.dumps({"type": "state"}))
            msg = json.loads(await ws.recv())
            assert msg["type"] == "state" and msg["data"]["step_count"] == len(calls)
            await ws.send(json.dumps({"type": "close"}))

    asyncio.run(play())
    local.close()


def test_a_disconnect_mid_episode_frees_the_env_and_its_worker_processes(server):
    url, proc = server
    server_proc = psutil.Process(proc.pid)
    python_call = json.dumps({"name": "python", "arguments": {"code": "print(6 * 7)"}})
    # A first Geometry session starts what lives as long as the server (the pre-warmed zygote
    # that forks python workers, and the spare it forks ahead of the next request, both in the
    # zygote's session); it is the baseline, the session's own workers (each in a session of its
    # own) are not.
    warm = RemoteEnv(url, "geometry")
    warm.reset(seed=0)
    assert "42" in warm.step(python_call)[0]
    warm.close()
    assert _wait_for(lambda: _metrics(url)["sessions"]["by_env"].get("hiergym/Geometry-v0", 0) == 0)
    baseline = {p.pid for p in server_proc.children(recursive=True)}
    lasting = {_sid(pid) for pid in baseline}

    def session_workers() -> set[int]:
        return {p.pid for p in server_proc.children(recursive=True) if _sid(p.pid) not in lasting}

    async def run_then_drop() -> None:
        ws = await websockets.connect(url.replace("http", "ws") + "/envs/geometry/ws")
        await ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
        await ws.recv()
        await ws.send(json.dumps({"type": "step", "data": {"action": python_call}}))
        msg = json.loads(await ws.recv())
        assert "42" in msg["data"]["observation"]["text"]
        # the session's python worker
        assert session_workers()
        await ws.send(json.dumps({"type": "step", "data": {"action": python_call}}))
        ws.transport.abort()  # gone mid-step, no close message

    asyncio.run(run_then_drop())
    assert _wait_for(lambda: _metrics(url)["sessions"]["by_env"].get("hiergym/Geometry-v0", 0) == 0)
    assert _wait_for(lambda: not session_workers())
    assert proc.poll() is None


def _sid(pid: int) -> int | None:
    with contextlib.suppress(ProcessLookupError):
        return os.getsid(pid)
    return None


def test_metrics_report_sessions_steps_and_latency(server):
    url, _ = server
    env = RemoteEnv(url, "shopping")
    env.reset(seed=0)
    for _ in range(5):
        env.step('{"name": "search", "arguments": {"query": "boots"}}')
    m = _metrics(url)
    assert m["sessions"]["active"] >= 1 and m["sessions"]["by_transport"]["http"] >= 1
    assert m["steps"]["total"] >= 5 and m["steps"]["per_s"] > 0
    assert {"p50", "p99"} <= set(m["latency_ms"]["step"])
    env.close()


def test_the_served_heap_is_frozen_so_collections_scan_only_new_objects(server):
    """The server's GC policy: what is alive is frozen each second, so Python's collections scan
    only the objects made since (a full collection of a heap of 1,024 sessions stalled every
    session for 0.3-1 s, the step latency's p99)."""
    url, _ = server
    env = RemoteEnv(url, "shopping")
    env.reset(seed=0)
    env.step('{"name": "search", "arguments": {"query": "boots"}}')

    def frozen() -> bool:
        gc_state = _metrics(url)["gc"]
        return gc_state["policy"] == "freeze" and gc_state["frozen"] > 10 * gc_state["tracked"]

    assert _wait_for(frozen), _metrics(url)["gc"]
    env.close()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_preloading_does_the_first_steps_lazy_work_before_any_client():
    """What a first step would import or open (SQLAlchemy for the tool cache: ~300 ms that held
    every session's event loop in perf serve) is done by the server's preload."""
    code = (
        "import sys, gymnasium as gym, hiergym\n"
        "from hiergym.server import warm_lazy_imports\n"
        "assert 'sqlalchemy' not in sys.modules, 'import hiergym imports SQLAlchemy again'\n"
        "assert 'sqlalchemy' in warm_lazy_imports() and 'sqlalchemy' in sys.modules\n"
        "env = gym.make('hiergym/Shopping-v0')\n"
        "sandbox = env.unwrapped.sandbox\n"
        "assert sandbox._has_recordings is None\n"
        "sandbox.warm()\n"
        "assert sandbox._has_recordings is not None\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


def test_the_gc_policy_still_frees_cyclic_garbage_at_its_full_collection():
    import gc
    import weakref

    from hiergym.server import GcPolicy

    class Node:
        pass

    clock = _Clock()
    policy = GcPolicy(full_s=600, clock=clock)
    try:
        policy.start()
        a, b = Node(), Node()
        a.peer, b.peer = b, a  # a cycle: reference counting alone never frees it
        alive = weakref.ref(a)
        clock.now = 1.0
        policy.tick()  # frozen with the rest of the heap
        assert gc.get_freeze_count() > 0
        del a, b
        gc.collect()  # Python's collector does not look at frozen objects
        assert alive() is not None
        clock.now = 601.0
        policy.tick()  # the full collection: unfrozen, collected, frozen again
        assert alive() is None
        assert policy.full_collections == 1 and policy.last_full_ms is not None
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    off = GcPolicy(full_s=0)
    off.start()
    off.tick()
    assert gc.get_freeze_count() == 0 and off.metrics()["policy"] == "python"


# --------------------------------------------------------------------------------------------
# Session life and auth (the small server)


def test_token_is_required_and_checked(small_server):
    url, _ = small_server
    assert httpx.get(f"{url}/health").status_code == 200  # probes need no token
    assert httpx.get(f"{url}/metrics").status_code == 401
    bad = {"authorization": "Bearer wrong"}
    assert (
        httpx.post(f"{url}/sessions", json={"env_id": "shopping"}, headers=bad).status_code == 401
    )
    with pytest.raises(RemoteError) as e:
        RemoteEnv(url, "shopping")
    assert e.value.status == 401
    env = RemoteEnv(url, "shopping", token=TOKEN)
    assert env.reset(seed=0)[0]
    env.close()

    async def ws_without_token() -> None:
        with pytest.raises(ws_errors.InvalidStatus):
            async with websockets.connect(url.replace("http", "ws") + "/ws"):
                pass

    asyncio.run(ws_without_token())


def test_max_sessions_answers_503_and_idle_sessions_are_closed(small_server):
    url, _ = small_server
    a = RemoteEnv(url, "shopping", token=TOKEN)
    b = RemoteEnv(url, "shopping", token=TOKEN)
    with pytest.raises(ServerBusy, match="max-sessions"):
        RemoteEnv(url, "shopping", token=TOKEN)

    async def ws_when_full() -> dict:
        headers = {"authorization": f"Bearer {TOKEN}"}
        async with websockets.connect(
            url.replace("http", "ws") + "/ws", additional_headers=headers
        ) as ws:
            return json.loads(await ws.recv())

    msg = asyncio.run(ws_when_full())
    assert msg["type"] == "error" and msg["data"]["code"] == "CAPACITY_REACHED"
    assert msg["data"]["status"] == 503
    # both idle: closed after 1.5 s, and the slots are free again
    assert _wait_for(lambda: _metrics(url, TOKEN)["sessions"]["active"] == 0, timeout=15)
    with pytest.raises(RemoteError, match="idle"):
        a.reset(seed=0)
    c = RemoteEnv(url, "shopping", token=TOKEN)
    c.reset(seed=0)
    assert _metrics(url, TOKEN)["sessions"]["idle_closed"] >= 2
    for env in (a, b, c):
        env.close()


def test_websocket_message_over_the_cap_closes_only_that_session(small_server):
    url, proc = small_server
    headers = {"authorization": f"Bearer {TOKEN}"}

    async def oversized() -> None:
        async with websockets.connect(
            url.replace("http", "ws") + "/ws", additional_headers=headers, max_size=None
        ) as ws:
            await ws.send(json.dumps({"type": "step", "data": {"action": "x" * 300_000}}))
            with pytest.raises(ws_errors.ConnectionClosed):
                await ws.recv()

    asyncio.run(oversized())
    assert proc.poll() is None
    env = RemoteEnv(url, "shopping", token=TOKEN)
    assert env.reset(seed=1)[0]
    env.close()


def test_serve_refuses_a_public_address_without_a_token():
    from hiergym.server import check_bind

    with pytest.raises(ValueError, match="without a token"):
        check_bind("0.0.0.0", None)
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    check_bind("0.0.0.0", "t")
    out = subprocess.run(
        [sys.executable, "-m", "hiergym.cli", "serve", "--host", "0.0.0.0", "--no-preload"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "without a token" in out.stderr


def test_served_moves_to_another_port_when_its_port_is_taken(monkeypatch):
    import socket

    import hiergym.server as server_module

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ports = iter([port])
        real = server_module._free_port
        monkeypatch.setattr(server_module, "_free_port", lambda: next(ports, None) or real())
        with served("--no-preload", "--envs", "shopping") as server:
            assert not server.url.endswith(f":{port}")
            assert httpx.get(f"{server.url}/health").status_code == 200
