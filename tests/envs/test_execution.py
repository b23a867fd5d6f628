"""The shared execution layer (hiergym.envs.execution): limits hold, deadlines kill the whole
process group, waits block instead of polling, the machine-wide cap holds across processes, and the
zygote forks workers that share its imports, report how they ended and die with their owner."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from hiergym.envs import execution
from hiergym.envs.execution import Limits

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")

PY = sys.executable


def run_py(tmp_path: Path, code: str, **limits: object) -> execution.RunResult:
    return execution.run([PY, "-I", "-c", code], tmp_path, Limits(**limits), capped=False)


# ---- the one table of limits ----------------------------------------------------------------


def test_limits_are_one_table_applied_by_prlimit_and_in_process():
    limits = Limits(wall_s=2.5, memory_bytes=1 << 30, file_bytes=1 << 20, open_files=32)
    assert limits.rlimits() == {
        "RLIMIT_AS": (1 << 30, 1 << 30),
        "RLIMIT_CPU": (4, 5),  # the wall clock rounded up, plus one; SIGXCPU, then SIGKILL
        "RLIMIT_FSIZE": (1 << 20, 1 << 20),
        "RLIMIT_NOFILE": (32, 32),
        "RLIMIT_CORE": (0, 0),
    }
    argv = execution.prlimit_argv(limits)
    assert argv[0] == "prlimit" and argv[-1] == "--"
    assert {"--as=1073741824:1073741824", "--cpu=4:5", "--fsize=1048576:1048576"} <= set(argv)
    relative = Limits(cpu_s=5, memory_bytes=100, relative=True)
    assert relative.rlimits(cpu_used_s=7.9, vm_bytes=1000)["RLIMIT_AS"] == (1100, 1100)
    assert relative.rlimits(cpu_used_s=7.9, vm_bytes=1000)["RLIMIT_CPU"] == (12, 13)
    assert Limits.from_json(json.loads(json.dumps(limits.to_json()))) == limits


def test_no_domain_keeps_its_own_copy_of_the_limit_logic():
    root = Path(execution.__file__).parent
    for path in [root / "rtl" / "toolchain.py", *sorted((root / "geometry").glob("py*.py"))]:
        text = path.read_text()
        for word in ("resource.setrlimit(", "resource.prlimit(", '"prlimit",', "--as=", "unshare("):
            assert word not in text, f"{path.name} sets limits itself ({word})"


# ---- one program --------------------------------------------------------------------------


def test_the_deadline_kills_the_whole_process_group(tmp_path):
    script = "sleep 60 & echo $! > child.pid; wait"
    result = execution.run(["sh", "-c", script], tmp_path, Limits(wall_s=0.5), capped=False)
    assert result.timed_out and result.returncode == -signal.SIGKILL
    child = int((tmp_path / "child.pid").read_text())
    for _ in range(100):  # the orphaned sleep is reaped by init, which takes a moment
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        with open(f"/proc/{child}/stat") as f:
            if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                break
        time.sleep(0.05)
    else:
        pytest.fail("the program's child outlived the deadline")


def test_the_cpu_limit_stops_a_spinning_program_and_counts_as_a_timeout(tmp_path):
    result = run_py(tmp_path, "while True: pass", wall_s=30, cpu_s=1)
    assert result.timed_out and result.returncode == -signal.SIGXCPU


def test_memory_and_file_size_limits_hold(tmp_path):
    grab = run_py(tmp_path, "x = bytearray(1 << 30)", memory_bytes=256 << 20)
    assert grab.returncode != 0 and "MemoryError" in grab.stderr
    write = execution.run(
        ["sh", "-c", "head -c 3000000 /dev/zero > big.bin"],
        tmp_path,
        Limits(file_bytes=1 << 20),
        capped=False,
    )
    assert write.returncode != 0 and (tmp_path / "big.bin").stat().st_size <= 1 << 20


def test_output_is_read_back_capped_head_and_tail(tmp_path):
    code = "print('first'); print('x' * 200_000); print('last')"
    result = run_py(tmp_path, code, output_bytes=2000)
    assert len(result.stdout) < 2100 and "[output truncated]" in result.stdout
    assert result.stdout.startswith("first") and result.stdout.rstrip().endswith("last")


def test_a_private_temp_dir_and_a_clean_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_TEST_SECRET", "s3cret")
    result = execution.run(
        ["sh", "-c", 'echo "$HOME|$TMPDIR|$HIERGYM_TEST_SECRET|$EXTRA"'],
        tmp_path,
        Limits(),
        env={"EXTRA": "given"},
        capped=False,
    )
    assert result.stdout.strip() == f"{tmp_path}|{tmp_path}||given"


def test_the_wait_blocks_instead_of_polling(tmp_path, monkeypatch):
    """Popen.wait(timeout) sleeps in a doubling loop (a 20 ms process cost 32 ms); run() waits on
    a pidfd and never sleeps."""
    slept = []
    real_sleep = time.sleep
    monkeypatch.setattr(time, "sleep", lambda s: (slept.append(s), real_sleep(s)))
    proc = subprocess.Popen(["sleep", "0.05"])
    proc.wait(timeout=5)
    assert slept, "the baseline polls (else this test could not fail)"
    slept.clear()
    result = execution.run(["sleep", "0.05"], tmp_path, Limits(wall_s=5), capped=False)
    assert result.returncode == 0 and not result.timed_out
    assert slept == []


# ---- the machine-wide cap -------------------------------------------------------------------

HOLD = """
import sys
from hiergym.envs import execution
with execution.slot(1):
    print("held", flush=True)
    sys.stdin.read()
