"""``python -m hiergym.benchmarks.perf <domain> [...]`` or ``all``: print each domain's figures as JSON.

Options (``--quick``, say) go to the modules named, as ``run(options)``."""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys

import hiergym.benchmarks.perf as perf


def main(argv: list[str]) -> int:
    available = sorted(
        m.name for m in pkgutil.iter_modules(perf.__path__) if not m.name.startswith("_")
    )
    options = [a for a in argv if a.startswith("--")]  # e.g. scale --quick
    argv = [a for a in argv if not a.startswith("--")]
    wanted = available if not argv or argv == ["all"] else argv
    unknown = [w for w in wanted if w not in available]
    if unknown:
        print(f"unknown perf module(s) {unknown}; available: {available}", file=sys.stderr)
        return 2
    for name in wanted:
        module = importlib.import_module(f"hiergym.benchmarks.perf.{name}")
        figures = module.run(options) if options else module.run()
        print(json.dumps({name: figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
