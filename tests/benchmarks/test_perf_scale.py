"""The scale benchmark's measuring parts (issue 12): process-tree memory from /proc, and the
perf command passing options to a module."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hiergym.benchmarks.perf import __main__ as perf_main
from hiergym.benchmarks.perf import scale

linux = pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs /proc")


@linux
def test_tree_memory_counts_a_child_and_its_memory():
    code = "import time; b = bytearray(64 * 1024 * 1024); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            m = scale.tree_memory(os.getpid())
            if child.pid in scale.descendants(os.getpid()) and m["children_pss"] > 60 * scale.MiB:
                break
            time.sleep(0.1)
        assert child.pid in scale.descendants(os.getpid())
        assert m["children"] >= 1 and m["children_pss"] > 60 * scale.MiB
        assert m["pss"] > 0 and m["rss"] >= m["pss"]
    finally:
        child.kill()
        child.wait()


@linux
def test_the_peak_sampler_sees_a_short_lived_child():
    with scale.PeakSampler(os.getpid(), every_s=0.02) as peak:
        subprocess.run([sys.executable, "-c", "import time; time.sleep(0.5)"], check=True)
    assert peak.peak_children >= 1 and peak.peak_tree_pss > 0


def test_perf_passes_options_to_the_modules_it_runs(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(scale, "run", lambda options=(): seen.append(list(options)) or {"n": 1})
    assert perf_main.main(["scale", "--quick"]) == 0
    assert seen == [["--quick"]] and '"n": 1' in capsys.readouterr().out
