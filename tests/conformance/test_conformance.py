"""hiergym.testing.check_domain on every registered env id (plugins included)."""

from __future__ import annotations

import pytest

import hiergym
from hiergym.envs.registry import missing_data
from hiergym.testing import check_domain

ENV_IDS = [e.env_id for e in hiergym.list_envs()]


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_domain(env_id):
    reason = missing_data(env_id)  # e.g. TravelPlanner's data, which users supply
    if reason:
        pytest.skip(reason)
    report = check_domain(env_id)
    assert report["oracle_episodes"] >= 9
    assert report["mutants"], "every domain declares mutants"
