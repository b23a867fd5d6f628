"""hiergym.testing.check_domain on every registered env id (plugins included)."""

from __future__ import annotations

import gymnasium as gym
import pytest

import hiergym
from hiergym.envs.registry import load_class
from hiergym.testing import check_domain

ENV_IDS = [e.env_id for e in hiergym.list_envs()]


def _missing_data(env_id: str) -> str | None:
    """Why an env over data the user supplies (TravelPlanner's) cannot be made here, if so."""
    env_class = load_class(gym.spec(env_id).kwargs["env_class"])
    missing = getattr(env_class, "missing_data", None)
    return missing() if missing is not None else None


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_domain(env_id):
    reason = _missing_data(env_id)
    if reason:
        pytest.skip(reason)
    report = check_domain(env_id)
    assert report["oracle_episodes"] >= 9
    assert report["mutants"], "every domain declares mutants"
