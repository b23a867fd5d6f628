"""RTL verifier: format -> syntax -> function -> formal -> ppa, gated.

* format — the submission declares the required module with the required ports (names,
  directions, constant widths) and no module name reserved for the testbench or the reference;
* syntax — iverilog compiles it (against an interface harness, nothing else to bind to); a failure
  is classified as syntax, elaboration, unsupported (including refused constructs such as
  ``$fopen``, ``$finish``, `` `include``, and whatever synthesis obeys but simulation ignores:
  ``(* attributes *)``, ``translate_off`` / ``full_case`` comments, tool-macro ``ifdef``s) or
  timeout;
* function — simulation next to the reference on the verifier's own testbench: score = fraction of
  samples whose every output matches, passed only at 100%;
* formal — yosys proves equivalence with the reference (a SAT miter for combinational problems,
  bounded equivalence from reset over the task's documented depth for sequential ones). A design
  that matches every sampled vector but differs elsewhere fails here; an inconclusive proof scores
  0.5 and does not pass;
* ppa — area and delay against the reference's, on the same library and flow. The cost ratio
  ``rho = sqrt(((area + a0) / (ref_area + a0)) * ((delay + d0) / (ref_delay + d0)))`` (a0 = one
  inverter's area, d0 = 10 ps, so tiny designs do not divide by zero) gives the score
  ``min(1, target * (1 + tolerance) / rho)``: continuous, 1.0 at the reference with the default
  ``target=1``; ``target < 1`` asks for an improvement and rewards it continuously. A
  ``beats_reference`` finding marks ``rho < 1 - tolerance`` (ABC's noise is about 1%). A netlist with cells outside the library (a
  module instance that survived flattening, an unmapped internal cell) has no known area or delay
  and scores 0.

The toolchain runs once per (code, task, limits, toolchain version): every stage goes through the
sandbox's cache under the same keys as the agent's tool calls, so a submission the agent already
simulated and synthesized only pays for the formal proof; the stages run in parallel.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hiergym.envs.core import EpisodeState, missing_submission
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from . import toolchain, tools
from .toolchain import Limits
from .verilog import extract_code

AREA_FLOOR = 0.53  # one INV_X1 of hiergym_generic.lib
DELAY_FLOOR_PS = 10.0
PPA_TOLERANCE = 0.02
INCONCLUSIVE_SCORE = 0.5


def evaluate(sandbox: Any, task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Every toolchain stage for one submission, each cached. Once the design compiles, the stages
    the cache does not hold run in parallel (a thread each, waiting on its subprocess)."""
    state = EpisodeState(sandbox, task, {"limits": limits})
    scope = toolchain.scope(task, limits)
    args = {"code": code}
    compiled = sandbox.memo("compile", args, lambda: tools.compile.fn(state, code=code), scope)
    report: dict[str, Any] = {"compile": compiled}
    if not compiled["ok"]:
        return report
    stages = {  # report key -> (cache name, the tool or stage that computes it)
        "simulate": ("simulate", lambda: tools.simulate.fn(state, code=code)),
        "synthesize": ("synthesize", lambda: tools.synthesize.fn(state, code=code)),
        "formal": ("prove_equivalence", lambda: toolchain.prove_equivalence(task, code, limits)),
    }
    missing = {}
    for key, (name, compute) in stages.items():
        hit = sandbox.lookup(name, args, scope)
        if hit is None:
            missing[key] = (name, compute)
        else:
            report[key] = hit
    if len(missing) == 1:
        ((key, (name, compute)),) = missing.items()
        report[key] = sandbox.memo(name, args, compute, scope)
    elif missing:
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            jobs = {
                key: pool.submit(sandbox.memo, name, args, compute, scope)
                for key, (name, compute) in missing.items()
            }
            for key, job in jobs.items():
                report[key] = job.result()
    return report


class FormatLevel(Level):
    name = "format"

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj = ctx.trajectory
        sub = traj.submission
        if sub is None:
            return self.result(0.0, [missing_submission(traj)])
        code = sub.arguments["code"]
        failed = toolchain.check_format(ctx.task, extract_code(code))
        if failed is not None:
            return self.result(0.0, [Finding(failed.get("code", "format"), failed["messages"])])
        ctx.scratch["code"] = code
        return self.result(1.0)


class _ReportLevel(Level):
    """A level that reads the cached toolchain report of the submission."""

    def __init__(self, sandbox: Any, limits: Limits):
        self.sandbox = sandbox
        self.limits = limits

    def report(self, ctx: VerifyContext) -> dict[str, Any]:
        if "code" not in ctx.scratch:
            raise SkipLevel("no well-formed submission to run")
        if "report" not in ctx.scratch:
            ctx.scratch["report"] = evaluate(
                self.sandbox, ctx.task, ctx.scratch["code"], self.limits
            )
        return ctx.scratch["report"]


class SyntaxLevel(_ReportLevel):
    name = "syntax"

    def check(self, ctx: VerifyContext) -> LevelResult:
        compiled = self.report(ctx)["compile"]
        metrics = {"warnings": compiled.get("warnings", 0), "category": compiled["category"]}
        if compiled["ok"]:
            return self.result(1.0, metrics=metrics)
        code = compiled.get("code", compiled["category"])
        return self.result(0.0, [Finding(code, compiled["messages"])], metrics=metrics)


