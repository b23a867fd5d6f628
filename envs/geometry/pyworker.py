"""The warm worker behind the geometry ``python`` tool (run by the zygote or as a script).

The shared execution layer's zygote (:class:`hiergym.envs.execution.Zygote`) loads this file,
imports and exercises numpy and scipy once (:func:`zygote_preload`), and forks a worker per
runner; each worker (:func:`worker_main`) locks itself down after the fork and serves one request
at a time over a length-prefixed JSON protocol on the fds it was given. Run as a script
(``python -I pyworker.py ARGS``) it is the same worker in a fresh interpreter (the baseline,
``PythonRunner(zygote=False)``). Defence in depth, outermost first:

1. OS (:func:`hiergym.envs.execution.isolate`, limits in :func:`worker_limits`): a new network
   namespace (when root), privileges dropped to ``nobody`` (when root), Landlock
   (when the kernel has it: read-only access to the interpreter's libraries, read-write to the
   worker's temp dir, no TCP), ``no_new_privs``, and rlimits: address space, CPU seconds over the
   worker's life, file size, open files, no core dumps, no new processes (``RLIMIT_NPROC=0``).
2. A PEP 578 audit hook, installed last and impossible to remove: it vetoes process creation,
   signals, sockets, ctypes, rlimit changes, new audit hooks, heap walking (gc), imports outside the
   allow-list, and every file or directory operation outside the temp dir (reads of the
   interpreter's own library files excepted).
3. The agent's code: an AST check (no names or attributes that start with ``_``, no frame or code
   attributes, imports only from the allow-list), restricted builtins (no ``eval``/``exec``/
   ``compile``/``globals``/``vars``/``input``; ``open`` only inside the call's temp dir; ``type``
   only of values, never making classes), read-only module views (no ``functools`` attribute
   copying by name; numpy and scipy ``__getattr__`` fallbacks refuse dunder names, so nothing the
   agent builds can carry an ``__array_interface__`` pointer), a CPU-time timer per call
   (``ITIMER_PROF``: the call's limit is CPU seconds of its code, so whether it finishes does
   not depend on what else the machine runs), a bounded output buffer, and a fresh namespace
   and fresh temp dir for every call.
4. Isolation between calls: the warm worker never runs agent code. Each call runs in a child
   forked for it (which sets ``RLIMIT_NPROC=0`` and a CPU limit on itself first: past its timer,
   for code that does not return to Python), so whatever the
   code changes — variables, class attributes of allowed modules' classes, module state such as
   numpy's print options or the decimal context — dies with the child. The call's files live in
   its own temp dir, where the audit hook confines them; it may create or open for writing at
   most ``disk_bytes // file_bytes`` files (each capped by ``RLIMIT_FSIZE``), and everything under
   the worker's root is removed when the call ends. Nothing persists from one call to the next.

The parent (``pyrunner.PythonRunner``) also stops a call whose process used its CPU budget (code
that never returns to Python, such as a long LAPACK routine), with a wall-clock backstop whose hit
within that budget is reported as an overloaded machine, and replaces a worker that dies, hangs
or misbehaves.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import gc
import json
import os
import shutil
import signal
import struct
import sys
import sysconfig
import tempfile
import traceback
import types

if __name__ in ("__main__", "hiergym_worker"):
    # Run by the zygote or as a script: the execution layer by path, without importing hiergym.
    execution = sys.modules.get("hiergym_execution")
    if execution is None:
        import importlib.util

        _spec = importlib.util.spec_from_file_location(
            "hiergym_execution", os.path.join(os.path.dirname(__file__), "..", "execution.py")
        )
        execution = importlib.util.module_from_spec(_spec)
        sys.modules["hiergym_execution"] = execution
        _spec.loader.exec_module(execution)
else:
    from hiergym.envs import execution

ALLOWED_MODULES = frozenset(
    {
        "math",
        "cmath",
        "statistics",
        "itertools",
        "functools",
        "collections",
        "fractions",
        "decimal",
        "json",
        "re",
        "random",
        "heapq",
        "bisect",
        "numpy",
        "numpy.linalg",
        "numpy.random",
        "numpy.fft",
        "scipy",
        "scipy.linalg",
        "scipy.optimize",
        "scipy.spatial",
        "scipy.spatial.transform",
        "scipy.special",
    }
)
"""The import allow-list: everything agent code may import (documented in the tool's schema)."""
LOADABLE_ROOTS = frozenset({"numpy", "scipy"} | {m.split(".")[0] for m in ALLOWED_MODULES})
FORBIDDEN_ATTRIBUTES = frozenset(
    {
        "gi_frame", "gi_code", "gi_yieldfrom", "cr_frame", "cr_code", "cr_await", "cr_origin",
        "ag_frame", "ag_code", "ag_await", "f_back", "f_builtins", "f_code", "f_globals",
        "f_locals", "f_trace", "tb_frame", "tb_next", "co_code", "mro", "func_globals",
    }
)  # fmt: skip
SAFE_BUILTINS = [
    "abs",
    "all",
    "any",
    "ascii",
    "bin",
    "bool",
    "bytearray",
    "bytes",
    "callable",
    "chr",
    "complex",
    "dict",
    "divmod",
    "enumerate",
    "filter",
    "float",
    "format",
    "frozenset",
    "hash",
    "hex",
    "int",
    "isinstance",
    "issubclass",
    "iter",
    "len",
    "list",
    "map",
    "max",
    "min",
    "next",
    "object",
    "oct",
    "ord",
    "pow",
    "range",
    "repr",
    "reversed",
    "round",
    "set",
    "slice",
    "sorted",
    "str",
    "sum",
    "tuple",
    "type",
    "zip",
    "ArithmeticError",
    "AssertionError",
    "AttributeError",
    "BaseException",
    "Exception",
    "FloatingPointError",
    "IndexError",
    "KeyError",
    "LookupError",
    "MemoryError",
    "NameError",
    "NotImplementedError",
    "OverflowError",
    "RecursionError",
    "RuntimeError",
    "StopIteration",
    "TimeoutError",
    "TypeError",
    "ValueError",
    "ZeroDivisionError",
    "Warning",
    "ImportError",
    "PermissionError",
    "OSError",
    "FileNotFoundError",
    "super",
    "property",
    "staticmethod",
    "classmethod",
    "True",
    "False",
    "None",
    "NotImplemented",
    "Ellipsis",
]
DENIED_EVENTS = frozenset(
    {
        "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty", "os.kill",
        "os.killpg", "os.putenv", "os.unsetenv", "os.setuid", "subprocess.Popen",
        "resource.setrlimit", "resource.prlimit", "sys.addaudithook", "gc.get_objects",
        "gc.get_referrers", "gc.get_referents", "builtins.input", "builtins.breakpoint",
        "pty.spawn", "sys.remote_exec",
    }
)  # fmt: skip
DENIED_PREFIXES = ("socket.", "ctypes.", "mmap.", "signal.", "winreg.", "msvcrt.")
PATH_EVENT_PREFIXES = ("os.", "shutil.", "glob.", "tempfile.", "pathlib.", "open")


class CallTimeout(BaseException):  # noqa: N818 - mirrors TimeoutError, but agent code rarely catches it
    """The call's code used its CPU seconds."""


# --------------------------------------------------------------------------------------------
# Protocol


def read_message(fd: int) -> dict | None:
    header = _read_exact(fd, 4)
    if header is None:
        return None
    (size,) = struct.unpack(">I", header)
    body = _read_exact(fd, size)
    return None if body is None else json.loads(body)


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        chunk = os.read(fd, n - got)
        if not chunk:
            return None
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def write_message(fd: int, message: dict) -> None:
    body = json.dumps(message).encode()
    data = struct.pack(">I", len(body)) + body
    while data:
        data = data[os.write(fd, data) :]


# --------------------------------------------------------------------------------------------
# Start-up: imports, then the OS layer


def preload() -> dict[str, types.ModuleType]:
    """Import (and exercise) every allowed module while the worker may still read anything."""
    import importlib

    modules = {name: importlib.import_module(name) for name in sorted(ALLOWED_MODULES)}
    np = modules["numpy"]
    np.linalg.svd(np.eye(3))
    np.linalg.lstsq(np.eye(3), np.ones(3), rcond=None)
    modules["scipy.optimize"].least_squares(lambda x: x - 1.0, [0.0])
    modules["scipy.spatial"].ConvexHull(np.array([[0, 0], [1, 0], [0, 1], [1, 1.0]]))
    modules["scipy.spatial.transform"].Rotation.from_matrix(np.eye(3)).as_quat()
    close_dunder_fallbacks()
    return modules


def close_dunder_fallbacks() -> None:
    """Make Python-level ``__getattr__`` fallbacks of numpy and scipy classes refuse dunder names.

    ``OptimizeResult`` is a dict whose missing attributes are its items: an agent's
    ``{"__array_interface__": {"data": (address, False), ...}}`` became an attribute numpy trusts,
    reading and writing any address in the worker. Runs before lockdown (it walks the heap).
    """
    for obj in gc.get_objects():
        if not isinstance(obj, type):
            continue
        module = obj.__dict__.get("__module__")
        fallback = obj.__dict__.get("__getattr__")
        if not isinstance(module, str) or module.split(".")[0] not in ("numpy", "scipy"):
            continue
        if isinstance(fallback, types.FunctionType):
            obj.__getattr__ = _without_dunders(fallback)


def _without_dunders(fallback: types.FunctionType) -> types.FunctionType:
    def __getattr__(self, name):  # noqa: N807 - it replaces a __getattr__
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)
        return fallback(self, name)

    return __getattr__  # type: ignore[return-value]


