"""The tool cache on PostgreSQL (HIERGYM_DB_URL): a throwaway cluster is started for the test."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    pytest.importorskip("psycopg")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL is not installed (apt-get install -y postgresql; make test does it)"
        )
    root = Path(tempfile.mkdtemp(prefix="hiergym-pg-"))
    data = root / "data"
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:  # initdb refuses to run as root
        shutil.chown(root, "postgres")
    port = _free_port()
    subprocess.run(
        [*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "postgres"],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            *as_user,
            pg_ctl,
            "-D",
            str(data),
            "-l",
            str(root / "log"),
            "-w",
            "-o",
            f"-p {port} -k {root} -h 127.0.0.1",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(root, ignore_errors=True)


def test_tool_cache_on_postgres_via_env_var(postgres_url, monkeypatch):
    import gymnasium as gym

    from hiergym.envs.sandbox import Sandbox, ToolCache
    from hiergym.testing import oracle_actions, play

    monkeypatch.setenv("HIERGYM_DB_URL", postgres_url)
    cache = ToolCache()
    assert cache.engine.dialect.name == "postgresql"
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="easy")
    base = env.unwrapped
    base.reset(seed=1)
    actions = oracle_actions(env)
    original = base.sandbox
    try:
        base.sandbox = Sandbox("shopping", original.db_path, mode="replay", cache=cache)
        first = play(env, actions, seed=1)
        stored = cache.count("shopping")
        assert stored >= 3
        base.sandbox = Sandbox("shopping", original.db_path, mode="replay", cache=cache)
        second = play(env, actions, seed=1)
        assert (
            base.sandbox.stats["cache"] >= 3 and base.sandbox.stats["computed"] <= 2
        )  # cart + submit
        assert first == second and cache.count("shopping") == stored
    finally:
        base.sandbox = original
        cache.clear("shopping")


def _child_round_trip(i):
    from hiergym.envs.sandbox import CacheKey, ToolCache

    cache = ToolCache()
    key = CacheKey("forktest", "1", "tool", f'{{"i": {i}}}')
    for _ in range(20):
        cache.put(key, {"i": i})
        assert cache.get(key) == {"i": i}
    return cache.count("forktest")


def test_engines_are_per_process_so_forked_children_never_share_connections(
    postgres_url, monkeypatch
):
    # AsyncVectorEnv and process pools fork: a child that reused the parent's pooled connections
    # corrupted both sides' sessions ("compile failed internally (OperationalError)").
    import multiprocessing as mp

    from hiergym.envs.sandbox import CacheKey, ToolCache

    monkeypatch.setenv("HIERGYM_DB_URL", postgres_url)
    parent = ToolCache()
    key = CacheKey("forktest", "1", "tool", '{"parent": 1}')
    parent.put(key, {"parent": 1})
    assert parent.get(key) == {"parent": 1}  # the parent's pool now holds a live connection
    with mp.get_context("fork").Pool(3) as pool:
        counts = pool.map(_child_round_trip, range(6))
    assert all(c >= 1 for c in counts)
    assert parent.get(key) == {"parent": 1}  # and the parent's connection still works
    assert parent.count("forktest") == 7
    parent.clear("forktest")


def test_an_async_vector_env_uses_the_postgres_cache(postgres_url, monkeypatch):
    import gymnasium as gym

    from hiergym.envs.sandbox import ToolCache
    from hiergym.testing import oracle_actions

    monkeypatch.setenv("HIERGYM_DB_URL", postgres_url)
    env = gym.make("hiergym/RTL-v0", split="test", difficulty="easy")
    env.reset(seed=0)
    calls = [c for c in oracle_actions(env) if c.name != "submit"]
    for c in calls:
        obs, *_ = env.step(c)  # the parent uses (and pools) a Postgres connection first
    envs = gym.make_vec("hiergym/RTL-v0", num_envs=2, vectorization_mode="async", split="test")
    try:
        envs.reset(seed=[0, 0])
        for c in calls:
            obs, *_ = envs.step((c.to_json(), c.to_json()))
            assert not any("internally" in o for o in obs), obs
    finally:
        envs.close()
    assert ToolCache().count("rtl") >= 1
