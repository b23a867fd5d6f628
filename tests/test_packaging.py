"""Set-up and packaging: what a new user meets in the first hour (issue 11)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_hiergym_needs_no_posix_only_module():
    # fcntl does not exist on Windows: importing hiergym (and its sandbox) must not need it.
    code = (
        "import sys; sys.modules['fcntl'] = None\n"
        "import hiergym, hiergym.envs.sandbox, hiergym.testing\n"
        "print(len(hiergym.list_envs()))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) >= 5


def _make_dry_run(target: str, **variables: str) -> str:
    args = ["make", "-n", "-C", str(ROOT), target, *(f"{k}={v}" for k, v in variables.items())]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_make_uses_a_project_virtualenv_and_bench_installs_only_what_it_needs():
    bench = _make_dry_run("bench")
    assert ".venv/bin/python -m pip install" in bench and '-e ".[plots]"' in bench
    assert "[dev]" not in bench and "torch" not in bench
    test = _make_dry_run("test")
    assert '.venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"' in test
    # PYTHON= still overrides the virtualenv
    custom = _make_dry_run("bench", PYTHON="/opt/py/bin/python3")
    assert "/opt/py/bin/python3 -m pip install" in custom and ".venv" not in custom


def test_the_llm_extra_takes_a_torch_range_not_a_pin():
    text = (ROOT / "pyproject.toml").read_text()
    assert "torch==" not in text
    assert '"torch>=2.4"' in text


def test_a_folder_named_hiergym_that_shadows_the_package_is_named_in_the_error(tmp_path):
    # From the parent of a clone, "hiergym" is the clone (an empty namespace package): gym.make
    # said "Namespace hiergym not found" and a Ray/pool bench exited 0 with every episode failed.
    (tmp_path / "hiergym").symlink_to(ROOT)
    code = (
        "from hiergym.benchmarks.bench import _run_in_worker\n"
        "from hiergym.benchmarks.runner import EpisodeSpec\n"
        "_run_in_worker(EpisodeSpec('hiergym/Shopping-v0', 'test', 'easy', 'random', 0))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode != 0
    assert "shadows the installed hiergym package" in proc.stderr
    assert "run from another directory" in proc.stderr


def test_the_readme_quickstart_prints_what_it_says():
    import re

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Quickstart") :]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    expected = [line.split("# -> ", 1)[1] for line in code.splitlines() if "# -> " in line]
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == expected
