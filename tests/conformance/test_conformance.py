"""hiergym.testing.check_domain on every env id ``import hiergym`` provides (plugins included)."""

from __future__ import annotations

import pytest

import hiergym
from hiergym.envs.registry import missing_data
from hiergym.testing import check_domain


def provided_env_ids() -> list[str]:
    """The built-in and installed plugins' ids, not those code registered in this process (a
    test's): check_domain plays episodes in fresh interpreters, which know only the former."""
    return [e.env_id for e in hiergym.list_envs() if e.source != "user"]


ENV_IDS = provided_env_ids()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_domain(env_id):
    reason = missing_data(env_id)  # e.g. TravelPlanner's data, which users supply
    if reason:
        pytest.skip(reason)
    report = check_domain(env_id)
    assert report["oracle_episodes"] >= 9
    assert report["mutants"], "every domain declares mutants"
