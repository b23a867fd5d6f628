"""Fixtures shared by the RTL tests."""

from __future__ import annotations

import gymnasium as gym
import pytest


@pytest.fixture(scope="module")
def env():
    """One built-in RTL env per test module (a module may define its own ``env``)."""
    e = gym.make("hiergym/RTL-v0")
    yield e
    e.close()