"""


def test_the_cap_holds_across_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path))
    holder = subprocess.Popen(
        [PY, "-c", HOLD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        got = threading.Event()

        def take() -> None:
            with execution.slot(1):
                got.set()

        thread = threading.Thread(target=take, daemon=True)
        thread.start()
        assert not got.wait(0.5), "a second run got the only slot while another process held it"
        holder.stdin.close()  # the holder exits; the kernel releases its lock
        assert got.wait(30), "the slot was never handed on"
        thread.join(10)
    finally:
        holder.kill()
        holder.wait()
    with execution.slot(2) as first, execution.slot(2) as second:
        assert {first, second} == {0, 1}  # a free slot is taken without waiting


def test_the_cap_setting(monkeypatch):
    monkeypatch.setenv(execution.MAX_PROCESSES_ENV, "3")
    assert execution.max_processes() == 3
    monkeypatch.setenv(execution.MAX_PROCESSES_ENV, "0")
    with execution.slot() as held:
        assert held is None  # no cap
    monkeypatch.setenv(execution.MAX_PROCESSES_ENV, "many")
    with pytest.raises(ValueError, match="HIERGYM_MAX_PROCESSES must be a whole number"):
        execution.max_processes()
    monkeypatch.delenv(execution.MAX_PROCESSES_ENV)
    assert execution.max_processes() == execution.default_max_processes() >= 2


# ---- the zygote -----------------------------------------------------------------------------

WORKER = """
import json, os

def zygote_preload():
    return {"preloaded_in": os.getpid()}

def worker_main(state, args, fd_in, fd_out):
    info = {**state, "pid": os.getpid(), "pgid": os.getpgid(0), "args": args}
    os.write(fd_out, json.dumps(info).encode() + b"\\n")
    while os.read(fd_in, 1024):
        pass
    os._exit(int(args.get("exit", 0)))
