"""Speed benchmarks, one module per domain: ``python -m hiergym.benchmarks.perf <domain>|all``.

Each module exposes ``run() -> dict[str, float]``. Figures are throughputs and ratios measured in one
process against a baseline run in the same process; tests never assert wall-clock times.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def rate(fn: Callable[[], object], *, min_time: float = 0.5, min_calls: int = 50) -> float:
    """Calls per second of ``fn``, measured over at least ``min_time`` seconds (after a warm-up)."""
    for _ in range(min(10, min_calls)):
        fn()
    calls, start = 0, time.perf_counter()
    while True:
        for _ in range(min_calls):
            fn()
        calls += min_calls
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return calls / elapsed


def per_call_ms(fn: Callable[[], object], **kwargs: float) -> float:
    return 1000.0 / rate(fn, **kwargs)
