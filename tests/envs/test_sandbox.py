from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import httpx
import pytest

from hiergym.envs.sandbox import HttpBackend, Sandbox, ToolCache, build_database, sources_hash
from hiergym.envs.tools import Tool, Toolbox, ToolCall, tool
from hiergym.errors import ReplayMiss, SandboxError


def _builder(conn, progress):
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(10)])


def test_database_is_built_once_and_named_by_its_data_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path / "home"))
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.json").write_text("[1]")
    first = build_database("demo", src, _builder, "v1")
    assert first.name == f"demo-{sources_hash(src, 'v1')}.sqlite"
    mtime = first.stat().st_mtime_ns
    assert (
        build_database("demo", src, _builder, "v1") == first and first.stat().st_mtime_ns == mtime
    )
    (src / "a.json").write_text("[2]")
    assert build_database("demo", src, _builder, "v1") != first  # new sources, new file
    assert build_database("demo", src, _builder, "v2").name != first.name  # new generator, new file


def test_envs_open_the_sandbox_read_only(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path))
    src = tmp_path / "src"
    src.mkdir()
    path = build_database("demo", src, _builder, "v1")
    sb = Sandbox("demo", path)
    assert sb.db.execute("SELECT count(*) FROM t").fetchone()[0] == 10
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        sb.db.execute("DELETE FROM t")
    assert sb.data_version == sources_hash(src, "v1")


# A remote-only tool: no local implementation, answers come from a live API or the cache.
weather = Tool(
    "weather",
    None,
    "Weather for a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
        "additionalProperties": False,
    },
)


