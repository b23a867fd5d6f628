"""The geometry ``python`` tool: agent code is contained, every escape comes back as an error
observation, and the env keeps working afterwards."""

from __future__ import annotations

import os
import subprocess
import sys

import gymnasium as gym
import pytest

from hiergym.envs.geometry.pyrunner import PythonRunner
from hiergym.envs.tools import ToolCall
from hiergym.testing import oracle_actions, play


@pytest.fixture(scope="module")
def env():
    env = gym.make(
        "hiergym/Geometry-v0", split="test", difficulty="easy", python_timeout_s=1.0, max_turns=500
    )
    env.reset(seed=0)
    yield env.unwrapped
    env.close()


def run(env, code: str) -> str:
    obs, _, terminated, truncated, info = env.step(ToolCall("python", {"code": code}))
    assert not terminated and not truncated
    return obs


def still_works(env) -> None:
    assert run(env, "import numpy as np\nprint(np.linalg.norm([3.0, 4.0]))") == "5.0\n"


def test_numpy_and_scipy_work_and_the_last_expression_is_shown(env):
    code = (
        "from scipy.spatial.transform import Rotation\n"
        "import numpy as np\n"
        "r = Rotation.from_euler('z', 90, degrees=True).as_matrix()\n"
        "print(np.round(r @ [1, 0, 0], 6))\n"
        "sum(range(4))"
    )
    assert run(env, code) == "[0. 1. 0.]\n6\n"


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("while True:\n    pass", "TimeoutError"),
        ("x = bytearray(10 ** 11)", "MemoryError"),
        ("x = [0] * (10 ** 10)", "MemoryError"),
        ("import os\nwhile True:\n    os.fork()", "import of 'os' is not allowed"),
        ("import subprocess\nsubprocess.run(['sh'])", "import of 'subprocess' is not allowed"),
        ("import socket\nsocket.create_connection(('1.1.1.1', 80))", "import of 'socket'"),
        ("import ctypes", "import of 'ctypes' is not allowed"),
        ("import importlib", "import of 'importlib' is not allowed"),
        ("import sys\nsys.modules", "import of 'sys' is not allowed"),
        ("open('/tmp/hiergym-escape.txt', 'w').write('x')", "PermissionError"),
        ("open('../outside.txt', 'w').write('x')", "PermissionError"),
        ("__import__('os')", "names starting with '_'"),
        ("().__class__.__bases__[0].__subclasses__()", "names starting with '_'"),
        ("getattr((), '__cl' + 'ass__')", "AttributeError"),
        ("eval('1')", "NameError"),
        ("def g():\n    yield 1\ng().gi_frame.f_back", "is not allowed"),
        ("import numpy as np\nnp.lib", "not available"),
        ("import numpy as np\nnp.pi = 3", "read-only"),
        ("from numpy import _core", "cannot import '_core'"),
        ("f = open('big.bin', 'wb')\nf.write(b'0' * (4 << 20))", "File too large"),
        ("1/0", "ZeroDivisionError: division by zero (line 1)"),
        ("def (", "SyntaxError"),
    ],
)
def test_escapes_and_bombs_are_contained_as_error_observations(env, code, fragment):
    obs = run(env, code)
    assert obs.startswith("error: python: ") and fragment in obs, obs
    still_works(env)


RAW_POINTER_ARRAY = (
    "import fractions\nimport numpy as np\n"
    "view = {{'shape': (8,), 'typestr': '|u1', 'data': (4096, False), 'version': 3}}\n"
    "Raw = {maker}('Raw', (), {{'_' + '_array_interface_' + '_': view}})\n"
    "np.asarray(Raw())\n"
)


@pytest.mark.parametrize(
    "maker",
    ["type", "type(type(1))", "type(int)", "type(fractions.Fraction)", "type(np.ndarray)"],
)
def test_classes_with_dunder_attributes_cannot_be_made(env, maker):
    """type(name, bases, namespace) takes dunder names the AST check never sees: a class with an
    __array_interface__ made numpy read (and write) any address in the worker (this one
    segfaulted it), from where the audit hook itself could be overwritten. A metaclass reached
    through type(cls) is refused for the same reason."""
    obs = run(env, RAW_POINTER_ARRAY.format(maker=maker))
    assert obs.startswith("error: python: ") and "worker" not in obs, obs
    still_works(env)


