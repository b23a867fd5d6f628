"""Calls of the geometry ``python`` tool are isolated from each other (issue 9, class F): each has
its own temp dir, removed after it, under a disk quota; nothing one call sets (files, class
attributes, module state) is visible to the next."""

from __future__ import annotations

import os
import time

import pytest

from hiergym.envs.geometry.pyrunner import DISK_BYTES, FILE_BYTES, PythonRunner


@pytest.fixture(scope="module")
def runner():
    r = PythonRunner(timeout_s=5.0)
    yield r
    r.close()


def tree_bytes(root: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(root) for f in files)


def tree_entries(root: str) -> list[str]:
    return [os.path.join(d, n) for d, dirs, files in os.walk(root) for n in (*dirs, *files)]


WRITE_MANY = """
import numpy as np
block = np.zeros({floats})
written = 0
try:
    for i in range(200):
        np.save({target!r} % i, block)
        written += block.nbytes
except Exception as e:
    print(repr(e)[:160])
print(written)
"""


@pytest.mark.parametrize("target", ["f%d.npy", "../f%d.npy", "../../f%d.npy"])
def test_two_calls_writing_big_files_stay_within_the_quota(runner, target):
    """np.save reaches the real open(): 60 files of 1 MiB went to the worker root and survived
    (119 MiB after two calls; tens of GB per episode were possible)."""
    code = WRITE_MANY.format(floats=(FILE_BYTES - 4096) // 8, target=target)
    totals = []
    for _ in range(2):
        result = runner.run(code)
        assert result.ok, result
        totals.append(int(result.stdout.split()[-1]))
        assert runner.root is not None
        assert tree_bytes(runner.root) == 0, "nothing a call wrote survives it"
    assert all(t <= DISK_BYTES for t in totals), totals
    if target == "f%d.npy":
        assert totals[0] > 0, "the call's own dir is writable"


def test_a_call_over_its_quota_is_told_so(runner):
    code = WRITE_MANY.format(floats=(FILE_BYTES - 4096) // 8, target="f%d.npy")
    out = runner.run(code).stdout
    assert "quota" in out, out


def test_each_call_gets_its_own_directory(runner):
    first = runner.run(
        "import numpy as np\nnp.save('a.npy', np.eye(2))\nprint(np.load('a.npy')[0, 0])"
    )
    assert first.ok and first.stdout == "1.0\n", first
    second = runner.run("import numpy as np\nnp.load('a.npy')")
    assert not second.ok and "FileNotFoundError" in second.error, second
    assert tree_entries(runner.root) == []


@pytest.mark.parametrize(
    ("setter", "reader", "fresh"),
    [
        # a class attribute on an allowed module's class
        (
            "import fractions\nfractions.Fraction.leak = 41",
            "import fractions\nhasattr(fractions.Fraction, 'leak')",
            "False\n",
        ),
        # a class attribute that changes what a library function does
        (
            "import json\njson.JSONEncoder.default = lambda self, o: 'leaked'",
            "import json\ntry:\n    json.dumps({1})\nexcept TypeError:\n    print('fresh')",
            "fresh\n",
        ),
        # module-level state behind a function
        (
            "import numpy as np\nnp.set_printoptions(precision=1)",
            "import numpy as np\nprint(np.array([1.23456]))",
            "[1.23456]\n",
        ),
        (
            "import decimal\ndecimal.getcontext().prec = 3",
            "import decimal\nprint(decimal.Decimal(1) / decimal.Decimal(7))",
            "0.1428571428571428571428571429\n",
        ),
        (
            "import numpy as np\nnp.seterr(all='raise')",
            "import numpy as np\nprint(np.float64(1.0) / np.float64(0.0))",
            "inf\n",
        ),
        (
            "import functools\nimport math\nmath.cached = functools.lru_cache",
            "import math\nhasattr(math, 'cached')",
            "False\n",
        ),
        (
            "import collections\ncollections.Counter.most_common = len",
            "import collections\ncollections.Counter('aab').most_common(1)",
            "[('a', 2)]\n",
        ),
    ],
)
def test_nothing_a_call_sets_is_visible_to_the_next(runner, setter, reader, fresh):
    runner.run(setter)
    result = runner.run(reader)
    assert result.ok and result.stdout == fresh, result


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def test_workers_are_forked_from_one_warm_zygote_and_locked_down_alike():
    """Issue 12: a worker is a fork of a zygote that imported numpy and scipy once; each applies
    the same isolation after the fork as a worker in a fresh interpreter does."""
    warm = [PythonRunner(timeout_s=5.0) for _ in range(2)]
    fresh = PythonRunner(timeout_s=5.0, zygote=False)
    try:
        for r in (*warm, fresh):
            assert r.run("import scipy.optimize\nprint(1)").stdout == "1\n"
        zygotes = {parent_of(r.pid) for r in warm}
        assert len(zygotes) == 1 and os.getpid() not in zygotes
        assert parent_of(fresh.pid) == os.getpid()
        assert warm[0].hardening == warm[1].hardening == fresh.hardening
        assert {"audit hook", "RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE"} <= set(fresh.hardening)
    finally:
        for r in (*warm, fresh):
            r.close()


def test_a_worker_cannot_reach_another_workers_directory():
    """Workers share the zygote's pages, never each other's files: below the audit hook, Landlock
    confines each to its own root."""
    first = PythonRunner(timeout_s=5.0)
    escaped = PythonRunner(timeout_s=5.0, os_layer_only=True)
    try:
        assert first.run("print(1)").ok and escaped.run("print(1)").ok
        if not any(h.startswith("landlock abi") for h in escaped.hardening):
            pytest.skip(f"no Landlock on this kernel: {escaped.hardening}")
        for code in (f"import os\nos.listdir({first.root!r})", f"open({first.root!r} + '/x', 'w')"):
            result = escaped.run(code)
            assert not result.ok and result.error.startswith("PermissionError"), (code, result)
    finally:
        first.close()
        escaped.close()


def _fds(pid: int) -> dict[int, str]:
    """What each open descriptor of ``pid`` is (one closed while listing is left out)."""
    found = {}
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            found[int(fd)] = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue
    return found


def test_a_forked_worker_inherits_no_descriptor_but_its_two_pipes():
    """What the zygote holds (its control socket, other workers' status pipes) never reaches a
    worker, and the zygote forks from a single thread (no lock held by a thread that is gone).

    Looked at once the worker said it is ready and before any call, where its descriptors are
    fixed: its two pipes to the owner and the two to the child it forked for its first call
    (after a call it forks the next one's child while the owner reads the answer: counting then
    raced that fork), none of them the zygote's."""
    from hiergym.envs.execution import Zygote

    other = PythonRunner(timeout_s=5.0)  # a live worker whose status pipe the zygote holds
    runner = PythonRunner(timeout_s=5.0)
    try:
        assert other.run("print(0)").ok
        runner.start()
        hello = runner._receive(time.monotonic() + 60)  # the worker's "ready", no call yet
        assert hello.get("ready"), hello
        runner._ready = True
        fds = _fds(runner.pid)
        assert all(fds[fd] == "/dev/null" for fd in (0, 1, 2)), fds
        others = sorted(target for fd, target in fds.items() if fd > 2)
        own = _fds(os.getpid())
        to_owner = [own[fd] for fd in (runner._proc.to_child, runner._proc.from_child)]
        zygote = parent_of(runner.pid)
        held = set(_fds(zygote).values())  # its control socket, every worker's status pipe
        assert len(others) == 4 and all(t.startswith("pipe:") for t in others), fds
        assert set(to_owner) <= set(others) and not held & set(others), (fds, to_owner, held)
        assert runner.run("print(1)").ok
        assert zygote in {z.pid for z in Zygote._all}
        assert len(os.listdir(f"/proc/{zygote}/task")) == 1
    finally:
        runner.close()
        other.close()
