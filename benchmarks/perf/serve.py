"""``hiergym serve`` under load, on loopback: N concurrent WebSocket sessions stepping a cheap tool.

One run starts a real server (uvicorn, one process, ``--envs shopping geometry``) and, from this
process, holds ``SESSIONS`` sessions at once (one WebSocket each, reset once), then:

* memory per idle session: the server's RSS and PSS after the first ``WARM`` sessions and after
  all of them, divided by the sessions in between;
* paced load: every session steps ``view_product`` (a cached cheap tool) at a fixed interval, so
  the server sees ``RATE`` steps/s in all; client-side latency p50/p99/max and the steps/s reached;
* saturation: every session steps back to back for a few seconds (the throughput ceiling; latency
  is then sessions / throughput by Little's law, so it is reported, not targeted);
* beside it, the in-process step of the same call in this process (median and p99);
* Geometry: ``GEO_SESSIONS`` sessions each run the python tool once; their worker processes and
  RSS are reported apart, and after every client drops its connection without a close message
  the server must be back to its baseline of processes and hold no session.

Targets (issue 13): >= 1,024 concurrent sessions on the 2-core machine, p99 step latency <= 50 ms
on cheap tools (paced load), <= 2 MB per idle session (Geometry's workers excluded and reported).

Environment: ``HIERGYM_PERF_SERVE_SESSIONS`` (default 1024), ``..._RATE`` (steps/s, default 500),
``..._SECONDS`` (each load phase, default 15). Everything is bounded: connects and phases time out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import random
import sys
import time
from typing import Any

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.testing import oracle_actions

SESSIONS = int(os.environ.get("HIERGYM_PERF_SERVE_SESSIONS", "1024"))
RATE = float(os.environ.get("HIERGYM_PERF_SERVE_RATE", "500"))
SECONDS = float(os.environ.get("HIERGYM_PERF_SERVE_SECONDS", "15"))
WARM = 32
GEO_SESSIONS = 8
CONNECT_BATCH = 32


_T0 = time.perf_counter()


def _say(msg: str) -> None:
    print(f"[perf serve {time.perf_counter() - _T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


def _quantiles(ms: list[float]) -> dict[str, float]:
    if not ms:
        return {"n": 0}
    data = sorted(ms)

    def q(p: float) -> float:
        return round(data[min(len(data) - 1, int(p * len(data)))], 3)

    return {"n": len(data), "p50": q(0.5), "p99": q(0.99), "max": round(data[-1], 3)}


def _cheap_call() -> str:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    call = next(c for c in oracle_actions(env) if c.name == "view_product")
    env.close()
    return call.to_json()


def _in_process(action: str, n: int = 3000) -> dict[str, float]:
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy", max_turns=10**9)
    env.reset(seed=0)
    for _ in range(50):
        env.step(action)
    ms = []
    for _ in range(n):
        t = time.perf_counter()
        env.step(action)
        ms.append((time.perf_counter() - t) * 1e3)
    env.close()
    return _quantiles(ms)


def _memory(pid: int) -> dict[str, float]:
    import psutil

    p = psutil.Process(pid)
    info = p.memory_full_info()
    children = p.children(recursive=True)
    child_rss = 0
    for c in children:
        with contextlib.suppress(psutil.Error):
            child_rss += c.memory_info().rss
    return {
        "rss_mb": info.rss / 2**20,
        "pss_mb": getattr(info, "pss", info.rss) / 2**20,
        "children": len(children),
        "children_rss_mb": child_rss / 2**20,
    }


def _cpu(pid: int) -> tuple[float, float, float]:
    """(server CPU s, this process's CPU s, load average) now."""
    import psutil

    server = psutil.Process(pid).cpu_times()
    me = psutil.Process().cpu_times()
    return server.user + server.system, me.user + me.system, os.getloadavg()[0]


def _cpu_per_step(before: tuple, after: tuple, steps: int) -> dict[str, float]:
    """CPU per step of the server and of this load generator: what the figures cost whatever
    else the machine runs (the latencies depend on it; the load average says how busy it was)."""
    n = max(steps, 1)
    return {
        "server_cpu_ms_per_step": round((after[0] - before[0]) * 1e3 / n, 3),
        "client_cpu_ms_per_step": round((after[1] - before[1]) * 1e3 / n, 3),
        "load_average": round(after[2], 1),
    }


class _Client:
    def __init__(self, ws: Any):
        self.ws = ws

    async def call(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.ws.send(json.dumps(message))
        return json.loads(await self.ws.recv())

    async def step(self, text: str) -> bool:
        """Send a prepared step message; True when an observation came back (not parsed, so the
        load generator spends its CPU on the protocol, not on reading the answers)."""
        await self.ws.send(text)
        return (await self.ws.recv()).startswith('{"type":"observation"')


async def _connect(url: str, n: int, query: str, seed0: int = 0) -> list[_Client]:
    import websockets

    clients: list[_Client] = []

    async def one(i: int) -> _Client:
        ws = await websockets.connect(
            url + query, max_size=None, open_timeout=120, ping_interval=None
        )
        c = _Client(ws)
        reply = await c.call({"type": "reset", "data": {"seed": seed0 + i}})
        if reply["type"] != "observation":
            raise RuntimeError(f"reset failed: {reply}")
        return c

    for start in range(0, n, CONNECT_BATCH):
        batch = range(start, min(n, start + CONNECT_BATCH))
        clients += await asyncio.wait_for(asyncio.gather(*(one(i) for i in batch)), timeout=300)
    return clients


async def _paced(
    clients: list[_Client], action: str, rate: float, seconds: float
) -> dict[str, Any]:
    """Each session steps every len(clients)/rate seconds (random phase); client-side latency."""
    interval = len(clients) / rate
    msg = json.dumps({"type": "step", "data": {"action": action}})
    latencies: list[float] = []
    errors = 0
    rng = random.Random(0)
    t_end = time.perf_counter() + seconds

    async def run(c: _Client) -> None:
        nonlocal errors
        next_at = time.perf_counter() + rng.random() * interval
        while True:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if time.perf_counter() >= t_end:
                return
            t = time.perf_counter()
            ok = await c.step(msg)
            latencies.append((time.perf_counter() - t) * 1e3)
            errors += not ok
            next_at += interval

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(run(c) for c in clients)), timeout=seconds + 120)
    elapsed = time.perf_counter() - start
    return {
        "offered_steps_per_s": rate,
        "steps_per_s": round(len(latencies) / elapsed, 1),
        "steps": len(latencies),
        "errors": errors,
        "latency_ms": _quantiles(latencies),
    }