def library_roots(modules: dict[str, types.ModuleType]) -> list[str]:
    roots = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]}
    for name in ("numpy", "scipy"):
        package = os.path.dirname(modules[name].__file__)
        roots.add(package)
        roots.add(package + ".libs")
    roots.update({"/usr/lib", "/lib", "/lib64", "/usr/lib64"})
    return sorted(os.path.realpath(r) for r in roots if os.path.isdir(r))


def worker_limits(limits: dict, read_roots: list[str]) -> execution.Limits:
    """The worker's OS limits, as the shared execution layer's dataclass: address space and CPU
    seconds on top of what the warm worker already uses, file size, 64 open files, no core
    dumps, an empty network namespace, ``nobody``, and Landlock over the library roots."""
    return execution.Limits(
        wall_s=float(limits.get("timeout_s", 5.0)),
        cpu_s=float(limits["lifetime_cpu_s"]),
        memory_bytes=int(limits["memory_mb"]) * execution.MiB,
        file_bytes=int(limits["file_bytes"]),
        open_files=64,
        processes=None,  # RLIMIT_NPROC=0 is set in each call's child (the worker forks them)
        core_bytes=0,
        output_bytes=int(limits["output_chars"]),
        network=False,
        landlock=True,
        read_roots=tuple(read_roots),
        drop_privileges=True,
        relative=True,
    )


