"""Domain-free verifier machinery: levels, verdicts, aggregators and reward wrappers."""

from .aggregate import AGGREGATORS
from .lagrangian import LagrangianReward
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
    "LagrangianReward",
    "Level",
    "LevelResult",
    "ProcessReward",
    "SkipLevel",
    "Verdict",
    "VerifyContext",
]