async def _saturate(clients: list[_Client], action: str, seconds: float) -> dict[str, Any]:
    msg = json.dumps({"type": "step", "data": {"action": action}})
    latencies: list[float] = []
    t_end = time.perf_counter() + seconds

    async def run(c: _Client) -> None:
        while time.perf_counter() < t_end:
            t = time.perf_counter()
            await c.step(msg)
            latencies.append((time.perf_counter() - t) * 1e3)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(run(c) for c in clients)), timeout=seconds + 120)
    elapsed = time.perf_counter() - start
    return {
        "concurrency": len(clients),
        "steps": len(latencies),
        "steps_per_s": round(len(latencies) / elapsed, 1),
        "latency_ms": _quantiles(latencies),
    }


async def _load(url: str, pid: int, action: str, sessions: int) -> dict[str, Any]:
    import httpx

    ws_base = url.replace("http", "ws")
    from urllib.parse import quote

    query = "/envs/shopping/ws?kwargs=" + quote(json.dumps({"max_turns": 10**9, "split": "test"}))
    out: dict[str, Any] = {}
    warm = await _connect(ws_base, WARM, query)
    await asyncio.sleep(1.0)
    before = _memory(pid)
    t = time.perf_counter()
    rest = await _connect(ws_base, sessions - WARM, query, seed0=WARM)
    out["connect_and_reset_s"] = round(time.perf_counter() - t, 2)
    clients = warm + rest
    await asyncio.sleep(1.0)
    after = _memory(pid)
    metrics = httpx.get(f"{url}/metrics", timeout=30).json()
    out["sessions_held"] = metrics["sessions"]["active"]
    out["server_rss_mb"] = round(after["rss_mb"], 1)
    out["mb_per_idle_session_rss"] = round(
        (after["rss_mb"] - before["rss_mb"]) / (sessions - WARM), 3
    )
    out["mb_per_idle_session_pss"] = round(
        (after["pss_mb"] - before["pss_mb"]) / (sessions - WARM), 3
    )
    _say(f"{len(clients)} sessions held; paced load at {RATE:g} steps/s for {SECONDS:g} s")
    # This load generator holds 1,024 connections too: its own full collections would stall its
    # clocks and be charged to the server, so its heap is frozen as the server's is (GcPolicy).
    gc.collect()
    gc.freeze()
    cpu = _cpu(pid)
    out["paced"] = await _paced(clients, action, RATE, SECONDS)
    out["paced"].update(_cpu_per_step(cpu, _cpu(pid), out["paced"]["steps"]))
    served = httpx.get(f"{url}/metrics", timeout=30).json()
    out["paced"]["server_latency_ms"] = served["latency_ms"]["step"]
    out["paced"]["server_gc"] = served.get("gc")
    _say("saturation")
    cpu = _cpu(pid)
    out["saturated_all"] = await _saturate(clients, action, min(SECONDS, 8.0))
    out["saturated_all"].update(_cpu_per_step(cpu, _cpu(pid), out["saturated_all"]["steps"]))
    out["saturated_32"] = await _saturate(clients[:32], action, min(SECONDS, 8.0))
    out["after_load_rss_mb"] = round(_memory(pid)["rss_mb"], 1)
    _say("every client drops its connection")
    for c in clients:  # every client vanishes without a close message
        c.ws.transport.abort()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        active = httpx.get(f"{url}/metrics", timeout=30).json()["sessions"]["active"]
        if active == 0:
            break
        await asyncio.sleep(0.5)
    out["sessions_after_abort"] = active
    out["rss_after_abort_mb"] = round(_memory(pid)["rss_mb"], 1)
    return out


