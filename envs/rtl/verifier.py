"""RTL verifier: format -> syntax -> function -> formal -> ppa, gated.

* format — the submission declares the required module with the required ports (names,
  directions, constant widths) and no module name reserved for the testbench or the reference;
* syntax — iverilog compiles it (against an interface harness, nothing else to bind to) and
  yosys's ``check`` finds nothing to object to; a failure is classified as syntax, elaboration,
  unsupported or timeout. Refused: ``$fopen``, ``$finish``, `` `include``; whatever synthesis
  obeys but simulation ignores (``(* attributes *)``, ``translate_off`` / ``full_case`` comments,
  tool-macro ``ifdef``s); and whatever the simulator, the prover and synthesis read as different
  circuits: undriven nets (z in iverilog, x in yosys, a free constant in synthesis), implicitly
  declared nets, conflicting drivers, simulation-only functions (``$time``, ``$isunknown``) and
  case equality (``===``, ``!==``);
* function — simulation next to the reference on the verifier's own testbench (resets at random
  points through the whole run): passed, score 1, only when every sample matches; otherwise 0,
  with the share of matching samples in the metrics (partial credit would pay a constant output
  on a sparse signal);
* formal — yosys proves equivalence with the reference (a SAT miter for combinational problems,
  bounded equivalence from reset over the task's documented depth for sequential ones, the
  design's ``initial`` values removed: flip-flops have no power-on value), for the design as
  written **and** for the netlist synthesis made of it (read back with the library's cell
  functions), so the circuit measured is the circuit proven. A design that matches every
  sampled vector but differs elsewhere fails here. Engines: ABC (``iprove``, ``pdr``) and yosys's
  SAT (see :func:`toolchain.prove_equivalence`); a proof no engine decides is decided by the
  documented rule (:data:`toolchain.DECISION_RULE`: a 16x extended simulation on fresh stimulus),
  recorded in a ``decided_by_simulation`` finding, never paid or withheld silently;
* ppa — area and delay of that proven netlist against the reference's, on the same library and
  flow; not applicable (score 0 under every aggregator) unless function and formal passed. The cost ratio
  ``rho = sqrt(((area + a0) / (ref_area + a0)) * ((delay + d0) / (ref_delay + d0)))`` (a0 = one
  inverter's area, d0 = 10 ps, so tiny designs do not divide by zero) gives the score
  ``min(1, target * (1 + tolerance) / rho)``: continuous, 1.0 at the reference with the default
  ``target=1``; ``target < 1`` asks for an improvement and rewards it continuously. A
  ``beats_reference`` finding marks ``rho < 1 - tolerance``. The reference is an envelope
  (:func:`tools.calibrate`): it and rewrites of it that change nothing in the circuit (a wrapper,
  outputs inverted twice, ports reordered) are all synthesized; ``rho`` for the score is taken
  against the worst of them, for ``beats_reference`` against the best, and the spread is in the
  metrics (``reference_spread``; a finding when it is not 0). Synthesis itself puts the
  flattened netlist in a canonical order first (:mod:`ppa`), so the spread is 0 on every
  built-in problem. A netlist with cells outside the library (a
  module instance that survived flattening, an unmapped internal cell) has no known area or delay
  and scores 0.

The toolchain runs once per (code, task, limits, toolchain version): every stage goes through the
sandbox's cache under the same keys as the agent's tool calls, so a submission the agent already
simulated only pays for the proofs (the verifier synthesizes again, with the netlist proof). The
stages run lazily, in the levels' order (:class:`Evaluation`): each level ``requires`` the one
before it (syntax format, function syntax, formal function, ppa function and formal), so a design
that fails a gate pays only for the stages up to it and the later levels are not applicable
(score 0 under every aggregator); the design is compiled once per verdict, and the two proofs run
in parallel. A result that hit a time or resource limit is never cached. Inside the proofs, what
reads only the circuit is kept under a hash of what it reads (synthesis after the canonical
netlist and the netlist's proof; the RTL proof's engines, under the design as yosys reads it:
see :func:`toolchain.synthesize_and_prove` and :func:`toolchain.prove_equivalence`), so another
source of a circuit already verified for the problem (the reference with other comments, say)
pays only for compiling, simulating and reading it.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hiergym.envs.core import missing_submission
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from . import ppa, toolchain, tools
from .toolchain import Limits
from .verilog import extract_code

AREA_FLOOR = ppa.AREA_FLOOR  # one INV_X1 of hiergym_generic.lib
DELAY_FLOOR_PS = ppa.DELAY_FLOOR_PS
PPA_TOLERANCE = 0.02


class Evaluation:
    """The toolchain stages of one submission, run lazily, in the levels' order, each at most
    once per verdict and each through the sandbox's cache under the same key as the agent's tool
    call (a transient result, a run that hit a time or resource limit, is reported but never
    cached). The levels ask for what they need: syntax the compilation, function the simulation
    (the compiled design's testbench run, without compiling it again), formal and ppa the proofs
    and the synthesized netlist (both run in parallel, a thread each waiting on its subprocess).
    A level whose gate failed is not applicable and never asks, so its stages never run."""

    def __init__(
        self,
        sandbox: Any,
        task: Any,
        code: str,
        limits: Limits,
        report: dict[str, Any] | None = None,
    ):
        """``report``: stages already run (a level checked on a hand-made context)."""
        self.sandbox, self.task, self.code, self.limits = sandbox, task, code, limits
        self.report: dict[str, Any] = dict(report or {})
        self._scope: str | None = None

    @property
    def scope(self) -> str:
        if self._scope is None:
            self._scope = toolchain.scope(self.task, self.limits)
        return self._scope

    @property
    def budget(self) -> Limits:
        return tools.task_limits(self.task, self.limits)  # the problem's calibrated budgets

    def _memo(self, name: str, compute: Any) -> dict[str, Any]:
        return tools.memo_unless_transient(
            self.sandbox, name, {"code": self.code}, compute, self.scope
        )

    def compile(self) -> dict[str, Any]:
        if "compile" not in self.report:
            self.report["compile"] = self._memo(
                "compile", lambda: toolchain.compile_design(self.task, self.code, self.limits)
            )
        return self.report["compile"]

    def simulate(self) -> dict[str, Any]:
        """The simulation of a design that compiled: what ``simulate_design`` returns for it
        (the same cache entry as the ``simulate`` tool), without its second compilation."""
        if "simulate" not in self.report:
            if not self.compile()["ok"]:
                raise SkipLevel("the design does not compile")
            self.report["simulate"] = self._memo(
                "simulate",
                lambda: toolchain.run_testbench(self.task, extract_code(self.code), self.budget),
            )
        return self.report["simulate"]

    def proofs(self) -> dict[str, Any]:
        """``{"formal": the RTL proof, "netlist": synthesis with the netlist proof}``."""
        if "formal" in self.report and "netlist" in self.report:
            return self.report
        if not self.compile()["ok"]:
            raise SkipLevel("the design does not compile")
        task, code, budget = self.task, self.code, self.budget
        stages = {  # report key -> (cache name, the stage that computes it)
            "formal": (
                "prove_equivalence",
                lambda: toolchain.prove_equivalence(
                    task, code, budget, tools.sandbox_memo(self.sandbox, self.scope)
                ),
            ),
            "netlist": ("synthesize_and_prove", self._netlist),
        }
        missing = {}
        found = {}
        for key, (name, compute) in stages.items():
            hit = self.sandbox.lookup(name, {"code": code}, self.scope)
            if hit is None:
                missing[key] = (name, compute)
            else:
                found[key] = hit
        if len(missing) == 1:
            ((key, (name, compute)),) = missing.items()
            found[key] = self._memo(name, compute)
        elif missing:
            with ThreadPoolExecutor(max_workers=len(missing)) as pool:
                jobs = {key: pool.submit(self._memo, n, c) for key, (n, c) in missing.items()}
                for key, job in jobs.items():
                    found[key] = job.result()
        self.report.update(found)
        return self.report

    def netlist(self) -> dict[str, Any]:
        """Synthesis with the netlist proof (what the PPA level measures)."""
        if "netlist" in self.report:
            return self.report["netlist"]
        return self.proofs()["netlist"]

    def _netlist(self) -> dict[str, Any]:
        sandbox, task, limits = self.sandbox, self.task, self.limits
        result = toolchain.synthesize_and_prove(
            task, self.code, self.budget, tools.sandbox_memo(sandbox, self.scope)
        )
        ref = tools.reference_ppa(sandbox, task, limits)
        if ref.get("ok"):
            result["reference"] = {k: ref[k] for k in ("cells", "area", "delay_ps", "depth")}
            # The bars PPA is scored against: the envelope of the reference's rewrites.
            envelope = tools.calibrate(sandbox, task, limits)
            if envelope.get("ok"):
                result["reference_envelope"] = {k: v for k, v in envelope.items() if k != "ok"}
            elif toolchain.is_transient(envelope):
                result["reference_unavailable"] = envelope.get("messages", "")
                result[toolchain.TRANSIENT] = True
        elif toolchain.is_transient(ref):
            result["reference_unavailable"] = ref.get("messages", "")
            result[toolchain.TRANSIENT] = True
        return result

    def everything(self) -> dict[str, Any]:
        """Every stage a passing design needs (``compile``, ``simulate``, ``formal``,
        ``netlist``); only ``compile`` when it does not compile."""
        if self.compile()["ok"]:
            self.simulate()
            self.proofs()
        return self.report


def evaluate(sandbox: Any, task: Any, code: str, limits: Limits) -> dict[str, Any]:
    """Every toolchain stage for one submission (see :class:`Evaluation`)."""
    return Evaluation(sandbox, task, code, limits).everything()


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
    """A level that reads the submission's toolchain stages (one :class:`Evaluation` per
    verdict, shared by the levels through the context's scratch)."""

    def __init__(self, sandbox: Any, limits: Limits):
        self.sandbox = sandbox
        self.limits = limits

    def runs(self, ctx: VerifyContext) -> Evaluation:
        if "code" not in ctx.scratch:
            raise SkipLevel("no well-formed submission to run")
        if "runs" not in ctx.scratch:
            ctx.scratch["runs"] = Evaluation(
                self.sandbox, ctx.task, ctx.scratch["code"], self.limits, ctx.scratch.get("report")
            )
        return ctx.scratch["runs"]


class SyntaxLevel(_ReportLevel):
    name = "syntax"
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        compiled = self.runs(ctx).compile()
        metrics = {"warnings": compiled.get("warnings", 0), "category": compiled["category"]}
        if compiled["ok"]:
            return self.result(1.0, metrics=metrics)
        code = compiled.get("code", compiled["category"])
        return self.result(0.0, [Finding(code, compiled["messages"])], metrics=metrics)


class FunctionLevel(_ReportLevel):
    name = "function"
    requires = ("syntax",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        sim = self.runs(ctx).simulate()
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
        # All or nothing: the share of matching samples is shown, never paid. A constant output
        # matches most samples of a sparse output (a sequence detector, a carry), and another
        # problem's design most samples of a sibling's, so any partial credit here pays designs
        # that do not do the job.
        passed = bool(sim.get("ok"))
        metrics = {k: sim[k] for k in ("samples", "matching") if k in sim}
        metrics["matching_share"] = float(sim.get("score", 0.0))
        return self.result(1.0 if passed else 0.0, findings, passed=passed, metrics=metrics)


class FormalLevel(_ReportLevel):
    """Both proofs: the design as written (RTL) and the netlist synthesis made of it are each
    equivalent to the reference. Passed when each is proven or, where no engine decided it,
    decided equal by :data:`toolchain.DECISION_RULE` (an extended simulation of that circuit:
    a ``decided_by_simulation`` / ``netlist_decided_by_simulation`` finding records it). A
    counterexample (from a proof or from the rule's simulation) fails with score 0, and so does
    a proof the rule could not decide either (``inconclusive``: never a pass)."""

    name = "formal"
    requires = ("function",)  # a design the simulation refutes cannot be proven equivalent

    def check(self, ctx: VerifyContext) -> LevelResult:
        report = self.runs(ctx).proofs()
        rtl = report["formal"]
        net = report["netlist"]["netlist_proof"]
        metrics = {
            "status": rtl["status"],
            "method": rtl["method"],
            "depth": rtl["depth"],
            "netlist_status": net["status"],
            "netlist_method": net["method"],
        }
        decided = {"proven", "simulated"}  # simulated: an open proof decided by the rule
        findings = []
        for kind, proof in (("", rtl), ("netlist_", net)):
            status = proof["status"]
            if status == "proven":
                continue
            message = proof.get("messages", "")
            if status == "simulated":
                findings.append(
                    Finding(
                        f"{kind}decided_by_simulation",
                        f"{message}. Rule: {proof.get('rule', toolchain.DECISION_RULE)}",
                    )
                )
                continue
            if status == "counterexample":
                rows = proof.get("counterexample", [])
                shown = ", ".join(_model_value(r) for r in rows[:24])
                message = f"{message}: {shown}" if shown else message
            if kind:
                message = (
                    "the synthesized netlist (the circuit whose area and delay are measured) is "
                    f"not proven equivalent to the reference: {message}"
                )
            findings.append(Finding(kind + status, message))
        if rtl["status"] in decided and net["status"] in decided:
            return self.result(1.0, findings, metrics=metrics)
        return self.result(0.0, findings, passed=False, metrics=metrics)


def _model_value(row: dict[str, Any]) -> str:
    step = "" if row["step"] is None else f"step {row['step']} "
    return f"{step}{row['signal']}=0x{row['hex']}"


class PPALevel(_ReportLevel):
    """Area and delay of the synthesized netlist that the formal level proved equivalent to the
    reference; not applicable unless function and formal passed (a wrong design, a constant,
    costs nothing and must earn nothing)."""

    name = "ppa"
    requires = ("function", "formal")

    def __init__(
        self, sandbox: Any, limits: Limits, target: float = 1.0, power: bool | None = None
    ):
        super().__init__(sandbox, limits)
        if not 0.0 < target <= 1.0:
            raise ValueError(f"ppa_target must be in (0, 1], got {target}")
        self.target = target
        self.power = power
        """Estimate power too: True, False, or None (RTLLM tasks only, where it is reported)."""

    def check(self, ctx: VerifyContext) -> LevelResult:
        syn = self.runs(ctx).netlist()
        if syn.get("reference_unavailable"):
            return self.result(
                0.0,
                [
                    Finding(
                        "reference_unavailable",
                        "the reference's synthesis hit a limit (not cached; a rerun retries it): "
                        + syn["reference_unavailable"],
                    )
                ],
                passed=False,
            )
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
                f"the reference of {ctx.task.task_id} does not synthesize; the task is broken. "
                "Built-in problems are checked as they are built; check an imported directory "
                "with `hiergym data import verilog-eval|rtllm DIR`, which refuses such problems"
            )
        area_ratio = (syn["area"] + AREA_FLOOR) / (ref["area"] + AREA_FLOOR)
        delay_ratio = (syn["delay_ps"] + DELAY_FLOOR_PS) / (ref["delay_ps"] + DELAY_FLOOR_PS)
        rho = math.sqrt(area_ratio * delay_ratio)
        # The reference stands for its envelope (tools.calibrate: the reference and rewrites of it
        # that change nothing in the circuit): reaching the worst of them is full credit, and
        # only a cost clearly below the best (by more than the PPA tolerance) beats it.
        envelope = syn.get("reference_envelope") or {"worst": ref, "best": ref, "spread": 0.0}
        mine = ppa.cost(syn["area"], syn["delay_ps"])
        bar, best = envelope["worst"], envelope["best"]
        rho_bar = mine / ppa.cost(bar["area"], bar["delay_ps"])
        rho_best = mine / ppa.cost(best["area"], best["delay_ps"])
        score = min(1.0, self.target * (1 + PPA_TOLERANCE) / rho_bar)
        beats = rho_best < 1.0 - PPA_TOLERANCE
        findings = []
        if envelope["spread"] > 0:
            findings.append(
                Finding(
                    "reference_spread",
                    f"equivalent rewrites of the reference synthesize {envelope['spread']:.1%} "
                    f"apart (area {best['area']}..{bar['area']}, delay {best['delay_ps']}.."
                    f"{bar['delay_ps']} ps): full credit at the worst, beating it below the best",
                )
            )
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
            "reference_spread": envelope["spread"],
            "cost_ratio_to_bar": round(rho_bar, 6),
            "cost_ratio_to_best": round(rho_best, 6),
        }
        # Power (envs/rtl/power.py: switching activity on the task's stimulus, liberty loads):
        # reported next to area and delay, never scored. beats_reference_ppa: the geometric
        # mean of the area, delay and power ratios is below 1 - tolerance.
        from . import power

        wanted = (
            self.power if self.power is not None else getattr(ctx.task, "source", "") == "rtllm"
        )
        watts = (
            power.compare(self.sandbox, ctx.task, ctx.scratch["code"], self.limits)
            if wanted
            else None
        )
        if watts:
            metrics.update(watts)
            ppa_rho = (area_ratio * delay_ratio * watts["power_ratio"]) ** (1 / 3)
            metrics["ppa_cost_ratio"] = round(ppa_rho, 6)
            metrics["beats_reference_ppa"] = ppa_rho < 1.0 - PPA_TOLERANCE
        return self.result(score, findings, passed=score >= 1.0 - 1e-12, metrics=metrics)


