"""``hiergym init NAME`` writes a plugin package that installs and passes the conformance check."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hiergym.cli import main


def test_init_writes_a_domain_that_installs_and_passes_check_domain(tmp_path, capsys):
    target = tmp_path / "pkg"
    assert main(["init", "demo_sum", "--dir", str(target)]) == 0
    assert "hiergym/DemoSum-v0" in capsys.readouterr().out
    package = target / "hiergym_demo_sum"
    assert {p.name for p in package.iterdir()} >= {
        "__init__.py", "data.py", "tools.py", "tasks.py", "verifier.py", "oracle.py", "env.py"
    }  # fmt: skip
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--isolated", "--line-length", "100",
         "--select", "E,F,W,I,B,UP,SIM", "."],
        cwd=target, capture_output=True, text=True,
    )  # fmt: skip
    assert lint.returncode == 0, lint.stdout
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
         str(target)],
        check=True, timeout=600,
    )  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(target / "tests")],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "1 passed" in proc.stdout


def test_init_refuses_a_bad_name_and_an_existing_package(tmp_path, capsys):
    assert main(["init", "Bad-Name", "--dir", str(tmp_path / "x")]) == 2
    assert "lower case" in capsys.readouterr().err
    assert main(["init", "ok", "--dir", str(tmp_path / "y")]) == 0
    assert main(["init", "ok", "--dir", str(tmp_path / "y")]) == 2
    assert "already holds" in capsys.readouterr().err


@pytest.mark.parametrize("module", ["data", "tools", "tasks", "verifier", "oracle", "env"])
def test_the_skeleton_imports_in_one_direction(tmp_path, module):
    import ast

    from hiergym.scaffold import init_domain

    init_domain("shape", tmp_path)
    order = ["data", "tools", "tasks", "verifier", "oracle", "env"]
    tree = ast.parse((tmp_path / "hiergym_shape" / f"{module}.py").read_text())
    imported = {
        alias.name if node.module is None else node.module
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.level == 1
        for alias in node.names
    }
    later = set(order[order.index(module) + 1 :])
    assert not imported & later, f"{module} imports {imported & later}"