class FunctionLevel(_ReportLevel):
    name = "function"

    def check(self, ctx: VerifyContext) -> LevelResult:
        report = self.report(ctx)
        if "simulate" not in report:
            raise SkipLevel("the design does not compile")
        sim = report["simulate"]
        findings: list[Finding] = []
        status = sim.get("status")
        if status != "completed":
            findings.append(Finding(status or "no_result", sim.get("messages", status or "")))
        for m in sim.get("mismatches", [])[:5]:
            when = f"cycle {m['cycle']}" if "cycle" in m else f"sample {m['sample']}"
            findings.append(
                Finding(
                    "mismatch",
                    f"{m['signal']} at {when}: expected {m['expected']}, got {m['got']} "
                    f"(inputs {m['inputs']})",
                )
            )
        for hint in sim.get("hints", [])[:5]:
            findings.append(Finding("testbench_hint", hint))
        score = float(sim.get("score", 0.0))
        metrics = {k: sim[k] for k in ("samples", "matching") if k in sim}
        return self.result(score, findings, passed=bool(sim.get("ok")), metrics=metrics)


class FormalLevel(_ReportLevel):
    name = "formal"

    def check(self, ctx: VerifyContext) -> LevelResult:
        report = self.report(ctx)
        if "formal" not in report:
            raise SkipLevel("the design does not compile")
        formal = report["formal"]
        status = formal["status"]
        metrics = {"status": status, "method": formal["method"], "depth": formal["depth"]}
        if status == "proven":
            return self.result(1.0, metrics=metrics)
        message = formal.get("messages", "")
        if status == "counterexample":
            rows = formal.get("counterexample", [])
            shown = ", ".join(_model_value(r) for r in rows[:24])
            message = f"{message}: {shown}" if shown else message
        score = INCONCLUSIVE_SCORE if status == "inconclusive" else 0.0
        return self.result(score, [Finding(status, message)], passed=False, metrics=metrics)


def _model_value(row: dict[str, Any]) -> str:
    step = "" if row["step"] is None else f"step {row['step']} "
    return f"{step}{row['signal']}=0x{row['hex']}"


class PPALevel(_ReportLevel):
    name = "ppa"

    def __init__(self, sandbox: Any, limits: Limits, target: float = 1.0):
        super().__init__(sandbox, limits)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"ppa_target must be in (0, 1], got {target}")
        self.target = target

    def check(self, ctx: VerifyContext) -> LevelResult:
        report = self.report(ctx)
        if "synthesize" not in report:
            raise SkipLevel("the design does not compile")
        syn = report["synthesize"]
        if not syn.get("ok"):
            return self.result(
                0.0, [Finding(syn.get("status", "failed"), syn.get("messages", ""))], passed=False
            )
        if syn.get("unmapped_cells"):
            return self.result(
                0.0,
                [
                    Finding(
                        "unmapped_cells",
                        f"synthesis left cells {syn['unmapped_cells']} that are not in the cell "
                        "library, so their area and delay are unknown; write logic that maps to "
                        "library gates and flip-flops",
                    )
                ],
                passed=False,
            )
        ref = syn.get("reference")
        if ref is None:
            from hiergym.errors import VerifierError

            raise VerifierError(
                f"the reference of {ctx.task.task_id} does not synthesize; the task is broken"
            )
        area_ratio = (syn["area"] + AREA_FLOOR) / (ref["area"] + AREA_FLOOR)
        delay_ratio = (syn["delay_ps"] + DELAY_FLOOR_PS) / (ref["delay_ps"] + DELAY_FLOOR_PS)
        rho = math.sqrt(area_ratio * delay_ratio)
        score = min(1.0, self.target * (1 + PPA_TOLERANCE) / rho)
        # ABC's results move by about 1% between equivalent netlists: only a cost clearly below
        # the reference's (by more than the PPA tolerance) counts as beating it.
        beats = rho < 1.0 - PPA_TOLERANCE
        findings = []
        if beats:
            findings.append(
                Finding(
                    "beats_reference",
                    f"cost {rho:.3f} of the reference's (area {syn['area']} vs {ref['area']}, "
                    f"delay {syn['delay_ps']} ps vs {ref['delay_ps']} ps)",
                )
            )
        elif score < 1.0:
            findings.append(
                Finding(
                    "worse_than_target",
                    f"cost {rho:.3f} of the reference's (area {syn['area']} vs {ref['area']}, "
                    f"delay {syn['delay_ps']} ps vs {ref['delay_ps']} ps); target {self.target}",
                )
            )
        metrics = {
            "area": syn["area"],
            "delay_ps": syn["delay_ps"],
            "cells": syn["cells"],
            "depth": syn["depth"],
            "reference_area": ref["area"],
            "reference_delay_ps": ref["delay_ps"],
            "cost_ratio": round(rho, 6),
            "improvement": round(1.0 - rho, 6),
            "beats_reference": beats,
        }
        return self.result(score, findings, passed=score >= 1.0 - 1e-12, metrics=metrics)


def build_verifier(
    sandbox: Any,
    limits: Limits,
    aggregate: Any = "gated",
    ppa_target: float = 1.0,
    **params: Any,
) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [
            FormatLevel(),
            SyntaxLevel(sandbox, limits),
            FunctionLevel(sandbox, limits),
            FormalLevel(sandbox, limits),
            PPALevel(sandbox, limits, ppa_target),
        ],
        aggregate,
        **params,
    )
