"""Issue 12 follow-up: a python call's limit is CPU seconds of the code, not wall time, so whether
an agent's code finishes within it does not depend on what else the machine runs (as RTL's
budgets, through the shared execution layer). The wall clock is a backstop: a call it stops within
its CPU budget means the machine (not the code) was too slow, reported as overloaded, never as a
timeout against the agent.

A loaded machine is modelled deterministically: a process that waits (sleeps, or is stopped with
SIGSTOP, as a process that never gets a core) uses no CPU while wall time passes. Nothing asserts
wall time."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import types

import gymnasium as gym
import pytest

from hiergym.envs.geometry import pyrunner, pyworker
from hiergym.envs.geometry.pyrunner import PythonRunner
from hiergym.envs.tools import ToolCall


def the_call_child(runner: PythonRunner) -> int:
    """The process that will run the runner's next call: the ready worker's only child (forked
    before the worker says it is ready)."""
    runner.warm()
    children = []
    for tid in os.listdir(f"/proc/{runner.pid}/task"):
        with open(f"/proc/{runner.pid}/task/{tid}/children") as f:
            children += [int(pid) for pid in f.read().split()]
    assert len(children) == 1, children
    return children[0]


def in_a_fork(fn) -> dict:
    """``fn()``'s dict, computed in a forked child of this process (one thread: a process-wide
    CPU timer counts only its code)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read)
            os.write(write, json.dumps(fn()).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as f:
        data = f.read()
    os.waitpid(pid, 0)
    return json.loads(data)


def run_call(code: str, timeout: float, call_dir: str) -> dict:
    """pyworker.run_call as a call's child runs it, with ``math.sleep`` standing in for waiting."""

    def call() -> dict:
        for signum in (signal.SIGALRM, signal.SIGPROF):  # what the worker installs, either timer
            signal.signal(signum, lambda *_: (_ for _ in ()).throw(pyworker.CallTimeout()))
        modules = {name: types.ModuleType(name) for name in ("math", "random", "numpy")}
        modules["math"].sleep = time.sleep
        modules["random"].seed = lambda seed: None
        modules["numpy"].random = modules["random"]
        return pyworker.run_call(code, timeout, call_dir, modules, 1000)

    return in_a_fork(call)


def test_the_call_timer_counts_the_code_cpu_seconds_not_its_waiting(tmp_path):
    waits = run_call("import math\nmath.sleep(1.0)\nprint('done')", 0.3, str(tmp_path))
    assert waits["ok"] and waits["stdout"] == "done\n", waits
    spins = run_call("while True:\n    pass", 0.3, str(tmp_path))
    assert not spins["ok"] and spins["error"].startswith("TimeoutError"), spins
    assert "0.3 s of CPU" in spins["error"], spins


def test_cpu_bound_code_over_its_limit_is_a_timeout():
    runner = PythonRunner(timeout_s=0.5)
    try:
        result = runner.run("while True:\n    pass")
        assert not result.ok and result.error.startswith("TimeoutError"), result
        assert "0.5 s of CPU" in result.error and not result.overloaded, result
        assert runner.run("1 + 1").stdout == "2\n"
    finally:
        runner.close()


CATCHES_ITS_TIMER = (
    "while True:\n    try:\n        while True:\n            pass\n"
    "    except BaseException:\n        pass"
)


def test_code_that_outlives_the_parent_s_budget_is_stopped_at_its_process_cpu_limit(monkeypatch):
    """Should the parent not stop a call whose code catches its timer (here: told to wait much
    longer), the call's process dies at its RLIMIT_CPU: a timeout too, not a crash."""
    monkeypatch.setattr(pyrunner, "GRACE_S", 100.0)
    runner = PythonRunner(timeout_s=0.5)
    try:
        result = runner.run(CATCHES_ITS_TIMER)
        assert not result.ok and not result.overloaded, result
        assert result.error.startswith("TimeoutError: the code used more than 0.5 s of CPU time")
        assert "stopped at its CPU limit" in result.error, result
        assert runner.run("1 + 1").stdout == "2\n"
    finally:
        runner.close()


def test_a_call_that_gets_no_cpu_for_longer_than_its_limit_still_completes():
    """The call's process is stopped (a machine that gives it no core) for five times its limit,
    past the old wall-clock deadline (limit + 1 s): it completes, its CPU being well within."""
    runner = PythonRunner(timeout_s=0.5)
    try:
        child = the_call_child(runner)
        os.kill(child, signal.SIGSTOP)
        resume = threading.Timer(2.5, os.kill, (child, signal.SIGCONT))
        resume.start()
        try:
            result = runner.run("sum(range(10))")
        finally:
            resume.join()
        assert result.ok and result.stdout == "45\n", result
    finally:
        runner.close()


def test_the_wall_clock_backstop_stops_a_call_and_reports_the_machine_overloaded():
    runner = PythonRunner(timeout_s=0.5, backstop_s=1.0)
    try:
        os.kill(the_call_child(runner), signal.SIGSTOP)  # never continued: killed with the worker
        first = runner.pid
        result = runner.run("1")
        assert not result.ok and result.overloaded, result
        assert not result.error.startswith("TimeoutError"), result
        assert "overloaded" in result.error and "1 s" in result.error, result
        assert runner.pid != first and runner.run("2").stdout == "2\n"
    finally:
        runner.close()


def test_sleeping_code_is_stopped_by_the_backstop_not_judged_a_timeout():
    runner = PythonRunner(timeout_s=0.5, backstop_s=1.0, os_layer_only=True)
    try:
        result = runner.run("import time\ntime.sleep(60)")
        assert not result.ok and result.overloaded and "overloaded" in result.error, result
        waits = PythonRunner(timeout_s=0.5, os_layer_only=True)
        try:
            done = waits.run("import time\ntime.sleep(2.0)\nprint('done')")
            assert done.ok and done.stdout == "done\n", done
        finally:
            waits.close()
    finally:
        runner.close()


def test_an_overloaded_call_is_an_error_observation():
    env = gym.make("hiergym/Geometry-v0", split="test", difficulty="easy", python_timeout_s=0.5)
    try:
        env.reset(seed=0)
        runner = env.unwrapped.python
        runner.backstop_s = 1.0
        os.kill(the_call_child(runner), signal.SIGSTOP)
        obs, reward, terminated, truncated, _ = env.step(ToolCall("python", {"code": "1"}))
        assert obs.startswith("error: python: the machine is overloaded"), obs
        assert not terminated and not truncated
        obs, *_ = env.step(ToolCall("python", {"code": "print(3)"}))
        assert obs == "3\n"
    finally:
        env.close()


@pytest.mark.parametrize("timeout", [0.5, 5.0])
def test_the_backstop_is_ten_times_the_budget_and_at_least_thirty_seconds(timeout):
    runner = PythonRunner(timeout_s=timeout)
    limits = runner.call_limits(timeout)
    assert limits.tree_cpu_s > timeout  # the parent's kill, past the code's own timer
    assert limits.wall_s == max(30.0, 10 * timeout)
