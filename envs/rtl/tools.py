"""RTL tools: compile, simulate and synthesize a design against the episode's problem, and submit.

Each tool takes the complete Verilog source (a markdown answer's fenced blocks are extracted). The
answers depend on the task as well as on the code, so the tools declare a cache ``scope`` (the
task's fingerprint, the limits and the toolchain version): a repeated call, in this process or any
other sharing the ToolCache, costs a lookup instead of a toolchain run.
"""

from __future__ import annotations

import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hiergym.envs.tools import Toolbox, tool
from hiergym.errors import ToolError

from . import ppa, toolchain
from .toolchain import Limits

DEFAULT_LIMITS = Limits()


def limits_of(state: Any) -> Limits:
    return (
        state.memory.get("limits", DEFAULT_LIMITS) if hasattr(state, "memory") else DEFAULT_LIMITS
    )


def task_limits(task: Any, limits: Limits) -> Limits:
    """``limits`` with the problem's calibrated budgets where they are larger (``task.formal_s``
    for the proofs and the synthesis of the netlist that is proven, ``task.simulate_s`` for the
    simulation; set when the problem was imported or built). Cache keys keep ``limits``: a run
    stopped by a limit is never cached, so a cached result does not depend on the budget it
    finished within."""
    changes: dict[str, float] = {}
    formal = getattr(task, "formal_s", None)
    if formal is not None and formal > limits.formal_s:
        changes["formal_s"] = float(formal)
        changes["synthesize_s"] = max(limits.synthesize_s, float(formal))
    simulate = getattr(task, "simulate_s", None)
    if simulate is not None and simulate > limits.simulate_s:
        changes["simulate_s"] = float(simulate)
    return dataclasses.replace(limits, **changes) if changes else limits


def scope_of(state: Any) -> str:
    return toolchain.scope(state.task, limits_of(state))


def uncached_if_transient(report: dict[str, Any]) -> dict[str, Any]:
    """``report``, or a ToolError carrying it when a run hit a time or resource limit: the agent
    sees the result, and the sandbox does not cache it (a load spike is not a verdict)."""
    if toolchain.is_transient(report):
        raise ToolError(
            "a toolchain run hit a time or resource limit; the result is not cached, so calling "
            "again reruns it: " + json.dumps(report, sort_keys=True)[:3000]
        )
    return report


def reference_ppa(sandbox: Any, task: Any, limits: Limits) -> dict[str, Any]:
    """The reference's synthesis report, through the same cache as any synthesize call. Its
    envelope (:func:`calibrate`, the bars PPA is scored against) is measured with it, once
    per problem, so the verdict after a synthesize call finds both in the cache."""
    report = memo_unless_transient(
        sandbox,
        "synthesize_design",
        {"code": task.reference},
        lambda: toolchain.synthesize_design(
            task,
            task.reference,
            task_limits(task, limits),
            sandbox_memo(sandbox, toolchain.scope(task, limits)),
        ),
        toolchain.scope(task, limits),
    )
    if report.get("ok"):
        calibrate(sandbox, task, limits)
    return report


def sandbox_memo(sandbox: Any, scope: str) -> toolchain.Memo:
    """A :data:`toolchain.Memo` over the sandbox's cache, in ``scope``, that keeps no transient
    result (the toolchain's inner stages, e.g. synthesis after the canonical netlist)."""
    return lambda name, args, compute: memo_unless_transient(sandbox, name, args, compute, scope)


def memo_unless_transient(
    sandbox: Any, name: str, args: dict[str, Any], compute: Any, scope: str
) -> dict[str, Any]:
    """``sandbox.memo`` for toolchain results, except that a transient one (a timeout, a run
    killed by a signal) is returned without being cached."""
    hit = sandbox.lookup(name, args, scope)
    if hit is not None:
        return hit
    result = compute()
    if toolchain.is_transient(result):
        return result
    return sandbox.memo(name, args, lambda: result, scope)


