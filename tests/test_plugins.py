"""Plugins: a real package installed with pip is found through its entry point; a broken one is reported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(code: str, path: Path) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(site),
            str(ROOT / "examples" / "hiergym-arith-plugin"),
        ],
        check=True,
        timeout=600,
    )
    return site


def test_installed_plugin_env_is_made_and_passes_check_domain(plugin_site):
    proc = run(
        "import gymnasium as gym, hiergym\n"
        "from hiergym.testing import check_domain\n"
        "env = gym.make('hiergym/Arith-v0', difficulty='hard')\n"
        "obs, info = env.reset(seed=0)\n"
        "print(obs)\n"
        "print(check_domain('hiergym/Arith-v0'))\n"
        "print([e.source for e in hiergym.list_envs() if e.env_id == 'hiergym/Arith-v0'])\n",
        plugin_site,
    )
    assert proc.returncode == 0, proc.stderr
    assert "What is the sum of" in proc.stdout
    assert "'off_by_one': 'grounded'" in proc.stdout and "['arith']" in proc.stdout


def test_broken_plugin_is_reported_by_name_and_builtins_still_work(tmp_path):
    dist = tmp_path / "brokenplug-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[hiergym.domains]\nbrokenplug = no_such_module_xyz:register\n"
    )
    proc = run(
        "import gymnasium as gym, hiergym\n"
        "print([(b.name, b.error) for b in hiergym.broken_plugins()])\n"
        "env = gym.make('hiergym/Shopping-v0'); env.reset(seed=0); print('shopping ok')\n"
        "from hiergym.cli import main; main(['list'])\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "('brokenplug', \"ModuleNotFoundError: No module named 'no_such_module_xyz'\")"
        in proc.stdout
    )
    assert "shopping ok" in proc.stdout and "broken" in proc.stdout


def test_plugin_look_finds_declared_group_and_skips_full_scan_without(tmp_path, monkeypatch):
    from hiergym.envs import registry

    bare = tmp_path / "bare"
    (bare / "other-1.0.dist-info").mkdir(parents=True)
    (bare / "other-1.0.dist-info" / "entry_points.txt").write_text(
        "[console_scripts]\nother = other:main\n"
    )
    (bare / "noeps-1.0.dist-info").mkdir()
    (bare / "legacy.egg-info").write_text("Metadata-Version: 1.0\n")  # an egg-info file
    monkeypatch.setattr(sys, "path", [str(bare), str(tmp_path / "missing")])
    assert registry.declares_plugins() is False

    plug = tmp_path / "plug"
    (plug / "myplug-0.1.dist-info").mkdir(parents=True)
    (plug / "myplug-0.1.dist-info" / "entry_points.txt").write_text(
        "[hiergym.domains]\nmyplug = myplug:register\n"
    )
    monkeypatch.setattr(sys, "path", [str(bare), str(plug)])
    assert registry.declares_plugins() is True

    zipped = tmp_path / "lib.zip"
    zipped.write_bytes(b"PK\x05\x06" + bytes(18))  # an (empty) zip on the path: full scan decides
    monkeypatch.setattr(sys, "path", [str(bare), str(zipped)])
    assert registry.declares_plugins() is True


def test_import_hiergym_without_plugins_skips_importlib_metadata(tmp_path):
    from hiergym.envs import registry

    if registry.declares_plugins():
        pytest.skip("a hiergym plugin is installed here: the full entry-point scan is due")
    proc = run(
        "import sys\n"
        "before = set(sys.modules)\n"
        "import hiergym\n"
        "new = set(sys.modules) - before\n"
        "print('importlib.metadata' in new, 'logging' in new)\n"
        "print(len(hiergym.list_envs()) > 0, hiergym.broken_plugins())\n",
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False", "True", "[]"]


def test_an_env_registered_outside_plugin_loading_is_listed_as_user_not_builtin() -> None:
    from hiergym.envs.registry import _ENVS, list_envs, register_domain

    env_id = "hiergym/TestUserRegistered-v0"
    register_domain(env_id, "hiergym.envs.shopping.env:ShoppingEnv")
    try:
        sources = {e.env_id: e.source for e in list_envs()}
        assert sources[env_id] == "user"
        assert sources["hiergym/Shopping-v0"] == "builtin"
    finally:
        import gymnasium as gym

        _ENVS.pop(env_id, None)
        gym.registry.pop(env_id, None)
