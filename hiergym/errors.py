"""The one exception tree of hiergym.

```
HiergymError                  every error hiergym raises on purpose
├── SandboxError              the sandbox data or the tool cache cannot serve a request
│   └── ReplayMiss            replay mode, and the answer would need the outside world
├── ToolError                 a tool refused its input (becomes an error observation, never escapes step())
├── TaskError                 a task cannot be built or found (unknown split, difficulty or task id)
├── VerifierError             a verifier broke: a bug, never a 0.0 reward
└── PluginError               a domain plugin or env id cannot be loaded
```

Messages say what was expected, what came, and the fix.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class HiergymError(Exception):
    """Root of every error hiergym raises on purpose."""


class SandboxError(HiergymError):
    """The sandbox data or the tool cache cannot serve a request."""


class ReplayMiss(SandboxError):
    """Replay mode found no cached answer, and producing one needs a live backend."""


class ToolError(HiergymError):
    """A tool refused its input; the env turns it into an error observation."""


class TaskError(HiergymError):
    """A task cannot be built or found."""


class VerifierError(HiergymError):
    """A verifier level raised: this is a bug in the verifier, not a wrong answer."""


class PluginError(HiergymError):
    """A domain plugin or env id cannot be loaded."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` suffix for the closest choice, or ``""`` if none is close."""
    close = closest(name, choices)
    return f"; did you mean {close!r}?" if close is not None else ""


def closest(name: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """``difflib.get_close_matches(name, choices, n=1, cutoff=cutoff)``'s answer, fast.

    difflib scores every choice in Python (27 ms for one unknown Travel place id among 4,975:
    the cost of every mistyped id a policy sends). rapidfuzz's Indel similarity, ``2 * LCS /
    (len(a) + len(b))``, computed in C, bounds difflib's ratio from above (its matching blocks
    are a common subsequence, so they hold at most LCS characters). So only choices whose bound
    reaches ``cutoff`` are scored with difflib, best bound first, stopping once the bound falls
    below the best ratio found: the same choice difflib returns (ties: the greatest string)."""
    from rapidfuzz import process
    from rapidfuzz.distance import Indel

    choices = list(choices)
    # rapidfuzz turns a score cutoff into a distance with its own rounding (a similarity of
    # exactly 0.6 fails a cutoff of 0.6 - 1e-9): the filter is kept loose, difflib decides
    slack = 0.01
    bounded = process.extract(
        name, choices, scorer=Indel.normalized_similarity, score_cutoff=cutoff - slack, limit=None
    )
    matcher = difflib.SequenceMatcher()
    matcher.set_seq2(name)
    best: tuple[float, str] | None = None
    for choice, bound, _ in bounded:  # best bound first
        if best is not None and bound < best[0] - 1e-6:
            break
        matcher.set_seq1(choice)
        if matcher.real_quick_ratio() >= cutoff and matcher.quick_ratio() >= cutoff:
            ratio = matcher.ratio()
            if ratio >= cutoff and (best is None or (ratio, choice) > best):
                best = (ratio, choice)
    return None if best is None else best[1]