def harden(root: str, limits: dict, read_roots: list[str]) -> list[str]:
    """The OS layer (:func:`execution.isolate`); each step is best effort and reported (the audit
    hook is always installed)."""
    report = execution.isolate(worker_limits(limits, read_roots), root)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-big write fails with EFBIG instead
    report.append("RLIMIT_NPROC per call")  # set in each call's child, which runs the code
    return report


class Phase:
    """What the audit hook allows right now: the worker's own steps between calls, or one call's
    agent code (files inside that call's dir only, a bounded number of files created)."""

    __slots__ = ("call_prefix", "creations_left")

    def __init__(self) -> None:
        self.call_prefix: str | None = None  # None: the worker's own code is running
        self.creations_left = 0


WORKER_EVENTS = frozenset({"os.fork", "resource.setrlimit"})
"""Denied events the worker itself needs between calls (forking a call's child, which then
lowers its own limits); never allowed while agent code runs."""
CREATION_EVENTS = frozenset({"os.mkdir", "os.symlink", "os.link", "os.rename", "os.replace"})


def install_audit_hook(root: str, read_roots: list[str], phase: Phase) -> None:
    """The last line: veto dangerous events whoever triggers them (this hook cannot be removed).

    While agent code runs (``phase.call_prefix`` set, in the call's own child process) every file
    or directory operation must stay inside the call's dir, and each file opened for writing or
    entry created spends one of ``phase.creations_left`` (with RLIMIT_FSIZE, that bounds the bytes
    one call can put on disk).
    """
    root_prefix = os.path.realpath(root) + os.sep
    read_prefixes = tuple(r.rstrip(os.sep) + os.sep for r in read_roots)
    realpath, fspath, isinstance_, str_, bytes_ = (
        os.path.realpath,
        os.fspath,
        isinstance,
        str,
        bytes,
    )
    denied, denied_prefixes, path_prefixes = DENIED_EVENTS, DENIED_PREFIXES, PATH_EVENT_PREFIXES
    worker_events, creation_events = WORKER_EVENTS, CREATION_EVENTS
    loadable = LOADABLE_ROOTS
    write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND

    def inside(path: object, prefixes: tuple[str, ...]) -> bool:
        if isinstance_(path, bytes_):
            path = path.decode("utf-8", "replace")
        if not isinstance_(path, str_):
            try:
                path = fspath(path)
            except TypeError:
                return False
        full = realpath(path)
        return any((full + "/").startswith(p) for p in prefixes)

    def spend(what: str) -> None:
        if phase.creations_left <= 0:
            raise PermissionError(
                f"{what}: the python tool's disk quota for one call is used up (each call may "
                "create or open for writing a few files of up to 1 MiB; it has no room for more)"
            )
        phase.creations_left -= 1

    def hook(event: str, args: tuple) -> None:
        call_prefix = phase.call_prefix
        if event in denied or event.startswith(denied_prefixes):
            if call_prefix is None and event in worker_events:
                return
            raise PermissionError(f"{event} is not allowed in the python tool")
        if event == "import":
            if args[0].split(".")[0] not in loadable:
                raise PermissionError(f"import of {args[0]!r} is not allowed in the python tool")
            return
        own = (root_prefix,) if call_prefix is None else (call_prefix,)
        if event == "open":
            path, mode, flags = args
            if path is None:
                return
            if isinstance_(path, int):
                raise PermissionError("opening file descriptors is not allowed in the python tool")
            writing = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & write_flags)
            allowed = own if writing else (*own, *read_prefixes)
            if not inside(path, allowed):
                raise PermissionError(f"file access outside the temp dir is not allowed: {path!r}")
            if writing and call_prefix is not None:
                spend(f"open({path!r}) for writing")
            return
        if event.startswith(path_prefixes):
            for arg in args:
                if isinstance_(arg, (str_, bytes_)) and not inside(arg, own):
                    raise PermissionError(
                        f"{event} outside the temp dir is not allowed in the python tool"
                    )
            if event in creation_events and call_prefix is not None:
                spend(event)

    sys.addaudithook(hook)