def build_verifier(
    sandbox: Any,
    limits: Limits,
    aggregate: Any = "gated",
    ppa_target: float = 1.0,
    power: bool | None = None,
    **params: Any,
) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [
            FormatLevel(),
            SyntaxLevel(sandbox, limits),
            FunctionLevel(sandbox, limits),
            FormalLevel(sandbox, limits),
            PPALevel(sandbox, limits, ppa_target, power),
        ],
        aggregate,
        **params,
    )


def subgoals() -> list[Any]:
    """RTL's subgoal boundaries: ``compiles`` (a ``compile`` call whose design iverilog accepts)
    and ``matches_reference`` (a ``simulate`` call whose design matches the reference on every
    sample of the verifier's stimulus). Calls inside the submitting action count for nothing;
    each is decided by one result of its tool (:meth:`~hiergym.envs.core.Subgoal.of_results`)."""
    from hiergym.envs.core import Subgoal

    def tool_ok(result: Any, task: Any) -> bool:
        return isinstance(result.data, dict) and result.data.get("ok") is True

    return [
        Subgoal.of_results("compiles", {"compile"}, tool_ok, 0.25, "a design that compiles"),
        Subgoal.of_results(
            "matches_reference", {"simulate"}, tool_ok, 0.75, "a design that simulates right"
        ),
    ]