def calibrate(sandbox: Any, task: Any, limits: Any) -> dict[str, Any]:
    """The reference's PPA envelope over :func:`ppa.rewrites`, each synthesized through the sandbox's
    cache under the same key as a ``synthesize`` call (the reference's own run is the one the
    ``synthesize`` tool shows next to a design): after a task's first verdict it costs lookups.

    Returns ``{"ok": True, "worst": figures, "best": figures, "spread": worst/best - 1 (in
    cost), "variants": {name: figures}}``; a transient run (a limit hit) is returned as that
    run's report, uncached, so the caller reports the reference as unavailable; a rewrite that
    does not synthesize where the reference does is left out (it is not the reference's
    circuit's fault)."""
    scope = toolchain.scope(task, limits)
    designs = ppa.rewrites(task)

    def measure(code: str) -> dict[str, Any]:
        return memo_unless_transient(
            sandbox,
            "synthesize_design",
            {"code": code},
            lambda: toolchain.synthesize_design(
                task, code, task_limits(task, limits), sandbox_memo(sandbox, scope)
            ),
            scope,
        )

    reports = {
        name: sandbox.lookup("synthesize_design", {"code": c}, scope) for name, c in designs.items()
    }
    missing = [name for name, r in reports.items() if r is None]
    if missing:
        with ThreadPoolExecutor(max_workers=min(4, len(missing))) as pool:
            for name, report in zip(
                missing, pool.map(lambda n: measure(designs[n]), missing), strict=True
            ):
                reports[name] = report
    for report in reports.values():
        if toolchain.is_transient(report):
            return report
    if not reports["reference"].get("ok"):
        return reports["reference"]
    variants = {
        name: {k: r[k] for k in ppa.FIGURES}
        for name, r in reports.items()
        if r.get("ok") and not r.get("unmapped_cells")
    }
    if not variants:  # the reference's circuit has cells outside the library: nothing to measure
        return {
            "ok": False,
            "status": "unmapped_cells",
            "messages": "the reference and its rewrites synthesize with unmapped cells "
            f"{reports['reference'].get('unmapped_cells')}: no area or delay to measure",
        }
    ranked = sorted(
        variants.values(), key=lambda f: (ppa.cost(f["area"], f["delay_ps"]), f["area"])
    )
    worst, best = ranked[-1], ranked[0]
    spread = (
        ppa.cost(worst["area"], worst["delay_ps"]) / ppa.cost(best["area"], best["delay_ps"]) - 1
    )
    return {
        "ok": True,
        "worst": worst,
        "best": best,
        "spread": round(spread, 6),
        "variants": variants,
    }


@tool(cache="persistent", scope=scope_of)
def compile(state: Any, code: str) -> dict[str, Any]:  # noqa: A001 - the tool's public name
    """Compile a Verilog design with iverilog and return the compiler's messages.

    Args:
        code: the complete Verilog source, declaring the required module with its exact ports.
    """
    return uncached_if_transient(toolchain.compile_design(state.task, code, limits_of(state)))


@tool(cache="persistent", scope=scope_of)
def simulate(state: Any, code: str) -> dict[str, Any]:
    """Simulate a design against the hidden reference on the verifier's stimulus (at least 1,000
    samples) and return how many samples match and the first mismatches (signal, cycle, inputs,
    expected, got).

    Args:
        code: the complete Verilog source.
    """
    limits = task_limits(state.task, limits_of(state))
    return uncached_if_transient(toolchain.simulate_design(state.task, code, limits))


@tool(cache="persistent", scope=scope_of)
def synthesize(state: Any, code: str) -> dict[str, Any]:
    """Synthesize a design with yosys and ABC on the shipped cell library and return its cell
    count, area, delay and logic depth next to the reference's.

    Args:
        code: the complete Verilog source.
    """
    limits = limits_of(state)
    compiled = toolchain.compile_design(state.task, code, limits)
    if not compiled["ok"]:
        return {"ok": False, "status": "compile_failed", "compile": compiled}
    report = toolchain.synthesize_design(
        state.task,
        code,
        task_limits(state.task, limits),
        sandbox_memo(state.sandbox, scope_of(state)),
    )
    ref = reference_ppa(state.sandbox, state.task, limits)
    if ref.get("ok"):
        report["reference"] = {k: ref[k] for k in ("cells", "area", "delay_ps", "depth")}
    return uncached_if_transient(report)


@tool(terminal=True, cache="none")
def submit(state: Any, code: str) -> str:
    """Submit the final design; ends the episode. It is verified by format, compilation,
    simulation, formal equivalence with the reference, and area/delay against the reference.

    Args:
        code: the complete Verilog source.
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox([compile, simulate, synthesize, submit])