# --------------------------------------------------------------------------------------------
# The agent's side


def _no_pickle_load(load: types.FunctionType) -> object:
    """``numpy.load`` without pickles: a pickle would run arbitrary code in the worker."""

    def load_without_pickles(file, mmap_mode=None, allow_pickle=False, **kwargs):
        return load(file, mmap_mode=mmap_mode, allow_pickle=False, **kwargs)

    return load_without_pickles


def _default_names_only(wrap: types.FunctionType) -> object:
    """``functools.update_wrapper`` / ``wraps`` with their default attribute lists only: custom
    ones copy any attribute by name (``__array_interface__`` from a temporary array, say)."""

    def with_defaults(*args, **kwargs):
        if len(args) > 2 or set(kwargs) - {"wrapper", "wrapped"}:
            raise TypeError(f"{wrap.__name__}() takes no assigned/updated lists in the python tool")
        return wrap(*args, **kwargs)

    return with_defaults


OVERRIDES = {
    ("numpy", "load"): _no_pickle_load,
    ("functools", "update_wrapper"): _default_names_only,
    ("functools", "wraps"): _default_names_only,
}


class ModuleView:
    """A read-only view of an allowed module: public attributes only, allowed submodules only."""

    __slots__ = ("_module",)

    def __init__(self, module: types.ModuleType):
        object.__setattr__(self, "_module", module)

    def __getattr__(self, name: str) -> object:
        if name.startswith("_"):
            raise AttributeError(f"{name!r} is not available in the python tool")
        module = object.__getattribute__(self, "_module")
        value = getattr(module, name)
        override = OVERRIDES.get((module.__name__, name))
        if override is not None:
            return override(value)
        if isinstance(value, types.ModuleType):
            if value.__name__ not in ALLOWED_MODULES:
                raise AttributeError(
                    f"module {value.__name__!r} is not available; allowed: {sorted(ALLOWED_MODULES)}"
                )
            return ModuleView(value)
        return value

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("modules are read-only in the python tool")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("modules are read-only in the python tool")

    def __dir__(self) -> list[str]:
        return [n for n in dir(object.__getattribute__(self, "_module")) if not n.startswith("_")]

    def __repr__(self) -> str:
        return f"<module {object.__getattribute__(self, '_module').__name__!r}>"


class CodeRejected(Exception):
    """The code uses a construct the python tool does not allow."""


