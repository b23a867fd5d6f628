"""The one sandboxed-process layer: limits, deadlines, temp dirs, warm workers, a machine-wide cap.

Every domain that runs something it does not trust (an agent's Python, a toolchain fed an agent's
design) runs it through this module, so each gets the same guarantees by calling it:

- :class:`Limits`: one documented dataclass for everything a run may use (wall clock, CPU seconds,
  address space, file size, open files, processes, core dumps, output read back, a private temp
  dir, the network, the filesystem through Landlock, privileges). :meth:`Limits.rlimits` is the
  only table of resource limits in hiergym; :func:`prlimit_argv` applies it to a program before
  exec (safe from any thread), :func:`apply_rlimits` inside a forked child, :func:`isolate` adds
  the network namespace, the privilege drop, ``no_new_privs`` and Landlock where the machine has
  them (each step reported, none fatal).
- :func:`run`: one program in its own session, with the limits, stdout/stderr to files read back
  capped, and a deadline that kills the whole process group. The wait blocks on a pidfd (no
  polling loop: a 20 ms process costs about 20 ms, not the 32 ms ``Popen.wait(timeout)``'s
  doubling sleeps round it to). With a CPU budget for the whole process tree
  (``Limits.tree_cpu_s``) the decision is made in CPU seconds (:func:`tree_cpu_seconds` while it
  runs, ``wait4``'s accounting when it ends), so a run decides the same way on an idle and on a
  loaded machine; the wall clock is then only a backstop, reported as ``overloaded``.
  :func:`watch` and :func:`judge` make that decision for any run the caller can wait on and
  measure (Geometry's python calls: jobs of a warm worker, not the caller's children).
  :func:`cpu_meter` sums the CPU seconds of the runs made inside it (calibrations measure with it).
- :func:`slot`: a machine-wide cap on concurrent runs, across processes: ``flock``-ed slot files
  under ``HIERGYM_HOME/execution-slots``, waited on by blocking (a slot is released when its
  holder exits, however it exits). The number is ``HIERGYM_MAX_PROCESSES`` (``0``: no cap), by
  default :func:`default_max_processes` (memory-aware).
- :class:`Zygote`: a pre-warmed fork server for Python workers. It imports a worker script's
  modules once (``zygote_preload()``), then forks a worker per request, ahead of it (a spare
  forked while the owner asks nothing waits for the request's arguments and pipes, so the fork
  of a process holding numpy and scipy is off the request's path); the worker applies its own
  isolation once it has them (``worker_main(state, args, fd_in, fd_out)``), so a worker is
  ready in milliseconds and shares the zygote's pages copy-on-write. The zygote reaps its
  children and reports each exit status on a pipe of the caller's, so the caller waits on a file
  descriptor, never on a timer. A process forked (``os.fork``: multiprocessing's fork, a vector
  env's workers, bench workers) from one whose zygote runs gets its own connection to that same
  zygote, so N forked workers share one set of imports instead of starting N zygotes.

This file uses the standard library only: the zygote runs it as a script (``python -I``) without
importing hiergym.
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import dataclasses
import gc
import importlib.util
import itertools
import json
import math
import os
import resource
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_PROCESSES_ENV = "HIERGYM_MAX_PROCESSES"
"""The machine-wide cap on concurrent :func:`run` processes (an integer; ``0`` means no cap)."""
NOBODY = 65534
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
MiB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """What one sandboxed run may use. ``None`` leaves a limit as the parent has it.

    Attributes:
        wall_s: wall-clock deadline of the run; at it the whole process group is killed. With
            ``tree_cpu_s``, only a backstop (see there).
        cpu_s: CPU seconds of each process (``RLIMIT_CPU``; SIGXCPU at the limit). ``None``:
            ``tree_cpu_s`` (else ``wall_s``) rounded up, plus one.
        tree_cpu_s: CPU seconds of the whole process tree, the program and every descendant
            (alive, or reaped by its parent: ``RLIMIT_CPU`` is per process, so a program that
            forks workers is not bounded by it). The run is stopped once the tree has used
            them, and reported timed out when it used more, however it ended: the decision
            depends on CPU time alone, not on what else the machine runs. ``wall_s`` is then a
            backstop only: a run it stops within its CPU budget is reported ``overloaded``, not
            timed out (it waited: a machine too loaded to give a trusted program its CPU, or a
            program that sleeps or blocks). ``None``: ``wall_s`` is the deadline.
        memory_bytes: address space (``RLIMIT_AS``).
        file_bytes: the largest file the run may write (``RLIMIT_FSIZE``).
        open_files: open file descriptors (``RLIMIT_NOFILE``).
        processes: processes of the user (``RLIMIT_NPROC``; ``0``: the run may not fork).
        core_bytes: core dump size (``RLIMIT_CORE``; ``0``: none).
        output_bytes: how much of stdout and of stderr is read back (its head and tail).
        private_tmp: HOME and TMPDIR point at the run's own directory (removed with it).
        network: ``False`` puts the run in a new, empty network namespace (root only; forked
            workers, see :func:`isolate`).
        landlock: confine the filesystem with Landlock where the kernel has it: read-only access
            to ``read_roots``, read-write to the run's directory, no TCP (forked workers).
        read_roots: what a Landlock-confined run may read.
        drop_privileges: switch to ``nobody`` when running as root (forked workers).
        relative: ``memory_bytes`` and ``cpu_s`` are added to what the process already uses when
            applied in-process (a forked worker that has imported numpy keeps its pages).
    """

    wall_s: float = 10.0
    cpu_s: float | None = None
    tree_cpu_s: float | None = None
    memory_bytes: int | None = 2048 * MiB
    file_bytes: int | None = 16 * MiB
    open_files: int | None = None
    processes: int | None = None
    core_bytes: int | None = 0
    output_bytes: int = 64_000
    private_tmp: bool = True
    network: bool = True
    landlock: bool = False
    read_roots: tuple[str, ...] = ()
    drop_privileges: bool = False
    relative: bool = False

    def rlimits(self, *, cpu_used_s: float = 0.0, vm_bytes: int = 0) -> dict[str, tuple[int, int]]:
        """The resource limits by ``RLIMIT_*`` name, as (soft, hard): the one table hiergym sets
        limits from. The CPU limit's hard value is a second past its soft one, so the program
        gets SIGXCPU (reported as a timeout), not the SIGKILL a hard limit sends."""
        if self.cpu_s is not None:
            cpu = self.cpu_s
        else:
            cpu = math.ceil(self.tree_cpu_s if self.tree_cpu_s is not None else self.wall_s) + 1
        base_cpu, base_vm = (cpu_used_s, vm_bytes) if self.relative else (0.0, 0)
        table = {
            "RLIMIT_AS": None if self.memory_bytes is None else base_vm + self.memory_bytes,
            "RLIMIT_CPU": max(1, int(base_cpu) + math.ceil(cpu)),
            "RLIMIT_FSIZE": self.file_bytes,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_NPROC": self.processes,
            "RLIMIT_CORE": self.core_bytes,
        }
        limits = {k: (int(v), int(v)) for k, v in table.items() if v is not None}
        soft, _ = limits["RLIMIT_CPU"]
        limits["RLIMIT_CPU"] = (soft, soft + 1)
        return limits

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Limits:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "read_roots" in values:
            values["read_roots"] = tuple(values["read_roots"])
        return cls(**values)


_PRLIMIT_FLAGS = {
    "RLIMIT_AS": "--as",
    "RLIMIT_CPU": "--cpu",
    "RLIMIT_FSIZE": "--fsize",
    "RLIMIT_NOFILE": "--nofile",
    "RLIMIT_NPROC": "--nproc",
    "RLIMIT_CORE": "--core",
}


def prlimit_argv(limits: Limits) -> list[str]:
    """``prlimit`` (util-linux) options that set ``limits`` on a program before it execs."""
    table = limits.rlimits().items()
    return ["prlimit", *(f"{_PRLIMIT_FLAGS[k]}={soft}:{hard}" for k, (soft, hard) in table), "--"]


def apply_rlimits(
    limits: Limits, names: Sequence[str] | None = None, *, vm_bytes: int | None = None
) -> list[str]:
    """Set ``limits`` (those in ``names``, default all) on this process, a forked child; what was
    set or refused, by name. ``vm_bytes``: the address space a relative memory limit adds to
    (default: read from ``/proc/self/status`` now)."""
    used = resource.getrusage(resource.RUSAGE_SELF)
    if vm_bytes is None:
        vm_bytes = _vm_bytes() if limits.relative and limits.memory_bytes is not None else 0
    table = limits.rlimits(cpu_used_s=used.ru_utime + used.ru_stime, vm_bytes=vm_bytes)
    report = []
    for name, value in table.items():
        if names is not None and name not in names:
            continue
        try:
            resource.setrlimit(getattr(resource, name), value)
            report.append(name)
        except (ValueError, OSError):
            report.append(f"{name} refused")
    return report


def _vm_bytes() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


# --------------------------------------------------------------------------------------------
# Isolation of a forked child: network namespace, privileges, Landlock


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def open_paths(paths: Sequence[str]) -> list[int]:
    """``O_PATH`` handles for Landlock rules, taken while the process may still read anything."""
    fds = []
    for path in paths:
        try:
            fds.append(os.open(path, os.O_PATH | os.O_CLOEXEC))
        except OSError:
            fds.append(-1)
    return fds


def landlock(libc: ctypes.CDLL, read_only: Sequence[int], read_write: int) -> str:
    """Confine the filesystem (and TCP) with Landlock, given ``O_PATH`` handles; a short report."""
    syscall = libc.syscall
    syscall.restype = ctypes.c_long
    abi = syscall(444, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 1:
        return "landlock unavailable"
    fs_all = (1 << 13) - 1
    if abi >= 2:
        fs_all |= 1 << 13  # REFER
    if abi >= 3:
        fs_all |= 1 << 14  # TRUNCATE
    if abi >= 5:
        fs_all |= 1 << 15  # IOCTL_DEV
    net = 0b11 if abi >= 4 else 0  # BIND_TCP | CONNECT_TCP, with no rule: all denied
    scoped = 0b11 if abi >= 6 else 0  # abstract unix sockets and signals stay inside the sandbox
    attr = struct.pack("<QQQ", fs_all, net, scoped)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buf = ctypes.create_string_buffer(attr[:size], size)
    ruleset = syscall(444, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"landlock ruleset failed (errno {ctypes.get_errno()})"
    read = (1 << 0) | (1 << 2) | (1 << 3)  # EXECUTE | READ_FILE | READ_DIR
    for fd, access in [(fd, read) for fd in read_only] + [(read_write, fs_all)]:
        if fd < 0:
            continue
        rule = ctypes.create_string_buffer(struct.pack("<Qi", access & fs_all, fd), 12)
        syscall(445, ctypes.c_int(ruleset), ctypes.c_int(1), rule, ctypes.c_uint32(0))
        os.close(fd)
    if libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        return "landlock skipped (no_new_privs failed)"
    if syscall(446, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
        return f"landlock restrict failed (errno {ctypes.get_errno()})"
    os.close(ruleset)
    return f"landlock abi {abi}"


def isolate(limits: Limits, root: str) -> list[str]:
    """Apply ``limits`` to this process (a child forked for one sandboxed job), ``root`` being its
    only writable directory: the network namespace, the privilege drop, ``no_new_privs``,
    Landlock, then the rlimits. Each step is best effort and reported by name."""
    report: list[str] = []
    libc = _libc()
    vm_bytes = _vm_bytes()  # before Landlock hides /proc
    rule_fds = open_paths([*limits.read_roots, root]) if limits.landlock else []
    if os.geteuid() == 0:
        if not limits.network and libc.unshare(CLONE_NEWNET) == 0:
            report.append("network namespace")
        if limits.drop_privileges:
            os.chown(root, NOBODY, NOBODY)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            report.append("uid nobody")
    libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if limits.landlock:
        try:
            report.append(landlock(libc, rule_fds[:-1], rule_fds[-1]))
        except OSError as e:
            report.append(f"landlock failed ({e})")
    report.extend(apply_rlimits(limits, vm_bytes=vm_bytes))
    return report


# --------------------------------------------------------------------------------------------
# Running one program


@dataclass(frozen=True)
class RunResult:
    """How one :func:`run` ended. ``timed_out``: a time limit stopped it (the tree's CPU budget,
    a process's ``RLIMIT_CPU``, or, without ``tree_cpu_s``, the wall clock); ``overloaded``: the
    wall-clock backstop stopped it within its CPU budget; ``seconds``: wall time; ``cpu_s``: CPU
    seconds of the process tree (user and system)."""

    returncode: int
    stdout: str
    stderr: str
    timed_out: bool
    seconds: float
    cpu_s: float = 0.0
    overloaded: bool = False

    @property
    def output(self) -> str:
        return (self.stdout + "\n" + self.stderr).strip()


def read_capped(path: Path, limit: int) -> str:
    """The file, or its first and last ``limit / 2`` bytes around a truncation mark (the reports
    that close a long log are at its end)."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            if size <= limit:
                return f.read(limit).decode("utf-8", errors="replace")
            head = f.read(limit // 2)
            f.seek(size - limit // 2)
            tail = f.read(limit // 2)
    except FileNotFoundError:
        return ""
    return (
        head.decode("utf-8", errors="replace")
        + "\n... [output truncated] ...\n"
        + tail.decode("utf-8", errors="replace")
    )


def wait(proc: subprocess.Popen[Any], timeout: float | None) -> bool:
    """Wait for ``proc`` to exit, at most ``timeout`` seconds; whether it has exited (and been
    reaped). Blocks on a pidfd where the kernel has one (Linux 5.3+): no sleep loop."""
    if proc.returncode is not None:
        return True
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfd: Popen's own wait
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    if not ready:
        return proc.poll() is not None
    proc.wait()
    return True


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """Kill ``proc`` and everything in its process group, and reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):  # it may have exited
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()
    proc.wait()


def run(
    argv: Sequence[str],
    cwd: Path,
    limits: Limits,
    *,
    env: Mapping[str, str] | None = None,
    capped: bool = True,
) -> RunResult:
    """Run ``argv`` in ``cwd`` under ``limits``; stdout and stderr go to files, read back capped.

    The program gets its own session, so the deadline kills it with every child it started.
    ``prlimit`` sets the rlimits before exec, which is safe from any thread (unlike a
    ``preexec_fn``). The run waits for a machine-wide :func:`slot` first (``capped``); the
    deadline starts when it has one. A run the CPU limit stopped is reported as timed out.
    """
    base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    if limits.private_tmp:
        base.update(HOME=str(cwd), TMPDIR=str(cwd))
    base.update(env or {})
    out_path, err_path = cwd / ".stdout", cwd / ".stderr"
    with slot() if capped else contextlib.nullcontext():
        start = time.perf_counter()
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(
                [*prlimit_argv(limits), *argv],
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                env=base,
            )
            timed_out, overloaded, cpu = supervise(proc, limits)
        elapsed = time.perf_counter() - start
    returncode = proc.returncode
    if returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
        timed_out, overloaded = True, False  # a process's CPU limit
    for meter in _meters.get():
        meter.add(cpu)
    cap = limits.output_bytes
    return RunResult(
        returncode,
        read_capped(out_path, cap),
        read_capped(err_path, cap),
        timed_out,
        elapsed,
        cpu,
        overloaded,
    )


MIN_POLL_S = 0.02
MAX_POLL_S = 0.5
"""How often :func:`supervise` measures a tree with a CPU budget: when the budget left, spread
over the tree's threads, runs out, but at least every ``MAX_POLL_S`` (a tree may start more)."""
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tree_cpu_seconds(pid: int, *, own: bool = True) -> tuple[float, int]:
    """CPU seconds (user and system) used so far by ``pid`` and its live descendants, with the
    descendants they have reaped (a parent's ``cutime``/``cstime``), and the number of threads
    of the live tree, from ``/proc`` (``(0.0, 0)`` where there is none). A descendant that
    outlives its parent is reparented out of the tree: its CPU is not counted after that.
    ``own=False``: the live descendants' only (a long-lived server's jobs, not the server)."""
    total, threads = 0.0, 0
    stack, seen = [pid], set()
    while stack:
        p = stack.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(f"/proc/{p}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            tids = os.listdir(f"/proc/{p}/task")
        except (OSError, IndexError):
            continue
        if own or p != pid:
            total += sum(int(v) for v in fields[11:15]) / _TICKS  # utime stime cutime cstime
            threads += int(fields[17])
        for tid in tids:
            with (
                contextlib.suppress(OSError, ValueError),
                open(f"/proc/{p}/task/{tid}/children", "rb") as f,
            ):
                stack.extend(int(c) for c in f.read().split())
    return total, threads


def _exited(proc: subprocess.Popen[Any], fd: int | None, timeout: float) -> bool:
    """Whether ``proc`` has exited within ``timeout`` (not reaped: :func:`supervise` reaps it)."""
    if fd is not None:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    deadline = time.monotonic() + timeout  # no pidfd (Linux < 5.3): a short poll
    while True:
        if os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))


def watch(
    limits: Limits,
    finished: Callable[[float], bool],
    measure: Callable[[], tuple[float, int]],
) -> tuple[str, float]:
    """Wait for a run under ``limits`` until it finishes or a limit stops it: ``finished(t)``
    waits at most ``t`` seconds and says whether the run is over; ``measure()`` gives the CPU
    seconds and threads of what runs (:func:`tree_cpu_seconds`). Returns what stopped it
    (``"cpu"``, ``"wall"``, ``""``: it finished) and the CPU seconds last measured; judge them
    with :func:`judge`. The caller stops the run at a limit.

    Without ``limits.tree_cpu_s`` the wall clock is the deadline (one wait). With it, the CPU is
    measured whenever the budget could have run out (the budget left spread over the threads, at
    least every :data:`MAX_POLL_S`; a run just started has used nothing yet, so a short run is
    never measured): ``"cpu"`` once more than the budget is used; the wall clock (``wall_s``) is
    then a backstop."""
    budget = limits.tree_cpu_s
    start = time.monotonic()
    used, threads = 0.0, 1
    for turn in itertools.count():
        wall_left = limits.wall_s - (time.monotonic() - start)
        step = wall_left
        if budget is not None:
            if turn:
                used, threads = measure()
            if used > budget:
                return "cpu", used
            spread = (budget - used) / max(1, threads)
            step = min(wall_left, max(MIN_POLL_S, min(MAX_POLL_S, spread)))
        if wall_left <= 0:
            if budget is not None:
                used = max(used, measure()[0])
            return "wall", used
        if finished(max(0.0, step)):
            return "", used
    raise AssertionError("unreachable")


def judge(stop: str, cpu_s: float, budget: float | None) -> tuple[bool, bool]:
    """``(timed_out, overloaded)`` of a run that used ``cpu_s`` CPU seconds and that ``stop``
    (see :func:`watch`) ended: without a CPU budget, the wall clock stopping it is a timeout;
    with one, more than the budget is a timeout however the run ended, and the wall-clock
    backstop stopping it within the budget is an overloaded machine (see :class:`RunResult`)."""
    if budget is None:
        return stop == "wall", False
    timed_out = stop == "cpu" or cpu_s > budget
    return timed_out, stop == "wall" and not timed_out


def supervise(proc: subprocess.Popen[Any], limits: Limits) -> tuple[bool, bool, float]:
    """Wait for ``proc`` (its own session) under ``limits`` (:func:`watch`, measuring its tree
    with :func:`tree_cpu_seconds`), kill its process group at a limit, reap it with ``wait4``;
    ``(timed_out, overloaded, cpu_s)`` (see :class:`RunResult`, :func:`judge`). The CPU seconds
    a run is judged by are the larger of the last measurement and ``wait4``'s (the program and
    the descendants it reaped)."""
    try:
        fd: int | None = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):
        fd = None
    try:
        stop, used = watch(
            limits, lambda t: _exited(proc, fd, t), lambda: tree_cpu_seconds(proc.pid)
        )
    finally:
        if fd is not None:
            os.close(fd)
    if stop:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # it may have exited
            os.killpg(proc.pid, signal.SIGKILL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    cpu = max(used, usage.ru_utime + usage.ru_stime)
    timed_out, overloaded = judge(stop, cpu, limits.tree_cpu_s)
    return timed_out, overloaded, cpu


class CpuMeter:
    """The CPU seconds of the :func:`run` calls made inside a :func:`cpu_meter` block."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._lock = threading.Lock()

    def add(self, seconds: float) -> None:
        with self._lock:
            self.seconds += seconds


_meters: contextvars.ContextVar[tuple[CpuMeter, ...]] = contextvars.ContextVar(
    "hiergym_cpu_meters", default=()
)


@contextlib.contextmanager
def cpu_meter() -> Iterator[CpuMeter]:
    """Sum the process-tree CPU seconds of every :func:`run` made in this context (this thread,
    or a context copied from it) while the block runs; meters nest. A budget calibrated from it
    is in CPU seconds, the unit :attr:`Limits.tree_cpu_s` decides in."""
    meter = CpuMeter()
    token = _meters.set((*_meters.get(), meter))
    try:
        yield meter
    finally:
        _meters.reset(token)


class Workdir:
    """A fresh temp dir for one run, removed afterwards; files go in by name only."""

    def __init__(self, prefix: str = "hiergym-run-") -> None:
        self.path = Path(tempfile.mkdtemp(prefix=prefix))

    def write(self, name: str, text: str) -> str:
        (self.path / name).write_text(text)
        return name

    def __enter__(self) -> Workdir:
        return self

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The machine-wide cap


def default_max_processes() -> int:
    """Concurrent runs per machine by default: two per CPU, at most as many 2 GiB runs (the
    toolchain's address-space limit; a big yosys run takes 1.7-1.8 GB) as fit in three quarters
    of the memory, and at least two."""
    cpus = os.cpu_count() or 1
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        total = 0
    by_memory = int(total * 0.75) // (2048 * MiB) if total else 2 * cpus
    return max(2, min(2 * cpus, by_memory))


def max_processes() -> int:
    """The cap in force: ``HIERGYM_MAX_PROCESSES`` if set (``0``: none), else the default."""
    raw = os.environ.get(MAX_PROCESSES_ENV, "").strip()
    if not raw:
        return default_max_processes()
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(
            f"{MAX_PROCESSES_ENV} must be a whole number of concurrent processes (0: no cap), "
            f"not {raw!r}"
        ) from None
    if value < 0:
        raise ValueError(f"{MAX_PROCESSES_ENV} must be 0 (no cap) or more, not {value}")
    return value


def slot_dir() -> Path:
    from hiergym.envs.sandbox import hiergym_home

    path = hiergym_home() / "execution-slots"
    path.mkdir(parents=True, exist_ok=True)
    return path


_turn = itertools.count()


@contextlib.contextmanager
def slot(n: int | None = None) -> Iterator[int | None]:
    """Hold one of the machine's ``n`` (default :func:`max_processes`) run slots while the block
    runs; yields its number (``None`` without a cap). Slots are ``flock``-ed files under
    ``HIERGYM_HOME``, shared by every process on the machine that uses the same home, and released
    by the kernel when the holder exits. A free slot is taken at once; when none is, the caller
    blocks on one (in turn), without polling."""
    n = max_processes() if n is None else n
    if n <= 0:
        yield None
        return
    import fcntl

    folder = slot_dir()
    first = next(_turn) % n
    order = [(first + i) % n for i in range(n)]
    handle = None
    for index in order:
        f = open(folder / f"slot-{index}.lock", "a+b")  # noqa: SIM115 - held across the yield
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            continue
        handle = (index, f)
        break
    if handle is None:
        f = open(folder / f"slot-{first}.lock", "a+b")  # noqa: SIM115
        fcntl.flock(f, fcntl.LOCK_EX)
        handle = (first, f)
    try:
        yield handle[0]
    finally:
        handle[1].close()  # closing the file releases the lock


# --------------------------------------------------------------------------------------------
# Warm workers: the zygote


class Child:
    """A sandboxed worker started for the caller: a process group leader with two pipes.

    ``to_child`` / ``from_child`` are the caller's ends of the worker's request and reply pipes.
    """

    def __init__(self, pid: int, to_child: int, from_child: int):
        self.pid, self.to_child, self.from_child = pid, to_child, from_child
        self.returncode: int | None = None
        self.owner = os.getpid()

    def poll(self) -> int | None:
        return self.wait(0.0)

    def wait(self, timeout: float | None) -> int | None:
        """The exit code (negative: the signal), or ``None`` if it still runs after ``timeout``."""
        raise NotImplementedError

    def kill(self) -> None:
        """Kill the worker's process group and wait (a few seconds at most) until it is reaped."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.wait(5.0)
        self.close_fds()

    def close_fds(self) -> None:
        for fd in (self.to_child, self.from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.to_child = self.from_child = -1


class _ForkedChild(Child):
    """A child of the zygote: the zygote reaps it and writes its wait status to ``status``."""

    def __init__(self, pid: int, to_child: int, from_child: int, status: int):
        super().__init__(pid, to_child, from_child)
        self.status = status

    def wait(self, timeout: float | None) -> int | None:
        if self.returncode is not None:
            return self.returncode
        ready, _, _ = select.select([self.status], [], [], timeout)
        if not ready:
            return None
        data = b""
        with contextlib.suppress(OSError):
            data = os.read(self.status, 4)
        os.close(self.status)
        self.status = -1
        if len(data) == 4:
            self.returncode = os.waitstatus_to_exitcode(struct.unpack("<i", data)[0])
        else:  # the zygote died before reaping it: it is init's now; say it was killed
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            self.returncode = -signal.SIGKILL
        return self.returncode

    def close_fds(self) -> None:
        super().close_fds()
        if self.status >= 0:
            with contextlib.suppress(OSError):
                os.close(self.status)
            self.status = -1


class _PopenChild(Child):
    """A worker started as a fresh interpreter (no zygote)."""

    def __init__(self, proc: subprocess.Popen[bytes]):
        assert proc.stdin is not None and proc.stdout is not None
        super().__init__(proc.pid, proc.stdin.fileno(), proc.stdout.fileno())
        self.proc = proc

    def wait(self, timeout: float | None) -> int | None:
        if wait(self.proc, timeout):
            self.returncode = self.proc.returncode
        return self.returncode

    def close_fds(self) -> None:
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self.to_child = self.from_child = -1


def _send_message(sock: socket.socket, message: dict[str, Any], fds: Sequence[int] = ()) -> None:
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    if fds:
        sent = socket.send_fds(sock, [data], list(fds))
        data = data[sent:]
    if data:
        sock.sendall(data)


def _recv_message(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One length-prefixed message and the descriptors that came with it (``None`` at EOF).
    Reads exactly its bytes, never into the next message: a zygote's socket may hold several
    (fork connections are sent without waiting for a reply)."""
    buf, fds = b"", []
    while len(buf) < 4:
        if max_fds and not fds:
            chunk, got, _, _ = socket.recv_fds(sock, 4 - len(buf), max_fds)
            fds.extend(got)
        else:
            chunk = sock.recv(4 - len(buf))
        if not chunk:
            return None, fds
        buf += chunk
    (size,) = struct.unpack(">I", buf)
    body = b""
    while len(body) < size:
        chunk = sock.recv(size - len(body))
        if not chunk:
            return None, fds
        body += chunk
    return json.loads(body), fds


def start_fresh(script: Path, args: Mapping[str, Any], env: Mapping[str, str], cwd: str) -> Child:
    """A worker in a fresh interpreter (``python -I script ARGS``): no zygote, the full import
    cost. The baseline the zygote is measured against, and the fallback where it cannot run."""
    proc = subprocess.Popen(
        [sys.executable, "-I", str(script), json.dumps(dict(args))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=cwd,
        env=dict(env),
        close_fds=True,
        start_new_session=True,  # its own process group: a kill takes everything it started
    )
    return _PopenChild(proc)


class Zygote:
    """A fork server that has imported a worker script's modules, one per (script, process).

    ``script`` defines ``zygote_preload() -> state`` (run once, in the zygote) and
    ``worker_main(state, args, fd_in, fd_out)`` (run in each forked worker, which applies its own
    isolation first and serves until ``fd_in`` closes). :meth:`spawn` returns a :class:`Child`
    in milliseconds. The zygote itself runs no one's code but the script's; it exits when its
    owner closes it or dies. A process forked from one whose zygote runs is handed a connection
    of its own to it at the fork (:func:`_before_fork`: no round trip, the zygote adopts it when it
    next reads), and spawns its workers there; if that zygote has gone (its owner ended), the
    fork's next spawn starts a zygote of its own, as a fork of a process with none does.
    """

    _instances: dict[tuple[str, int], Zygote] = {}
    _all: weakref.WeakSet[Zygote] = weakref.WeakSet()
    _class_lock = threading.Lock()

    def __init__(self, script: Path, env: Mapping[str, str]):
        self.script, self.env = Path(script), dict(env)
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._sock: socket.socket | None = None
        self.owner = os.getpid()
        self.starts = 0
        self._remote_pid: int | None = None  # the zygote's pid where this process is a client
        Zygote._all.add(self)

    @classmethod
    def shared(cls, script: Path, env: Mapping[str, str]) -> Zygote:
        """The zygote of ``script`` for this process (created on first use)."""
        key = (str(script), os.getpid())
        with cls._class_lock:
            zygote = cls._instances.get(key)
            if zygote is None:
                zygote = cls._instances[key] = cls(script, env)
            return zygote

    @property
    def pid(self) -> int | None:
        """The zygote's pid (``None`` before it starts)."""
        if self._proc is not None:
            return self._proc.pid
        return self._remote_pid if self._sock is not None else None

    @property
    def shared_from_parent(self) -> bool:
        """True where this process spawns from the zygote of the process it was forked from."""
        return self._proc is None and self._sock is not None

    def _start(self) -> None:
        parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-I", __file__, "--zygote", str(child.fileno()), str(self.script)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                env=self.env,
                pass_fds=(child.fileno(),),
                start_new_session=True,
            )
        finally:
            child.close()
        self._sock = parent
        self.starts += 1

    def start(self) -> None:
        """Start the zygote now, if it is not running: this returns at once and the zygote imports
        in the background (the first :meth:`spawn` waits for that). A process about to fork
        workers starts it first, so they all spawn from this one."""
        with self._lock:
            if self.owner != os.getpid():
                self._forget_in_child()
            if self._sock is None:
                self._start()

    def spawn(self, args: Mapping[str, Any]) -> Child:
        """Fork a worker with ``args`` (JSON); it is ready to read requests when this returns
        (its first message comes once its isolation is in place)."""
        with self._lock:
            if self.owner != os.getpid():  # inherited through os.fork(): not this process's
                self._forget_in_child()
            for attempt in (0, 1):
                if self._sock is None:
                    self._start()
                try:
                    return self._spawn(args)
                except (OSError, ValueError, EOFError):
                    self._stop()  # a dead or broken zygote: start a fresh one, once
                    if attempt:
                        raise
        raise AssertionError("unreachable")

    def _spawn(self, args: Mapping[str, Any]) -> Child:
        assert self._sock is not None
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        st_r, st_w = os.pipe()
        try:
            _send_message(self._sock, {"args": dict(args)}, [req_r, rep_w, st_w])
            reply, _ = _recv_message(self._sock)
        except BaseException:
            for fd in (req_w, rep_r, st_r):
                os.close(fd)
            raise
        finally:
            for fd in (req_r, rep_w, st_w):
                os.close(fd)
        if reply is None or "pid" not in reply:
            for fd in (req_w, rep_r, st_r):
                os.close(fd)
            raise EOFError(f"the zygote did not fork a worker: {reply}")
        return _ForkedChild(int(reply["pid"]), req_w, rep_r, st_r)

    def _stop(self) -> None:
        sock, proc = self._sock, self._proc
        self._sock = self._proc = None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()
        if proc is not None:
            try:
                proc.wait(timeout=2.0)
            except subprocess.TimeoutExpired:
                kill_group(proc)

    def close(self) -> None:
        """Stop the zygote (its live workers keep running until their owner closes them)."""
        with self._lock:
            if self.owner == os.getpid():
                self._stop()

    def _forget_in_child(self) -> None:
        """After os.fork(): the parent's zygote is not ours (close our copy of its socket)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                os.close(self._sock.detach())
        self._sock = self._proc = None
        self._remote_pid = None
        self.owner = os.getpid()

    def _connection_for_child(self) -> socket.socket | None:
        """Before os.fork(), with the lock held: a new connection to this process's live zygote
        for the child, sent to the zygote to adopt (one message, no reply awaited: a zygote still
        importing reads it later). ``None`` where there is no live zygote here."""
        if self._sock is None or self.owner != os.getpid():
            return None
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            _send_message(self._sock, {"adopt": True}, [theirs.fileno()])
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        return ours

    def _adopt_in_child(self, conn: socket.socket) -> None:
        """After os.fork(), in the child: spawn from the parent's zygote over ``conn``."""
        zygote_pid = self.pid
        self._forget_in_child()
        self._sock, self._remote_pid = conn, zygote_pid
        self.starts = 0


_FORKING: list[tuple[Zygote, socket.socket | None, bool]] = []
"""Between :func:`_before_fork` and the fork's end: each zygote, its child's connection, and
whether it is its script's :meth:`Zygote.shared` one."""


def _before_fork() -> None:
    """In the parent, right before os.fork(): hold every zygote's lock (no request is half sent
    when the child is made) and make each live zygote a connection for the child."""
    Zygote._class_lock.acquire()
    pid = os.getpid()
    for zygote in list(Zygote._all):
        zygote._lock.acquire()
        try:
            conn = zygote._connection_for_child()
        except BaseException:
            zygote._lock.release()
            raise
        shared = Zygote._instances.get((str(zygote.script), pid)) is zygote
        _FORKING.append((zygote, conn, shared))


def _after_fork_in_parent() -> None:
    for zygote, conn, _ in _FORKING:
        if conn is not None:
            conn.close()  # the child's end: the child has its copy
        zygote._lock.release()
    _FORKING.clear()
    Zygote._class_lock.release()


def _after_fork_in_child() -> None:
    Zygote._class_lock = threading.Lock()
    zygotes = [z for z, _, _ in _FORKING] or list(Zygote._all)  # held before the clear below
    Zygote._instances.clear()
    forking = {id(z): (conn, shared) for z, conn, shared in _FORKING}
    _FORKING.clear()
    for zygote in zygotes:
        zygote._lock = threading.Lock()  # held by the parent's fork (or one of its threads)
        conn, shared = forking.get(id(zygote), (None, False))
        if conn is not None:
            zygote._adopt_in_child(conn)
            if shared:  # the child's Zygote.shared() of that script is this one
                Zygote._instances[(str(zygote.script), os.getpid())] = zygote
        else:
            zygote._forget_in_child()


def _close_zygotes() -> None:
    for zygote in list(Zygote._all):
        zygote.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_after_fork_in_child,
    )
import atexit  # noqa: E402 - next to its one use

atexit.register(_close_zygotes)


def _load_script(script: str) -> Any:
    spec = importlib.util.spec_from_file_location("hiergym_worker", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["hiergym_worker"] = module
    spec.loader.exec_module(module)
    return module


def _zygote_main(control_fd: int, script: str) -> None:
    """The zygote's loop: hand each request to a worker forked in advance (the spare: forked
    while the owner had nothing to ask, waiting for its arguments and pipes, so the fork of a
    process that holds numpy and scipy is off the request's path) and fork the next spare after
    answering; reap workers, reporting each exit status on the status pipe that came with its
    request. A spare applies its isolation only once it has its arguments, as a direct fork does."""
    sys.modules.setdefault("hiergym_execution", sys.modules[__name__])
    sock = socket.socket(fileno=control_fd)
    module = _load_script(script)
    state = module.zygote_preload()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    status_fds: dict[int, int] = {}
    spare: list[tuple[int, socket.socket]] = []  # at most one: (pid, the zygote's end)
    conns = [sock]  # the owner's connection, then those adopted for its forks (and theirs)
    gc.freeze()  # workers never run a collection over the zygote's objects (no copy on write)

    def become_worker(message: dict[str, Any], fd_in: int, fd_out: int) -> None:
        module.worker_main(state, message["args"], fd_in, fd_out)

    def in_child(keep: Sequence[int] = ()) -> None:
        """Right after a fork, in the child: drop the zygote's signal set-up and descriptors."""
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in (*(c.detach() for c in conns), wake_r, wake_w, *status_fds.values()):
            if fd not in keep:
                os.close(fd)
        for _, end in spare:
            end.close()

    def fork_spare() -> None:
        ours, theirs = socket.socketpair()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ours.close()
                in_child()
                message, fds = _recv_message(theirs, max_fds=2)
                theirs.close()
                if message is not None and len(fds) == 2:
                    os.setsid()
                    become_worker(message, *fds)
                code = 0  # no request came (the zygote stopped): nothing to do
            finally:
                os._exit(code)
        theirs.close()
        spare.append((pid, ours))

    def hand_to_spare(message: dict[str, Any], fd_in: int, fd_out: int) -> int | None:
        """The spare's pid once it has the request, or None (no spare, or it died)."""
        if not spare:
            return None
        pid, end = spare.pop()
        try:
            _send_message(end, message, [fd_in, fd_out])
        except OSError:
            return None  # it died waiting: reaped with the others
        finally:
            end.close()
        return pid

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            fd = status_fds.pop(pid, None)
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.write(fd, struct.pack("<i", status))
                os.close(fd)
            for waiting in [w for w in spare if w[0] == pid]:  # a spare that died unused
                spare.remove(waiting)
                waiting[1].close()

    def drop(conn: socket.socket) -> None:
        """A fork's connection ended or broke: the owner and the other forks go on."""
        conns.remove(conn)
        conn.close()

    def serve(conn: socket.socket) -> bool:
        """One message on ``conn``; False when the zygote should stop (its owner has gone)."""
        message, fds = _recv_message(conn, max_fds=3)
        if message is None:
            for fd in fds:
                os.close(fd)
            if conn is sock:
                return False  # the owner closed its end or died
            drop(conn)
            return True
        if message.get("adopt") is True and len(fds) == 1:  # a connection for a fork of a client
            conns.append(socket.socket(fileno=fds[0]))
            return True
        if len(fds) != 3:
            for fd in fds:
                os.close(fd)
            _send_message(conn, {"error": "a spawn request needs three descriptors"})
            return True
        fd_in, fd_out, status_w = fds
        pid = hand_to_spare(message, fd_in, fd_out)
        if pid is None:
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    os.close(status_w)
                    in_child()
                    os.setsid()
                    become_worker(message, fd_in, fd_out)
                    code = 0
                finally:
                    os._exit(code)
        os.close(fd_in)
        os.close(fd_out)
        status_fds[pid] = status_w
        with contextlib.suppress(OSError):  # a client gone meanwhile: its worker is reaped as usual
            _send_message(conn, {"pid": pid})
        reap()
        if not spare:
            fork_spare()  # while the client's new worker hardens itself
        return True

    fork_spare()
    while True:
        ready, _, _ = select.select([*conns, wake_r], [], [])
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(wake_r, 4096):
                    pass
            reap()
        for conn in ready:
            if conn is wake_r or conn not in conns:
                continue
            try:
                if not serve(conn):
                    return
            except (OSError, ValueError):  # a broken connection or message
                if conn is sock:
                    raise
                drop(conn)


if __name__ == "__main__" and len(sys.argv) == 4 and sys.argv[1] == "--zygote":
    _zygote_main(int(sys.argv[2]), sys.argv[3])
