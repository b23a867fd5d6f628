"""Conformance checks the ids that ``import hiergym`` provides, whatever the tests registered first.

``check_domain`` plays its determinism episodes in fresh interpreters, which know the built-in
and installed plugins' ids only: an id a test module registered in this process (test_audit's
TestArith-v0, collected before conformance when ``pytest tests/test_audit.py tests/conformance``
runs in that order) made conformance fail on a ``gym.make`` in the subprocess."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym

from hiergym.envs.registry import _ENVS, register_domain

from .test_conformance import ENV_IDS, provided_env_ids

ROOT = Path(__file__).resolve().parents[2]


def test_an_id_registered_by_code_in_this_process_is_not_checked():
    env_id = "hiergym/TestConformanceUser-v0"
    register_domain(env_id, "hiergym.envs.shopping.env:ShoppingEnv")
    try:
        ids = provided_env_ids()
        assert env_id not in ids
        assert "hiergym/Shopping-v0" in ids and ids == ENV_IDS
    finally:
        _ENVS.pop(env_id, None)
        gym.registry.pop(env_id, None)


def test_collected_after_test_audit_conformance_checks_no_test_registered_id():
    proc = subprocess.run(
        [
            sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
            "tests/test_audit.py", "tests/conformance/test_conformance.py",
        ],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    checked = [line for line in proc.stdout.splitlines() if "test_check_domain[" in line]
    assert any("Shopping-v0" in line for line in checked), proc.stdout
    assert not [line for line in checked if "TestArith" in line or "TestLeakyArith" in line]
