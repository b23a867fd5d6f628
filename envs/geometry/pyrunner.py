"""The parent side of the ``python`` tool: a warm, locked-down worker process per env.

Starting Python with numpy and scipy costs most of a second, so each env keeps one worker
(``pyworker.py``) warm and sends it code over a pipe (a few milliseconds per call). Workers are
forked from a zygote that imported those modules once per process (the shared execution layer,
:mod:`hiergym.envs.execution`): a worker is ready in milliseconds and shares the zygote's pages. The worker
never runs agent code itself: it forks a child per call, so every call starts from the same
pristine state, in its own temp dir, removed when the call ends (what persists between calls:
nothing the code did; see ``pyworker.spawn``). The worker enforces per-call limits (see its
docstring), including a disk quota and the code's CPU timer; this side stops a call whose process
used its CPU budget (code that never returns to Python) and has a wall-clock backstop, whose hit
within that budget is an overloaded machine, never a timeout (the shared layer's
:func:`~hiergym.envs.execution.watch` and :func:`~hiergym.envs.execution.judge`, as for RTL's
toolchain runs). It replaces a worker that dies, hangs, breaks the protocol or leaves files
behind, and never lets two envs (or an env and its ``fork()``) share a worker: copying a runner gives a fresh, unstarted one. Workers are killed
on ``close()`` and at interpreter exit, and a process fork never reuses its parent's worker.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import shutil
import signal
import struct
import tempfile
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hiergym.envs import execution

WORKER = Path(__file__).with_name("pyworker.py")
TIMEOUT_S = 5.0
MEMORY_MB = 512
OUTPUT_CHARS = 7_500  # under the core's 8,000-character result cap, so the note shows
FILE_BYTES = 1 << 20
DISK_BYTES = 8 << 20
MAX_CODE_CHARS = 20_000
LIFETIME_CPU_S = 600
STARTUP_TIMEOUT_S = 60.0
GRACE_S = 1.0
"""How many CPU seconds past its own timer a call's process may use before the worker is killed
(code that never returns to Python, where the timer waits for it)."""
BACKSTOP_FACTOR = 10.0
BACKSTOP_MIN_S = 30.0
"""A call's wall-clock backstop: this many times its CPU limit, at least ``BACKSTOP_MIN_S`` (a
call that got under a tenth of a core all along). Its hit means the machine, not the code, was
too slow: the call is stopped and reported overloaded, never a timeout against the agent."""

WORKER_ENV = {
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "LC_ALL": "C.UTF-8",
}
"""The workers' environment (each worker's HOME and TMPDIR are its own root)."""

_LIVE: weakref.WeakSet[PythonRunner] = weakref.WeakSet()


@dataclass(frozen=True)
class PythonResult:
    """What a call gave: ``overloaded`` when the wall-clock backstop stopped it within its CPU
    budget (``error`` says so; the code was not judged)."""

    ok: bool
    stdout: str
    error: str | None = None
    truncated: bool = False
    overloaded: bool = False


class WorkerFailure(Exception):
    """The worker died, hung or broke the protocol; it has been discarded."""


class CallStopped(Exception):
    """A limit stopped a call before it answered (``overloaded``: the wall-clock backstop, within
    its CPU budget); the worker has been discarded."""

    def __init__(self, message: str, overloaded: bool):
        super().__init__(message)
        self.overloaded = overloaded


class PythonRunner:
    """Runs agent code in a warm sandboxed worker; one per env, never shared."""

    def __init__(
        self,
        timeout_s: float = TIMEOUT_S,
        memory_mb: int = MEMORY_MB,
        output_chars: int = OUTPUT_CHARS,
        file_bytes: int = FILE_BYTES,
        *,
        disk_bytes: int = DISK_BYTES,
        os_layer_only: bool = False,
        zygote: bool | None = None,
        backstop_s: float | None = None,
    ):
        """Args:
        timeout_s: CPU seconds per call (the code's own; waiting does not count).
        memory_mb: address space the code may add to the warm worker's.
        output_chars: printed characters kept per call.
        file_bytes: the largest file the code may write.
        disk_bytes: the most one call may put on disk: it may create (or open for writing)
            ``disk_bytes // file_bytes`` files, each capped at ``file_bytes``. Every call's files
            are removed when it ends, so this is also the worker's total.
        os_layer_only: for tests of the OS layer alone: no audit hook, no restricted builtins.
            Never use it for agent code.
        zygote: fork the worker from the process's pre-warmed zygote (default, unless
            ``HIERGYM_PYTHON_ZYGOTE=0``); ``False`` starts a fresh interpreter per worker (the
            full import cost: the baseline, and the way out where forking cannot be used).
        backstop_s: the wall-clock backstop per call (default: see :meth:`call_limits`).
        """
        if zygote is None:
            zygote = os.environ.get("HIERGYM_PYTHON_ZYGOTE", "1").strip() not in ("0", "false")
        self.os_layer_only = os_layer_only
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self.output_chars = output_chars
        self.file_bytes = file_bytes
        self.disk_bytes = disk_bytes
        self.zygote = zygote
        self.backstop_s = backstop_s
        self._proc: execution.Child | None = None
        self._root: str | None = None
        self._pid_owner = 0
        self._ready = False
        self._next_id = 0
        self._buffer = b""
        self.hardening: tuple[str, ...] = ()
        self.used = False
        self.restarts = 0
        _LIVE.add(self)

    # Copies (env.fork() deep-copies episode memory) get their own worker, started on demand.
    def __copy__(self) -> PythonRunner:
        return PythonRunner(
            self.timeout_s,
            self.memory_mb,
            self.output_chars,
            self.file_bytes,
            disk_bytes=self.disk_bytes,
            os_layer_only=self.os_layer_only,
            zygote=self.zygote,
            backstop_s=self.backstop_s,
        )

    def __deepcopy__(self, memo: dict[int, Any]) -> PythonRunner:
        return self.__copy__()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def root(self) -> str | None:
        """The worker's directory (each call runs in a fresh subdirectory of it)."""
        return self._root

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self) -> None:
        """Start a worker (forked from the process's warm zygote: a few milliseconds; the next
        ``run`` waits until its isolation is in place)."""
        if self._proc is not None and self._pid_owner != os.getpid():
            self._forget()  # inherited through os.fork(): the parent process owns that worker
        if self.alive:
            return
        self._discard()
        self._root = tempfile.mkdtemp(prefix="hiergym-py-")
        args = {
            "root": self._root,
            "limits": {
                "memory_mb": self.memory_mb,
                "output_chars": self.output_chars,
                "file_bytes": self.file_bytes,
                "disk_bytes": self.disk_bytes,
                "lifetime_cpu_s": LIFETIME_CPU_S,
                "timeout_s": self.timeout_s,
                "os_layer_only": self.os_layer_only,
            },
        }
        if self.zygote:
            self._proc = execution.Zygote.shared(WORKER, WORKER_ENV).spawn(args)
        else:
            env = {**WORKER_ENV, "HOME": self._root, "TMPDIR": self._root}
            self._proc = execution.start_fresh(WORKER, args, env, self._root)
        self._pid_owner = os.getpid()
        self._ready = False
        self._buffer = b""

    def call_limits(self, timeout: float) -> execution.Limits:
        """One call's limits in the shared execution layer's terms: the CPU seconds its process
        may use (the code's own timer stops it at ``timeout``; this side, :data:`GRACE_S` later,
        code that never returns to Python) and a wall-clock backstop (``backstop_s``, by default
        :data:`BACKSTOP_FACTOR` times ``timeout``, at least :data:`BACKSTOP_MIN_S`)."""
        backstop = self.backstop_s
        if backstop is None:
            backstop = max(BACKSTOP_MIN_S, BACKSTOP_FACTOR * timeout)
        return execution.Limits(wall_s=backstop, tree_cpu_s=timeout + GRACE_S)

    def warm(self) -> None:
        """Start the worker if needed and wait until it can take a call (its isolation in place,
        the first call's process forked). Raises WorkerFailure (the worker discarded) if it
        cannot start."""
        self.start()
        try:
            self._await_ready()
        except WorkerFailure:
            self.restarts += 1
            self._discard()
            raise

    def _await_ready(self) -> None:
        if self._ready:
            return
        hello = self._receive(time.monotonic() + STARTUP_TIMEOUT_S, "start")
        if not hello.get("ready"):
            raise WorkerFailure("the python worker failed to start")
        self.hardening = tuple(hello.get("hardening", ()))
        self._ready = True

    def recycle(self) -> None:
        """Replace a worker that ran agent code with a fresh one, warming in the background."""
        if self.used:
            self._discard()
            self.used = False
            self.start()

    def run(self, code: str, timeout_s: float | None = None) -> PythonResult:
        """Run ``code``. Every failure (the code's, or the worker's) comes back as a result."""
        timeout = min(self.timeout_s, timeout_s or self.timeout_s)
        limits = self.call_limits(timeout)
        self.start()
        self.used = True
        try:
            self._await_ready()
            self._next_id += 1
            self._send({"id": self._next_id, "code": code, "timeout": timeout})
            reply = self._await_reply(timeout, limits)
            if reply.get("id") != self._next_id:
                raise WorkerFailure("the python worker answered out of turn; it was replaced")
            if self._leftovers():
                raise WorkerFailure("the python worker left files behind after a call")
        except (WorkerFailure, CallStopped) as e:
            self.restarts += 1
            self._discard()
            if isinstance(e, CallStopped):
                return PythonResult(ok=False, stdout="", error=str(e), overloaded=e.overloaded)
            return PythonResult(ok=False, stdout="", error=f"{e}; the worker was replaced")
        return PythonResult(
            ok=bool(reply.get("ok")),
            stdout=str(reply.get("stdout", ""))[: self.output_chars],
            error=None if reply.get("error") is None else str(reply["error"])[:2000],
            truncated=bool(reply.get("truncated")),
        )

    def close(self) -> None:
        self._discard()

    def __del__(self) -> None:
        # At interpreter shutdown module globals (contextlib among them) may already be None:
        # a plain try keeps that from printing "Exception ignored in __del__" on every exit.
        try:  # noqa: SIM105 - contextlib itself may be gone at shutdown
            self._discard()
        except Exception:
            pass

    # ---- internals ----------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        assert self._proc is not None
        body = json.dumps(message).encode()
        data = struct.pack(">I", len(body)) + body
        try:
            while data:
                data = data[os.write(self._proc.to_child, data) :]
        except OSError as e:
            raise WorkerFailure(self._death("could not send code to the python worker")) from e

    def _await_reply(self, timeout: float, limits: execution.Limits) -> dict[str, Any]:
        """The call's reply, waited for under ``limits``: the CPU of the worker's live children
        (the call's process) is measured while it runs, and the worker is killed (CallStopped)
        at the CPU budget or at the wall-clock backstop, the latter within the budget being an
        overloaded machine."""
        assert self._proc is not None
        worker = self._proc.pid
        stop, used = execution.watch(
            limits, self._arrived, lambda: execution.tree_cpu_seconds(worker, own=False)
        )
        if not stop:
            return self._take()
        timed_out, overloaded = execution.judge(stop, used, limits.tree_cpu_s)
        if overloaded:
            raise CallStopped(
                f"the machine is overloaded: the code used {used:.2f} of its {timeout:g} CPU "
                f"seconds but ran past the call's wall-clock backstop ({limits.wall_s:g} s), so "
                "it was stopped and the worker replaced; this says nothing about the code: run "
                "it again (or run fewer jobs at once)",
                overloaded=True,
            )
        assert timed_out
        raise CallStopped(
            f"TimeoutError: the code used more than {timeout:g} s of CPU time; the worker was "
            "stopped and replaced",
            overloaded=False,
        )

    def _receive(self, deadline: float, what: str = "answer") -> dict[str, Any]:
        """A message within a wall-clock deadline (the worker's hello)."""
        while not self._arrived(max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                raise WorkerFailure(f"the python worker did not {what} in time")
        return self._take()

    def _arrived(self, timeout: float) -> bool:
        """Whether a whole message is buffered, reading what the worker sends for at most
        ``timeout`` seconds."""
        if self._complete():
            return True
        assert self._proc is not None
        fd = self._proc.from_child
        ready, _, _ = select.select([fd], [], [], timeout)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                raise WorkerFailure(self._death("the python worker died"))
            self._buffer += chunk
        return self._complete()

    def _complete(self) -> bool:
        if len(self._buffer) < 4:
            return False
        (size,) = struct.unpack(">I", self._buffer[:4])
        if size > 4 + 4 * self.output_chars + 16_384:  # JSON may escape every character
            raise WorkerFailure("the python worker sent an oversized reply")
        return len(self._buffer) >= 4 + size

    def _take(self) -> dict[str, Any]:
        (size,) = struct.unpack(">I", self._buffer[:4])
        body, self._buffer = self._buffer[4 : 4 + size], self._buffer[4 + size :]
        try:
            return json.loads(body)
        except ValueError as e:
            raise WorkerFailure("the python worker sent a garbled reply") from e

    def _leftovers(self) -> bool:
        """Whether a file is left under the worker's root after a call. The worker empties the
        root after every call (only the next call's fresh, empty dir is there between calls);
        a worker that did not is replaced, root and all."""
        if not self._root:
            return False
        try:
            return any(files for _, _, files in os.walk(self._root, onerror=_raise))
        except OSError:
            return True

    def _death(self, what: str) -> str:
        assert self._proc is not None
        code = self._proc.wait(1.0)
        if code is None:
            return what
        if code < 0:
            name = signal.Signals(-code).name
            why = {
                "SIGXCPU": "the CPU limit",
                "SIGKILL": "a limit",
                "SIGSEGV": "a crash",
                "SIGXFSZ": "the file-size limit",
            }.get(name, name)
            return f"{what} ({name}: {why})"
        return f"{what} (exit status {code})"

    def _forget(self) -> None:
        self._proc = None
        self._root = None
        self._ready = False

    def _discard(self) -> None:
        proc, root = self._proc, self._root
        self._forget()
        if proc is not None and self._pid_owner == os.getpid():
            proc.kill()  # the whole process group, reaped before this returns
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)


def _raise(error: OSError) -> None:
    raise error


def warm_zygote() -> None:
    """Start this process's zygote now, where workers come from one (it imports in the
    background): a process about to fork processes that will run python tools (bench workers,
    a vector env's workers) calls this first, so every fork spawns from this one zygote."""
    if os.environ.get("HIERGYM_PYTHON_ZYGOTE", "1").strip() not in ("0", "false"):
        execution.Zygote.shared(WORKER, WORKER_ENV).start()


@atexit.register
def _close_all() -> None:
    for runner in list(_LIVE):
        runner.close()