SECRET = (
    "import numpy as np\nsecret = np.frombuffer(bytearray(b'secret!!'), dtype=np.uint8)\n"
    "view = {'shape': (8,), 'typestr': '|u1', 'data': (secret.ctypes.data, False), 'version': 3}\n"
)


@pytest.mark.parametrize(
    "code",
    [
        # OptimizeResult is a dict whose missing attributes are its items.
        SECRET + "from scipy.optimize import OptimizeResult\n"
        "print(np.asarray(OptimizeResult({'_' + '_array_interface_' + '_': view})))",
        # update_wrapper copies any attribute by name (here the real one of the array).
        SECRET + "import functools\nclass Holder:\n    pass\nh = Holder()\n"
        "functools.update_wrapper(h, secret, ('_' + '_array_interface_' + '_',), ())\n"
        "print(np.asarray(h))",
    ],
)
def test_no_object_the_agent_builds_carries_a_raw_pointer(env, code):
    """A pointer numpy trusts reads (and writes) any address: the output showed the bytes of
    b'secret!!' (115 101 99 ...) read through the address alone."""
    obs = run(env, code)
    assert "115 101  99" not in obs and "worker" not in obs, obs
    still_works(env)


def test_optimize_results_and_wraps_still_work(env):
    code = (
        "import functools\nfrom scipy.optimize import least_squares\n"
        "res = least_squares(lambda x: x - 2.0, [0.0])\nprint(round(float(res.x[0]), 6))\n"
        "def deco(f):\n    @functools.wraps(f)\n    def g(*a):\n        return f(*a) + 1\n"
        "    return g\n@deco\ndef h(x):\n    return x\nprint(h(1))"
    )
    assert run(env, code) == "2.0\n2\n"


def test_type_of_a_value_still_works(env):
    assert run(env, "import numpy as np\nprint(type(1.5), type(np.eye(2)) == np.ndarray)") == (
        "<class 'float'> True\n"
    )


def test_the_sandbox_db_cannot_be_read(env):
    db = str(env.sandbox.db_path)
    for code in (
        f"open({db!r}, 'rb').read(16)",
        f"import numpy as np\nnp.fromfile({db!r}, dtype=np.uint8)[:16]",
        f"import numpy as np\nnp.load({db!r}, allow_pickle=True)",
    ):
        obs = run(env, code)
        assert obs.startswith("error: python: ") and "SQLite" not in obs, obs
    still_works(env)


def test_pickles_cannot_smuggle_code_in():
    runner = PythonRunner(timeout_s=2.0)
    try:
        payload = b"cbuiltins\nexec\n(Vprint(1)\ntR."
        code = f"open('p.npy', 'wb').write({payload!r})\nimport numpy as np\nnp.load('p.npy')"
        result = runner.run(code)
        assert not result.ok and "allow_pickle" in result.error
    finally:
        runner.close()


def test_a_catch_all_infinite_loop_is_killed_and_the_worker_replaced(env):
    runner = env.python
    first = runner.pid
    code = "while True:\n    try:\n        while True:\n            pass\n    except BaseException:\n        pass"
    obs = run(env, code)
    assert obs.startswith("error: python: TimeoutError") and "replaced" in obs, obs
    still_works(env)
    assert runner.pid != first


def test_a_long_computation_in_c_is_killed_by_the_parent(env):
    """LAPACK never yields to the worker's timer (about 20 s here): the parent's deadline stops it."""
    obs = run(env, "import numpy as np\nnp.linalg.eigvals(np.random.rand(3000, 3000))")
    assert obs.startswith("error: python: TimeoutError") and "replaced" in obs, obs
    still_works(env)


def test_output_is_capped(env):
    obs = run(env, "for i in range(100000):\n    print('x' * 50)")
    assert obs.endswith("[output truncated at 7,500 characters]") and len(obs) < 8_000


def test_each_call_has_a_fresh_namespace_and_temp_dir(env):
    assert run(env, "x = 41\nopen('note.txt', 'w').write('hi')\nx + 1") == "42\n"
    obs = run(env, "x")
    assert "NameError: name 'x' is not defined" in obs
    assert "FileNotFoundError" in run(env, "open('note.txt').read()")


def test_worker_is_locked_down(env):
    still_works(env)
    hardening = set(env.python.hardening)
    assert {"audit hook", "RLIMIT_AS", "RLIMIT_FSIZE", "RLIMIT_NOFILE"} <= hardening
    if os.geteuid() == 0:
        assert "uid nobody" in hardening


