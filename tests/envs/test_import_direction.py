"""Each built-in domain's files import in one direction: data -> tools -> tasks -> verifier ->
oracle -> env (DESIGN.md, "Layout"). A module may import only modules to its left; env.py, the
top, may import all of them. Lazy imports inside functions count too: a circle hidden in a function
body is still a circle (the old data -> tasks -> oracle -> tasks one was).

The check parses each file with ``ast`` (nothing is imported). A domain's helper modules get a place
in its order from what they import and what imports them:

* pure helpers that import no module of the domain sit first: travel's ``clock``, ``geo`` and
  ``rules`` (calendar, distances, house and room rules), geometry's ``scene`` and ``solvers``
  (frames and numerics);
* ``world`` (travel: typed views of the built DB; imports geo) sits after data, before the tools
  that read through it; geometry's ``pyworker`` (the sandboxed worker script, imports nothing) and
  ``pyrunner`` (the process that runs it) sit before the tools (the python tool runs on them);
* the answer parsers a verifier reads a submission with sit just before it: shopping's ``claims``
  (the message's claims, reads the vocabulary of data), travel's ``itinerary`` and ``levels``,
  geometry's ``units``;
* travel's ``process`` (turn checks for process rewards; imports data) sits after the verifier,
  ``recorder`` (plays a planner's calls and proves them against a verifier it is given) just before
  the oracle;
* shopping's ``ranking`` (the ranked-list family's tasks, submit and levels, built on the
  verifier's product rule) sits after the verifier, before the oracle that solves it;
* ``mutants`` and ``attacks`` (built from the oracle's solutions) sit after the oracle, before env;
* RTL: ``verilog`` (the slang front-end: ports, the construct scan) and ``problem`` (the task
  record every source of problems builds, and the clocking read from a reference) sit first;
  ``ppa`` (the canonical netlist form, also run as a script inside synthesis) and ``testbench``
  (the generated, VerilogEval and RTLLM benches) before the benchmark readers ``rtllm`` and
  ``importer``, which sit before data; ``toolchain`` (iverilog/yosys runs) before the tools,
  ``power`` (gate-level switching activity) before the verifier that reports it.

``__init__.py`` is ``register()`` only and is not part of the chain. A sub-package (TravelPlanner)
has its own order; the modules it uses from its parent are listed in it as ``..name``, in the
parent's relative order. A module with no place here fails the check: give it one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hiergym.envs

ENVS = Path(hiergym.envs.__file__).parent
CHAIN = ("data", "tools", "tasks", "verifier", "oracle", "env")

ORDERS: dict[str, tuple[str, ...]] = {
    "shopping": (
        *("data", "tools", "tasks", "claims", "verifier", "ranking", "oracle", "attacks", "env"),
    ),
    "travel": (
        *("clock", "geo", "rules"),
        *("data", "world", "tools", "tasks", "itinerary", "levels", "verifier", "process"),
        *("recorder", "oracle", "mutants", "attacks", "env"),
    ),
    "geometry": (
        *("scene", "solvers", "data", "pyworker", "pyrunner", "tools", "tasks", "units"),
        *("verifier", "oracle", "attacks", "env"),
    ),
    "rtl": (
        *("verilog", "problem", "ppa", "testbench", "rtllm", "importer", "data", "toolchain"),
        *("tools", "tasks", "power", "verifier", "oracle", "attacks", "env"),
    ),
    "travel/travelplanner": (
        *("..clock", "..rules", "..world", "..tools", "..tasks", "..levels", "..recorder"),
        *("database", "importer", "evaluate", "plan", "tools", "tasks", "verifier", "oracle"),
        *("queries", "mutants", "..attacks", "env"),
    ),
}

DOMAINS = ["shopping", "travel", "geometry", "rtl", "travel/travelplanner"]


def imports_of(path: Path, package: str) -> list[tuple[int, str]]:
    """(line, name) of every module of ``package`` (dotted, e.g. ``travel.travelplanner``) that
    the file imports, at any depth of the file; a parent package's modules come as ``..name``."""
    dotted = f"hiergym.envs.{package}"
    parent = dotted.rsplit(".", 1)[0]
    found: list[tuple[int, str]] = []

    def add(line: int, base: str, names: list[str]) -> None:
        """``base`` is a module path relative to the package ("" for the package itself)."""
        if base:
            found.append((line, base.split(".")[0]))
        else:
            found.extend((line, n) for n in names)

    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            module = node.module or ""
            if node.level == 1:
                add(node.lineno, module, names)
            elif node.level == 2 and "." in package:
                found += [(node.lineno, f"..{m}") for m in _rel(module, names)]
            elif node.level == 0 and (module == dotted or module.startswith(dotted + ".")):
                add(node.lineno, module[len(dotted) + 1 :], names)
            elif node.level == 0 and "." in package and module.startswith(parent + "."):
                found += [(node.lineno, f"..{m}") for m in _rel(module[len(parent) + 1 :], names)]
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(dotted + "."):
                    add(node.lineno, alias.name[len(dotted) + 1 :], [])
    return found


