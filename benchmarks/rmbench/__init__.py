"""rm-bench: judging the judges with hiergym's exact, per-level verdicts.

``hiergym rm-bench build`` plays, for tasks of every split of the chosen envs, the oracle's solution,
its harmless twins, its mutants (each fails at one known level) and the hack-matrix attacks, and
stores each episode as a row with the verifier's exact labels: the reward, which levels passed, the
first failed level, and per-step labels (a step is bad when the verdict attributes a failure to it).
From the rows it forms pairs that share a prompt (the oracle against a mutant; a harmless twin
against an attack) and best-of-4 groups (the oracle and three mutants, each failing at one late
level). Splits are the envs' own task splits, so they are disjoint by task.

``hiergym rm-bench eval DIR --judge SPEC`` scores a judge on those rows: pairwise and best-of-4
accuracy, balanced accuracy per level (does it reject an episode that fails at level L and accept a
correct one), localisation of the first failing level, the acceptance rate of hack rows and the rank
correlation with the verifier's reward, each with a task-clustered bootstrap CI.

Modules: :mod:`.build` (the dataset), :mod:`.judges` (judge specs), :mod:`.metrics` (eval).
"""

from __future__ import annotations

from .build import build_dataset, load_dataset
from .judges import Judgement, load_judge
from .metrics import evaluate, format_table

__all__ = [
    "Judgement",
    "build_dataset",
    "evaluate",
    "format_table",
    "load_dataset",
    "load_judge",
]