def check_code(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.Name):
            name = node.id
        elif isinstance(node, ast.Attribute):
            name = node.attr
            if name in FORBIDDEN_ATTRIBUTES:
                raise CodeRejected(f"line {node.lineno}: attribute {name!r} is not allowed")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            name = node.name
        elif isinstance(node, ast.arg):
            name = node.arg
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)):
            name = node.name
        elif isinstance(node, ast.MatchClass):
            for attr in node.kwd_attrs:
                if attr.startswith("_") or attr in FORBIDDEN_ATTRIBUTES:
                    raise CodeRejected(f"line {node.lineno}: attribute {attr!r} is not allowed")
        elif isinstance(node, ast.keyword) and node.arg and node.arg.startswith("__"):
            raise CodeRejected(f"line {node.lineno}: keyword {node.arg!r} is not allowed")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                _check_import(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                raise CodeRejected(f"line {node.lineno}: relative imports are not allowed")
            _check_import(node.module or "", node.lineno)
            for alias in node.names:
                if alias.name.startswith("_") or alias.name == "*":
                    raise CodeRejected(f"line {node.lineno}: cannot import {alias.name!r}")
        if name is not None and name.startswith("_") and name != "_":
            raise CodeRejected(
                f"line {getattr(node, 'lineno', '?')}: names starting with '_' are not allowed "
                f"({name!r})"
            )


def _check_import(module: str, lineno: int) -> None:
    if module not in ALLOWED_MODULES:
        raise CodeRejected(
            f"line {lineno}: import of {module!r} is not allowed; allowed modules: "
            f"{', '.join(sorted(ALLOWED_MODULES))}"
        )


def _guard_name(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError("attribute name must be a string")
    if name.startswith("_") or name in FORBIDDEN_ATTRIBUTES:
        raise AttributeError(f"attribute {name!r} is not allowed in the python tool")
    return name


def _guarded_type(*args: object) -> type:
    """``type(value)``, and nothing that makes classes.

    ``type(name, bases, namespace)``, or any metaclass reached through ``type(SomeClass)``, takes
    attribute names as data, past the AST check: a class with an ``__array_interface__`` made numpy
    read and write any address in the worker, from where the audit hook itself could be undone.
    Class statements remain (their bodies are checked like any code).
    """
    if len(args) != 1:
        raise TypeError("type() with 3 arguments is not allowed in the python tool; use a class")
    found = type(args[0])
    if issubclass(found, type):
        raise TypeError("the type of a class (its metaclass) is not available in the python tool")
    return found


def make_builtins(
    modules: dict[str, types.ModuleType], call_dir: str, out: list[str], cap: int
) -> dict[str, object]:
    safe: dict[str, object] = {n: getattr(builtins, n) for n in SAFE_BUILTINS}
    real_open = builtins.open
    prefix = os.path.realpath(call_dir) + os.sep
    size = [0]

    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):  # noqa: A002
        if level or name not in ALLOWED_MODULES:
            # Not the agent's own import statements (check_code vets those): C code such as
            # ndarray.mean imports numpy internals through the calling frame's __import__. New
            # module loads stay under the audit hook's allow-list.
            return real_import(name, globals, locals, fromlist, level)
        if fromlist:
            return ModuleView(modules[name])
        return ModuleView(modules[name.split(".")[0]])

    def guarded_open(file, mode="r", *args, **kwargs):
        if not isinstance(file, str) or not (os.path.realpath(file) + os.sep).startswith(prefix):
            raise PermissionError(
                f"open() is limited to files in the call's temp dir, not {file!r}"
            )
        return real_open(file, mode, *args, **kwargs)

    def guarded_print(*values, sep=" ", end="\n", file=None, flush=False):
        text = (" " if sep is None else str(sep)).join(str(v) for v in values)
        text += "\n" if end is None else str(end)
        if size[0] < cap:
            out.append(text[: cap - size[0]])
        size[0] += len(text)

    safe.update(
        type=_guarded_type,
        __import__=guarded_import,
        __build_class__=builtins.__build_class__,
        __name__="__main__",
        open=guarded_open,
        print=guarded_print,
        getattr=lambda obj, name, *default: getattr(obj, _guard_name(name), *default),
        hasattr=lambda obj, name: hasattr(obj, _guard_name(name)),
        setattr=lambda obj, name, value: setattr(obj, _guard_name(name), value),
        delattr=lambda obj, name: delattr(obj, _guard_name(name)),
        dir=lambda *obj: [n for n in (dir(*obj) if obj else []) if not n.startswith("_")],
    )
    return safe


def _on_cpu_timer(signum: int, frame: object) -> None:
    raise CallTimeout


def timeout_error(timeout: float) -> str:
    return f"TimeoutError: the code used more than {timeout:g} s of CPU time"


def run_call(
    code: str, timeout: float, call_dir: str, modules: dict[str, types.ModuleType], cap: int
) -> dict:
    """Run agent code in ``call_dir`` (in the call's own child process, see :func:`serve`)."""
    out: list[str] = []
    result: dict = {"ok": False, "stdout": "", "error": None, "truncated": False}
    try:
        tree = ast.parse(code, filename="<agent>", mode="exec")
        check_code(tree)
        last_expr = None
        if tree.body and isinstance(tree.body[-1], ast.Expr):
            last_expr = ast.Expression(tree.body.pop().value)
        body = compile(tree, "<agent>", "exec")
        tail = compile(last_expr, "<agent>", "eval") if last_expr is not None else None
        namespace = {"__builtins__": make_builtins(modules, call_dir, out, cap)}
        modules["random"].seed(0)
        modules["numpy"].random.seed(0)
        os.chdir(call_dir)
        signal.setitimer(signal.ITIMER_PROF, timeout)  # CPU seconds of this process
        try:
            exec(body, namespace)
            if tail is not None:
                value = eval(tail, namespace)
                if value is not None:
                    namespace["__builtins__"]["print"](repr(value))
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
        result["ok"] = True
    except CallTimeout:
        result["error"] = timeout_error(timeout)
    except CodeRejected as e:
        result["error"] = f"rejected: {e}"
    except SyntaxError as e:
        result["error"] = f"SyntaxError: {e.msg} (line {e.lineno})"
    except MemoryError:
        result["error"] = "MemoryError: the code exceeded the memory limit"
    except BaseException as e:  # agent code may raise anything; it is reported, not fatal
        frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename == "<agent>"]
        where = f" (line {frames[-1].lineno})" if frames else ""
        result["error"] = f"{type(e).__name__}: {e}{where}"
    finally:
        signal.setitimer(signal.ITIMER_PROF, 0)
    text = "".join(out)
    result["stdout"] = text
    result["truncated"] = sum(map(len, out)) >= cap
    return result