async def _geometry(url: str, pid: int) -> dict[str, Any]:
    ws_base = url.replace("http", "ws")
    call = json.dumps({"name": "python", "arguments": {"code": "print(6 * 7)"}})
    msg = {"type": "step", "data": {"action": call}}
    warm = (await _connect(ws_base, 1, "/envs/geometry/ws"))[0]  # starts the shared zygote
    assert "42" in (await warm.call(msg))["data"]["observation"]["text"]
    await warm.ws.send(json.dumps({"type": "close"}))
    await warm.ws.wait_closed()
    await asyncio.sleep(1.0)
    base = _memory(pid)
    clients = await _connect(ws_base, GEO_SESSIONS, "/envs/geometry/ws")
    t = time.perf_counter()
    replies = await asyncio.gather(*(c.call(msg) for c in clients))
    first_call_s = time.perf_counter() - t
    ok = sum("42" in r["data"]["observation"]["text"] for r in replies)
    busy = _memory(pid)
    for c in clients:
        c.ws.transport.abort()
    for _ in range(240):
        now = _memory(pid)
        if now["children"] <= base["children"]:
            break
        await asyncio.sleep(0.5)
    return {
        "sessions": GEO_SESSIONS,
        "python_calls_ok": ok,
        "first_python_call_all_sessions_s": round(first_call_s, 2),
        "worker_processes_per_session": round(
            (busy["children"] - base["children"]) / GEO_SESSIONS, 2
        ),
        "worker_rss_mb_per_session": round(
            (busy["children_rss_mb"] - base["children_rss_mb"]) / GEO_SESSIONS, 1
        ),
        "server_processes_baseline": base["children"],
        "server_processes_after_abort": now["children"],
        "leaked_processes": max(0, now["children"] - base["children"]),
    }


def run() -> dict[str, Any]:

    action = _cheap_call()
    figures: dict[str, Any] = {"sessions_target": SESSIONS, "cheap_tool": "view_product"}
    figures["in_process_step_ms"] = _in_process(action)
    from hiergym.server import served

    with served(
        "--envs",
        "shopping",
        "geometry",
        "--max-sessions",
        str(SESSIONS + 64),
        "--idle-timeout",
        "3600",
        *os.environ.get("HIERGYM_PERF_SERVE_ARGS", "").split(),
        startup_s=300,
    ) as server:
        url, proc = server.url, server.process
        _say(f"server up; opening {SESSIONS} sessions")
        figures["load"] = asyncio.run(_load(url, proc.pid, action, SESSIONS))
        _say("geometry sessions")
        figures["geometry"] = asyncio.run(_geometry(url, proc.pid))
        figures["server_alive"] = proc.poll() is None
        paced = figures["load"]["paced"]["latency_ms"]
        figures["remote_over_in_process_p50"] = round(
            paced["p50"] / max(figures["in_process_step_ms"]["p50"], 1e-9), 1
        )
        figures["targets"] = {
            "sessions_held>=1024": figures["load"]["sessions_held"] >= 1024,
            "paced_p99_ms<=50": paced["p99"] <= 50,
            "mb_per_idle_session<=2": figures["load"]["mb_per_idle_session_rss"] <= 2,
            "no_leaked_processes": figures["geometry"]["leaked_processes"] == 0,
        }
    # read after the server stopped, so its last lines are in
    figures["server_tracebacks"] = sum("Traceback" in x for x in server.log_text().splitlines())
    return figures


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
