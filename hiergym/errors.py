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
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""
