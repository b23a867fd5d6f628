"""CPU-time budgets of a whole process tree (issue 10: budgets must not depend on the machine's
load). ``Limits.tree_cpu_s`` bounds the program and every descendant, decided in CPU seconds;
the wall clock is then a backstop whose hit is reported as ``overloaded``, never as a timeout.

Every assertion is on CPU accounting or on how a run ended, never on wall-clock time."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path

import pytest

from hiergym.envs import execution
from hiergym.envs.execution import Limits

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")

PY = sys.executable
BACKSTOP_S = 600.0  # far beyond any test's run: only the tests of the backstop reach theirs


def burner(seconds: float, mark: str = "") -> str:
    """A shell command: a Python process that burns ``seconds`` of its own CPU time (then exits),
    touching ``mark`` first."""
    touch = f"touch {mark}; " if mark else ""
    code = f"import time\nwhile time.process_time() < {seconds}: pass"
    return f"{touch}{PY} -I -S -c '{code}'"


def run_sh(tmp_path: Path, script: str, limits: Limits) -> execution.RunResult:
    return execution.run(["sh", "-c", script], tmp_path, limits, capped=False)


def test_the_tree_budget_stops_work_done_by_children(tmp_path):
    """The work is done by children, one after another, each under a process's CPU limit:
    RLIMIT_CPU alone never stops the tree; its CPU budget does, and the run is a timeout."""
    script = "; ".join(burner(0.4, f"started.{i}") for i in range(3))
    per_process = run_sh(tmp_path, script, Limits(wall_s=BACKSTOP_S, cpu_s=1))
    assert per_process.returncode == 0 and not per_process.timed_out
    assert per_process.cpu_s >= 1.2  # the tree used more than any one process may
    for mark in tmp_path.glob("started.*"):
        mark.unlink()

    tree = run_sh(tmp_path, script, Limits(wall_s=BACKSTOP_S, tree_cpu_s=0.6))
    assert tree.timed_out and not tree.overloaded
    assert tree.returncode == -signal.SIGKILL
    assert tree.cpu_s > 0.6
    assert (tmp_path / "started.1").exists()
    assert not (tmp_path / "started.2").exists()  # stopped during the second child


def test_a_run_that_waits_is_not_a_timeout(tmp_path):
    """A run whose wall time is far over its CPU budget, but that used little CPU (it slept), is
    not judged a timeout: a loaded machine makes a run slow in just this way."""
    result = run_sh(tmp_path, "sleep 1; echo done", Limits(wall_s=BACKSTOP_S, tree_cpu_s=0.2))
    assert result.returncode == 0 and result.stdout.strip() == "done"
    assert not result.timed_out and not result.overloaded
    assert result.cpu_s <= 0.2


def test_the_wall_clock_backstop_is_reported_as_overloaded(tmp_path):
    result = run_sh(tmp_path, "sleep 60", Limits(wall_s=0.3, tree_cpu_s=5))
    assert result.overloaded and not result.timed_out
    assert result.returncode == -signal.SIGKILL


def test_without_a_tree_budget_the_wall_clock_is_still_the_deadline(tmp_path):
    result = run_sh(tmp_path, "sleep 60", Limits(wall_s=0.3))
    assert result.timed_out and not result.overloaded


def test_over_budget_is_a_timeout_however_the_run_ended(tmp_path, monkeypatch):
    """The decision is the CPU the tree used: a run that finished before a measurement saw it
    over its budget (here: no measurement sees anything) is judged by wait4's accounting."""
    monkeypatch.setattr(execution, "tree_cpu_seconds", lambda pid: (0.0, 1))
    result = run_sh(tmp_path, burner(0.4), Limits(wall_s=BACKSTOP_S, tree_cpu_s=0.2))
    assert result.returncode == 0  # it finished ...
    assert result.timed_out and not result.overloaded  # ... over its budget
    assert result.cpu_s >= 0.4


def test_the_per_process_limit_follows_the_tree_budget():
    """With a tree budget the wall clock is a (large) backstop: each process's RLIMIT_CPU comes
    from the CPU budget, not from the backstop."""
    limits = Limits(wall_s=1000.0, tree_cpu_s=2.5)
    assert limits.rlimits()["RLIMIT_CPU"] == (4, 5)
    assert Limits.from_json(limits.to_json()) == limits


def test_a_cpu_meter_sums_the_runs_made_inside_it(tmp_path):
    outside = run_sh(tmp_path, burner(0.1), Limits(wall_s=BACKSTOP_S))
    with execution.cpu_meter() as outer:
        first = run_sh(tmp_path, burner(0.1), Limits(wall_s=BACKSTOP_S))
        with execution.cpu_meter() as inner:
            second = run_sh(tmp_path, burner(0.2), Limits(wall_s=BACKSTOP_S, tree_cpu_s=10))
    assert outside.cpu_s >= 0.1 and first.cpu_s >= 0.1 and second.cpu_s >= 0.2
    assert inner.seconds == pytest.approx(second.cpu_s)
    assert outer.seconds == pytest.approx(first.cpu_s + second.cpu_s)


def test_tree_cpu_seconds_of_no_process():
    assert execution.tree_cpu_seconds(2**22 + 12345) == (0.0, 0)