def _api(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    if request.url.path == "/weather":
        if body["city"] == "Atlantis":
            return httpx.Response(404, json={"error": "unknown city"})
        return httpx.Response(200, json={"city": body["city"], "temp_c": len(body["city"]) * 3})
    return httpx.Response(500, text="boom")


def test_record_then_replay_offline_gives_identical_results(tmp_path):
    cache = ToolCache(f"sqlite:///{tmp_path}/cache.sqlite")
    backend = HttpBackend("http://weather.test", transport=httpx.MockTransport(_api))
    recorder = Sandbox("weather", None, mode="record", backend=backend, cache=cache)
    call = ToolCall("weather", {"city": "Paris"})
    recorded = recorder.call(weather, call, None)
    assert recorded == {"city": "Paris", "temp_c": 15}
    assert recorder.stats["backend"] == 1
    # replay: no backend at all, a fresh process-local memory, same answer from the SQL cache
    replay = Sandbox("weather", None, mode="replay", cache=cache)
    assert replay.call(weather, call, None) == recorded
    assert replay.stats == {"memory": 0, "cache": 1, "computed": 0, "backend": 0}
    with pytest.raises(ReplayMiss, match="record it first with mode='record'"):
        replay.call(weather, ToolCall("weather", {"city": "Rome"}), None)


def test_live_mode_always_asks_the_backend_and_errors_are_clear(tmp_path):
    from hiergym.errors import ToolError

    cache = ToolCache(f"sqlite:///{tmp_path}/cache.sqlite")
    backend = HttpBackend("http://weather.test", transport=httpx.MockTransport(_api))
    live = Sandbox("weather", None, mode="live", backend=backend, cache=cache)
    call = ToolCall("weather", {"city": "Oslo"})
    live.call(weather, call, None)
    live.call(weather, call, None)
    assert live.stats["backend"] == 2
    with pytest.raises(ToolError, match="unknown city"):
        live.call(weather, ToolCall("weather", {"city": "Atlantis"}), None)
    with pytest.raises(SandboxError, match="needs a backend"):
        Sandbox("weather", None, mode="live")
    with pytest.raises(SandboxError, match="unknown sandbox mode"):
        Sandbox("weather", None, mode="replya")


def test_cache_keys_on_canonical_arguments_and_data_version(tmp_path):
    cache = ToolCache(f"sqlite:///{tmp_path}/c.sqlite")
    sb = Sandbox("d", None, mode="replay", cache=cache, data_version="v1")
    calls = []

    @tool(cache="persistent")
    def slow(state, a: int, b: int) -> int:
        """Add."""
        calls.append((a, b))
        return a + b

    assert sb.call(slow, ToolCall("slow", {"a": 1, "b": 2}), lambda: slow.fn(None, a=1, b=2)) == 3
    fresh = Sandbox("d", None, mode="replay", cache=cache, data_version="v1")
    assert (
        fresh.call(slow, ToolCall("slow", {"b": 2, "a": 1}), lambda: 1 / 0) == 3
    )  # key order is irrelevant
    other = Sandbox("d", None, mode="replay", cache=cache, data_version="v2")
    assert (
        other.call(slow, ToolCall("slow", {"a": 1, "b": 2}), lambda: slow.fn(None, a=1, b=2)) == 3
    )
    assert len(calls) == 2 and cache.count("d") == 2


def test_sqlite_cache_uses_wal_and_is_shared_across_processes(tmp_path):
    url = f"sqlite:///{tmp_path}/shared.sqlite"
    cache = ToolCache(url)
    with cache.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    script = (
        "import sys; from hiergym.envs.sandbox import ToolCache, CacheKey\n"
        "c = ToolCache(sys.argv[1]); i = int(sys.argv[2])\n"
        "for k in range(50): c.put(CacheKey('d', 'v', 't', f'{{\"k\": {k}}}'), {'k': k, 'by': i})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, url, str(i)]) for i in range(3)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0]
    assert cache.count("d") == 50


def test_a_bad_cache_url_is_a_clear_error():
    with pytest.raises(SandboxError, match="cannot open the tool cache"):
        ToolCache("nosuchdialect://x")


def test_toolbox_rejects_duplicate_names():
    @tool
    def a(state) -> int:
        """A."""
        return 1

    with pytest.raises(ValueError, match="two tools"):
        Toolbox([a, a])


def test_process_memory_is_bounded(monkeypatch):
    import hiergym.envs.sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "MEMORY_ENTRIES", 10)
    sb = Sandbox("d", None, mode="replay", data_version="v")

    @tool
    def echo(state, x: int) -> int:
        """Echo."""
        return x

    for i in range(25):
        assert sb.call(echo, ToolCall("echo", {"x": i}), lambda i=i: i) == i
    assert len(sb._memory) <= 10
    assert sb.call(echo, ToolCall("echo", {"x": 24}), lambda: -1) == 24  # recent entries stay


def test_a_caller_editing_a_cached_result_cannot_change_what_others_see():
    sb = Sandbox("d", None, mode="replay", data_version="v")

    @tool
    def listing(state, q: str) -> dict:
        """List."""
        return {"results": [1, 2, 3]}

    call = ToolCall("listing", {"q": "x"})
    first = sb.call(listing, call, lambda: listing.fn(None, q="x"))
    first["results"].clear()
    assert sb.call(listing, call, lambda: 1 / 0) == {"results": [1, 2, 3]}
    assert sb.stats["memory"] == 1


def test_answers_recorded_from_a_live_backend_win_in_replay(tmp_path, monkeypatch):
    # The README promises record -> replay offline. A tool with a local implementation used to
    # skip the cache in replay and recompute, silently ignoring what the live backend had said.
    import gymnasium as gym

    monkeypatch.setenv("HIERGYM_DB_URL", f"sqlite:///{tmp_path}/recorded.sqlite")
    live_answer = {
        "page": 1,
        "total": 1,
        "results": [{"product_id": "B0LIVE0001", "title": "live"}],
    }

    def api(request):
        return httpx.Response(200, json=live_answer)

    backend = HttpBackend("http://shop.test", transport=httpx.MockTransport(api))
    call = '{"name": "search", "arguments": {"query": "recorded jacket"}}'
    recorder = gym.make("hiergym/Shopping-v0", mode="record", backend=backend)
    recorder.reset(seed=0)
    recorded, *_ = recorder.step(call)
    assert "B0LIVE0001" in recorded
    replayer = gym.make("hiergym/Shopping-v0")  # replay, no backend
    replayer.reset(seed=0)
    replayed, *_ = replayer.step(call)
    assert replayed == recorded
    # a call that was never recorded still comes from the local data
    other, *_ = replayer.step('{"name": "search", "arguments": {"query": "lamp"}}')
    assert "B0LIVE0001" not in other and not other.startswith("error")


def test_a_per_connection_memo_keeps_only_the_latest_connections():
    # Travel's World, TravelPlanner's directory and flight store are memos per connection: a
    # process that opens sandbox after sandbox must not keep every connection (and its file).
    import sqlite3

    from hiergym.envs.sandbox import CONNECTIONS_KEPT, per_connection
    from hiergym.envs.travel.travelplanner import database
    from hiergym.envs.travel.travelplanner.tools import directory
    from hiergym.envs.travel.world import world_of

    built = []
    memo = per_connection(lambda db: built.append(db) or len(built))
    conns = [sqlite3.connect(":memory:") for _ in range(3 * CONNECTIONS_KEPT)]
    values = [memo(c) for c in conns]
    assert values == list(range(1, len(conns) + 1))  # one build each
    assert len(memo.memo) == CONNECTIONS_KEPT
    assert memo(conns[-1]) == len(conns) and len(built) == len(conns)  # a hit builds nothing
    assert memo(conns[0]) == len(conns) + 1  # forgotten: built again, for its own connection
    assert list(memo.memo)[-1] == id(conns[0])  # now the latest used
    for shared in (world_of, directory, database.flight_store):
        assert shared.memo is not memo.memo and hasattr(shared.memo, "move_to_end")