def _rel(module: str, names: list[str]) -> list[str]:
    return [module.split(".")[0]] if module else names


def violations(folder: Path, package: str, order: tuple[str, ...]) -> list[str]:
    """Every import of a module to the importer's right (or of a module with no place)."""
    place = {name: i for i, name in enumerate(order)}
    found = []
    for path in sorted(folder.glob("*.py")):
        me = path.stem
        if me == "__init__":
            continue
        if me not in place:
            found.append(f"{path.name} has no place in the order {order}")
            continue
        for line, other in imports_of(path, package):
            if other == me:
                continue
            if other not in place:
                found.append(f"{path.name}:{line} imports {other}, which has no place in the order")
            elif place[other] > place[me]:
                found.append(f"{path.name}:{line} imports {other}, which sits to its right")
    return found


@pytest.mark.parametrize("domain", DOMAINS)
def test_a_domain_imports_in_one_direction(domain):
    order = ORDERS[domain]
    package = domain.replace("/", ".")
    assert violations(ENVS / domain, package, order) == []


@pytest.mark.parametrize("domain", list(ORDERS))
def test_every_order_keeps_the_chain(domain):
    """Helpers slot in; the six domain files keep their order, env last. A sub-package (which may
    lack some of the six: TravelPlanner's data are its database and importer) lists its parent's
    modules in the parent's own order."""
    order = ORDERS[domain]
    chain = [m for m in CHAIN if m in order] if "/" in domain else list(CHAIN)
    assert [m for m in order if m in CHAIN] == chain and order[-1] == "env"
    if "/" in domain:
        parent = ORDERS[domain.split("/")[0]]
        used = [m[2:] for m in order if m.startswith("..")]
        assert used == [m for m in parent if m in used]


def test_the_check_finds_a_lazy_import_to_the_right(tmp_path):
    """The old circle, in miniature: data imports tasks inside a function, tasks imports oracle."""
    pkg = tmp_path / "demo"
    pkg.mkdir()
    (pkg / "data.py").write_text("def build():\n    from .tasks import generate\n")
    (pkg / "tasks.py").write_text("from hiergym.envs.demo import oracle\n")
    (pkg / "oracle.py").write_text("from . import tasks\nfrom .data import build\n")
    (pkg / "stray.py").write_text("")
    found = violations(pkg, "demo", ("data", "tasks", "oracle"))
    assert found == [
        "data.py:2 imports tasks, which sits to its right",
        "stray.py has no place in the order ('data', 'tasks', 'oracle')",
        "tasks.py:1 imports oracle, which sits to its right",
    ]


def test_a_sub_package_reading_its_parent_is_checked_against_its_order(tmp_path):
    pkg = tmp_path / "sub"
    pkg.mkdir()
    (pkg / "tasks.py").write_text("from ..oracle import plan\nfrom ..clock import x\n")
    found = violations(pkg, "demo.sub", ("..clock", "tasks", "..oracle"))
    assert found == ["tasks.py:1 imports ..oracle, which sits to its right"]