def run_unrestricted(code: str, call_dir: str) -> dict:
    """Tests of the OS layer only: plain exec, full builtins, no audit hook (never for agents)."""
    out: list[str] = []
    namespace = {"print": lambda *values: out.append(" ".join(map(str, values)) + "\n")}
    os.chdir(call_dir)
    try:
        exec(compile(code, "<os-layer-test>", "exec"), namespace)
        error = None
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"
    return {"ok": error is None, "stdout": "".join(out), "error": error, "truncated": False}


class Spare:
    """A child forked ahead of its call, waiting for the request on its own pipe."""

    __slots__ = ("pid", "requests", "replies")

    def __init__(self, pid: int, requests: int, replies: int):
        self.pid, self.requests, self.replies = pid, requests, replies


def spawn(
    root: str,
    modules: dict[str, types.ModuleType],
    limits: dict,
    phase: Phase,
    fds: tuple[int, int],
) -> Spare:
    """Fork the child that will run the next call (ahead of it, so the fork is not on its path).

    The warm worker never runs agent code itself: each call runs in a fresh fork of it, so nothing
    a call sets (variables, class attributes, module state such as numpy's print options or the
    decimal context, caches) reaches the next one. The child gets its own temp dir and lowers its
    own limits (no new processes, CPU seconds for this call) before the code runs; it answers
    once and exits.
    """
    call_dir = tempfile.mkdtemp(dir=root)
    request_r, request_w = os.pipe()
    reply_r, reply_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the call's child: it never returns to the loop
        status = 1
        try:
            for fd in (request_w, reply_r, *fds):
                os.close(fd)
            request = read_message(request_r)
            if request is not None:
                write_message(reply_w, run_in_child(request, call_dir, modules, limits, phase))
            status = 0
        finally:
            os._exit(status)
    os.close(request_r)
    os.close(reply_w)
    return Spare(pid, request_w, reply_r)