def test_workers_are_per_episode_per_fork_and_cleaned_up():
    env = gym.make("hiergym/Geometry-v0", split="test", difficulty="easy").unwrapped
    env.reset(seed=0)
    run(env, "print(1)")
    parent_pid = env.python.pid
    clone = env.fork()
    assert clone.python is not env.python and clone.python.pid is None
    run(clone, "print(2)")
    assert clone.python.pid not in (None, parent_pid)
    env.reset(seed=1)  # the worker that ran agent code is replaced for the next episode
    assert env.python.pid != parent_pid
    with pytest.raises(ProcessLookupError):
        os.kill(parent_pid, 0)
    pids = [env.python.pid, clone.python.pid]
    env.close()
    clone.close()
    for pid in pids:
        with pytest.raises((ProcessLookupError, ChildProcessError)):
            os.waitpid(pid, os.WNOHANG)
            os.kill(pid, 0)


def test_workers_die_with_the_interpreter():
    script = (
        "import gymnasium as gym, hiergym\n"
        "from hiergym.envs.tools import ToolCall\n"
        "env = gym.make('hiergym/Geometry-v0').unwrapped\n"
        "env.reset(seed=0)\n"
        "env.step(ToolCall('python', {'code': 'print(1)'}))\n"
        "print(env.python.pid)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    pid = int(out.stdout.strip().splitlines()[-1])
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_an_episode_survives_a_dead_worker():
    env = gym.make("hiergym/Geometry-v0", split="dev", difficulty="hard")
    base = env.unwrapped
    task = next(t for t in base.tasks if t.family == "pose_estimation")
    base.reset(options={"task": task})
    run(base, "print(0)")
    os.killpg(base.python.pid, 9)  # the worker dies between calls
    out = play(env, oracle_actions(env), options={"task": task})
    env.close()
    assert out.verdict["reward"] == 1.0


def test_the_tool_documents_its_import_allow_list(env):
    from hiergym.envs.geometry.pyworker import ALLOWED_MODULES

    schema = next(s for s in env.toolbox.schemas() if s["function"]["name"] == "python")
    doc = schema["function"]["parameters"]["properties"]["code"]["description"]
    for module in ALLOWED_MODULES:
        assert module.split(".", 1)[-1] in doc, module


def test_a_process_fork_never_shares_the_parents_worker():
    import multiprocessing

    global _SHARED
    runner = _SHARED = PythonRunner()
    try:
        assert runner.run("print(1)").ok
        parent_worker = runner.pid
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_run_in_child, args=(queue,))
        child.start()
        child_worker, ok = queue.get(timeout=60)
        child.join(timeout=60)
        assert ok and child_worker not in (None, parent_worker)
        assert runner.pid == parent_worker and runner.run("print(2)").stdout == "2\n"
    finally:
        runner.close()


_SHARED: PythonRunner | None = None


def _run_in_child(queue) -> None:  # noqa: ANN001
    runner = _SHARED
    ok = runner.run("print(3)").stdout == "3\n"
    pid = runner.pid
    runner.close()
    queue.put((pid, ok))


def test_the_os_layer_alone_contains_escaped_code(tmp_path):
    """Even code that got past the restricted builtins and the audit hook stays contained."""
    secret = tmp_path / "sandbox.sqlite"
    secret.write_bytes(b"SQLite format 3\x00")
    secret.chmod(0o644)
    tmp_path.chmod(0o755)
    runner = PythonRunner(timeout_s=2.0, os_layer_only=True)
    try:
        assert runner.run("print('up')").stdout == "up\n"
        hardening = set(runner.hardening)
        assert "audit hook" not in hardening
        if not any(h.startswith("landlock abi") for h in hardening):
            pytest.skip(f"no Landlock on this kernel: {sorted(hardening)}")
        for code, errors in [
            (f"open({str(secret)!r}, 'rb').read()", ("PermissionError",)),
            ("open('/tmp/hiergym-os-layer-escape', 'w')", ("PermissionError",)),
            ("import os\nos.listdir('/home')", ("PermissionError",)),
            (
                "import socket\nsocket.socket().connect(('127.0.0.1', 9))",
                ("PermissionError", "OSError", "ConnectionRefusedError"),
            ),
            ("import os\nos.fork()", ("BlockingIOError", "PermissionError")),
        ]:
            result = runner.run(code)
            assert not result.ok and result.error.startswith(errors), (code, result)
        assert runner.run("open('inside.txt', 'w').write('ok')\nprint(1)").ok
    finally:
        runner.close()