"""


@pytest.fixture
def zygote(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent(WORKER))
    z = execution.Zygote(script, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")})
    yield z
    z.close()


def hello(child: execution.Child) -> dict:
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(child.from_child, 4096)
        assert chunk, "the worker closed its pipe"
        data += chunk
    return json.loads(data)


def test_workers_share_one_preload_and_report_how_they_ended(zygote):
    a, b = zygote.spawn({"exit": 3}), zygote.spawn({"exit": 0})
    info_a, info_b = hello(a), hello(b)
    assert info_a["preloaded_in"] == info_b["preloaded_in"] == zygote.pid  # imported once
    assert info_a["pid"] == a.pid != b.pid == info_b["pid"]
    assert info_a["pgid"] == a.pid and info_a["args"] == {"exit": 3}  # its own process group
    assert a.poll() is None
    os.close(a.to_child)  # the worker serves until its request pipe closes
    a.to_child = -1
    assert a.wait(30) == 3
    b.kill()
    assert b.returncode == -signal.SIGKILL
    with pytest.raises(ProcessLookupError):
        os.kill(b.pid, 0)  # reaped, not a zombie


def test_a_dead_zygote_is_replaced_and_a_closed_one_exits(zygote):
    first = zygote.spawn({})
    hello(first)
    old = zygote.pid
    os.kill(old, signal.SIGKILL)
    for _ in range(2):  # the request that finds it dead starts a fresh one
        worker = zygote.spawn({})
    assert zygote.pid != old and hello(worker)["preloaded_in"] == zygote.pid
    proc = zygote._proc
    worker.kill()
    first.kill()
    zygote.close()
    assert proc.wait(10) == 0  # it exits when its owner closes the socket


def _fork(target, *args):  # noqa: ANN001, ANN202
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=target, args=(queue, *args))
    child.start()
    return child, queue


def test_a_process_fork_spawns_from_its_parents_zygote(zygote):
    # A fork (a bench worker, a vector env's worker) is handed its own connection to the
    # parent's zygote at the fork: one preload serves every fork, and it is ready at once.
    global _INHERITED
    hello(zygote.spawn({}))
    _INHERITED = zygote
    child, queue = _fork(_spawn_in_child)
    seen = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert seen == {
        "preloaded_in": zygote.pid,
        "zygote_pid": zygote.pid,
        "shared_from_parent": True,
        "starts": 0,
    }
    assert hello(zygote.spawn({}))["preloaded_in"] == zygote.pid  # the parent's still serves


def test_forks_spawning_at_once_each_get_their_own_workers(zygote):
    global _INHERITED
    hello(zygote.spawn({}))
    _INHERITED = zygote
    forks = [_fork(_spawn_many_in_child, tag) for tag in ("a", "b", "c")]
    for tag, (child, queue) in zip("abc", forks, strict=True):
        infos = queue.get(timeout=120)
        child.join(60)
        assert child.exitcode == 0
        assert [i["args"] for i in infos] == [{"tag": tag, "n": n} for n in range(6)]
        assert {i["preloaded_in"] for i in infos} == {zygote.pid}
        assert len({i["pid"] for i in infos}) == 6


def test_a_fork_whose_parents_zygote_has_gone_starts_its_own(zygote):
    global _INHERITED
    hello(zygote.spawn({}))
    old = zygote.pid
    _INHERITED = zygote
    ctx = multiprocessing.get_context("fork")
    closed = ctx.Event()
    child, queue = _fork(_spawn_after, closed)
    zygote.close()  # its owner ends it: the fork's connection reads EOF
    closed.set()
    seen = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0
    assert seen["preloaded_in"] not in (None, old) and seen["shared_from_parent"] is False
    assert seen["zygote_pid"] == seen["preloaded_in"] and seen["starts"] == 1


def test_a_fork_that_breaks_its_connection_leaves_the_zygote_serving(zygote):
    # A fork's connection is one of several: garbage on it drops that connection, never the
    # zygote that the owner and the other forks spawn from.
    global _INHERITED
    hello(zygote.spawn({}))
    pid, starts = zygote.pid, zygote.starts
    _INHERITED = zygote
    child, queue = _fork(_send_garbage)
    assert queue.get(timeout=60) == "sent"
    child.join(60)
    worker = zygote.spawn({"after": True})
    assert hello(worker) | {"pid": 0, "pgid": 0} == {
        "preloaded_in": pid,
        "pid": 0,
        "pgid": 0,
        "args": {"after": True},
    }
    assert (zygote.pid, zygote.starts) == (pid, starts)  # the same zygote, not a restarted one
    worker.kill()
    child, queue = _fork(_spawn_in_child)
    assert queue.get(timeout=60)["preloaded_in"] == pid
    child.join(60)


def _send_garbage(queue) -> None:  # noqa: ANN001
    _INHERITED._sock.sendall(b"\x00\x00\x00\x05{oops")  # a length, then no JSON
    queue.put("sent")


_INHERITED: execution.Zygote | None = None


def _seen(zygote: execution.Zygote, worker: execution.Child) -> dict:
    return {
        "preloaded_in": hello(worker)["preloaded_in"],
        "zygote_pid": zygote.pid,
        "shared_from_parent": zygote.shared_from_parent,
        "starts": zygote.starts,
    }


def _spawn_in_child(queue) -> None:  # noqa: ANN001
    zygote = _INHERITED
    worker = zygote.spawn({})  # the same object, in the fork
    queue.put(_seen(zygote, worker))
    worker.kill()
    zygote.close()


def _spawn_many_in_child(queue, tag) -> None:  # noqa: ANN001
    zygote = _INHERITED
    workers = [zygote.spawn({"tag": tag, "n": n}) for n in range(6)]
    queue.put([hello(w) for w in workers])
    for worker in workers:
        worker.kill()


def _spawn_after(queue, closed) -> None:  # noqa: ANN001
    zygote = _INHERITED
    closed.wait(60)
    worker = zygote.spawn({})
    queue.put(_seen(zygote, worker))
    worker.kill()
    zygote.close()


def _spare_of(zygote: execution.Zygote, workers: set[int]) -> int:
    """The worker the zygote forked ahead of the next request (waited for: it forks it after
    answering the last one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with open(f"/proc/{zygote.pid}/task/{zygote.pid}/children") as f:
            spares = {int(p) for p in f.read().split()} - workers
        if spares:
            (spare,) = spares
            return spare
        time.sleep(0.01)
    raise AssertionError("the zygote forked no spare")


def test_a_request_gets_the_spare_forked_ahead_and_a_dead_spare_is_replaced(zygote):
    first = zygote.spawn({"n": 1})
    assert hello(first)["args"] == {"n": 1}
    spare = _spare_of(zygote, {first.pid})
    second = zygote.spawn({"n": 2})
    info = hello(second)
    assert second.pid == spare == info["pid"] and info["args"] == {"n": 2}
    assert info["pgid"] == spare and info["preloaded_in"] == zygote.pid
    dead = _spare_of(zygote, {first.pid, second.pid})
    os.kill(dead, signal.SIGKILL)  # a spare that dies waiting: the next request still gets one
    deadline = time.monotonic() + 60
    while os.path.exists(f"/proc/{dead}") and time.monotonic() < deadline:
        time.sleep(0.01)  # until the zygote reaped it (a zombie keeps its /proc entry)
    assert not os.path.exists(f"/proc/{dead}")
    third = zygote.spawn({"n": 3})
    info = hello(third)
    assert third.pid != dead and info["args"] == {"n": 3} and info["pgid"] == third.pid
    for worker in (first, second, third):
        worker.kill()