def run_in_child(
    request: dict, call_dir: str, modules: dict[str, types.ModuleType], limits: dict, phase: Phase
) -> dict:
    timeout = float(request.get("timeout", 5.0))
    call = execution.Limits(
        wall_s=timeout, cpu_s=timeout + 2, processes=0, memory_bytes=None, file_bytes=None,
        core_bytes=None, relative=True,
    )  # fmt: skip
    # No new processes; CPU seconds for this call, past its timer and the parent's CPU budget
    # (a backstop for code that never returns to Python, should the parent not stop it first).
    execution.apply_rlimits(call, vm_bytes=0)
    os.chdir(call_dir)
    phase.creations_left = max(1, int(limits["disk_bytes"]) // int(limits["file_bytes"]))
    phase.call_prefix = os.path.realpath(call_dir) + os.sep  # from here on, agent rules
    if limits.get("os_layer_only"):
        return run_unrestricted(request["code"], call_dir)
    return run_call(request["code"], timeout, call_dir, modules, int(limits["output_chars"]))


def serve(spare: Spare, request: dict) -> dict:
    """Hand ``request`` to the spare child and return its answer (or why it gave none)."""
    try:
        write_message(spare.requests, request)
        reply = read_message(spare.replies)
    except (OSError, ValueError):
        reply = None
    if isinstance(reply, dict):
        return reply
    _, status = os.waitpid(spare.pid, 0)
    spare.pid = 0
    if os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
        # Code that never returned to Python (its timer waits for that) ran to the process's
        # RLIMIT_CPU, set past the timer: it used more than its CPU seconds.
        error = f"{timeout_error(float(request.get('timeout', 5.0)))} (stopped at its CPU limit)"
    elif os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        why = {"SIGKILL": "a limit", "SIGSEGV": "a crash"}.get(name, name)
        error = f"the code ended the python process ({name}: {why})"
    else:
        error = f"the code ended the python process (exit status {os.WEXITSTATUS(status)})"
    return {"ok": False, "stdout": "", "error": error, "truncated": False}


def retire(spare: Spare, root: str) -> None:
    """Reap a child whose call is over and remove everything under the root. A root that cannot
    be emptied ends the worker (the parent replaces a worker that died), so no call ever sees
    another's files."""
    for fd in (spare.requests, spare.replies):
        with contextlib.suppress(OSError):
            os.close(fd)
    if spare.pid:
        os.waitpid(spare.pid, 0)
    clean(root)
    if os.listdir(root):
        os._exit(3)


def clean(root: str) -> None:
    """Remove everything under the worker's root (the finished call's dir and anything else)."""
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                os.unlink(path)


def zygote_preload() -> tuple[dict[str, types.ModuleType], list[str]]:
    """What every worker shares (run once, in the zygote or a fresh interpreter): the allowed
    modules, imported and exercised, and the library roots Landlock will leave readable."""
    modules = preload()
    return modules, library_roots(modules)


def worker_main(state: tuple, args: dict, fd_in: int, fd_out: int) -> None:
    """One warm worker (forked from the zygote, or in a fresh interpreter): lock down, then serve
    requests on ``fd_in`` / ``fd_out`` until ``fd_in`` closes."""
    modules, read_roots = state
    root, limits = args["root"], dict(args["limits"])
    limits.setdefault("disk_bytes", 8 << 20)
    os.environ.update(HOME=root, TMPDIR=root)
    tempfile.tempdir = root
    os.chdir(root)
    report = harden(root, limits, read_roots)
    phase = Phase()
    if not limits.get("os_layer_only"):
        install_audit_hook(root, read_roots, phase)
        report.append("audit hook")
    report.append("fork per call")
    signal.signal(signal.SIGPROF, _on_cpu_timer)
    gc.freeze()  # children never run a collection over the worker's objects (no copy on write)
    spare = spawn(root, modules, limits, phase, (fd_in, fd_out))
    write_message(fd_out, {"ready": True, "hardening": report})
    while True:
        request = read_message(fd_in)
        if request is None:
            return
        reply = serve(spare, request)
        reply["id"] = request["id"]
        # The call's code has finished (its child only exits now): remove its files before
        # answering, then reap the child and fork the next call's while the agent reads.
        clean(root)
        write_message(fd_out, reply)
        retire(spare, root)
        spare = spawn(root, modules, limits, phase, (fd_in, fd_out))


def main() -> None:
    """A worker in a fresh interpreter (no zygote): ``python -I pyworker.py ARGS_JSON``."""
    args = json.loads(sys.argv[1])
    state = zygote_preload()
    fd_in, fd_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    worker_main(state, args, fd_in, fd_out)


if __name__ == "__main__":
    main()
