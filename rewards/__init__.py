"""Domain-free verifier machinery: levels, verdicts, aggregators and reward wrappers."""

from .aggregate import AGGREGATORS
from .levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    Verdict,
    VerifyContext,
)
from .wrappers import HierarchicalReward, ProcessReward

__all__ = [
    "AGGREGATORS",
    "Finding",
    "HierarchicalReward",
    "HierarchicalVerifier",
    "Level",
    "LevelResult",
    "ProcessReward",
    "SkipLevel",
    "Verdict",
    "VerifyContext",
]
