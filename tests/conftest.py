from __future__ import annotations

import os
import tempfile
from pathlib import Path

# Tests never reach a model hub, and build sandboxes in a throwaway home shared by the session
# (the shopping DB takes seconds to build; every test reuses it).
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HIERGYM_HOME", str(Path(tempfile.gettempdir()) / "hiergym-test-home"))
# TravelPlanner's data, where this checkout has it beside it (../shared/data/travelplanner): the
# conformance and fidelity tests then run on it without relying on the source-checkout fallback.
_TRAVELPLANNER = Path(__file__).resolve().parents[2] / "shared" / "data" / "travelplanner"
if (_TRAVELPLANNER / "distance.csv").is_file():
    os.environ.setdefault("HIERGYM_TRAVELPLANNER_DIR", str(_TRAVELPLANNER))

import gymnasium as gym  # noqa: E402
import pytest  # noqa: E402

import hiergym  # noqa: E402, F401


@pytest.fixture
def shopping():
    env = gym.make("hiergym/Shopping-v0", split="test", difficulty="medium")
    yield env
    env.close()


@pytest.fixture(scope="session")
def rmbench_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An rm-bench dataset of Shopping and Geometry (two tasks of train and of test each), built
    once per session for the rm-bench and PRM tests."""
    from hiergym.benchmarks.rmbench import build_dataset

    out = tmp_path_factory.mktemp("rmbench")
    build_dataset(
        ["hiergym/Shopping-v0", "hiergym/Geometry-v0"],
        out,
        tasks_per_split=2,
        splits=("train", "test"),
    )
    return out
