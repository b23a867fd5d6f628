"""The RTL env: wiring only; the rules live in toolchain.py, tools.py, tasks.py and verifier.py."""

from __future__ import annotations

from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import LiveBackend, Mode, Sandbox
from hiergym.envs.tools import Toolbox
from hiergym.rewards.levels import HierarchicalVerifier

from . import attacks, data, importer, oracle, tasks, toolchain, tools, verifier
from .toolchain import Limits


class RTLEnv(ToolEnv):
    """Verilog design from a plain-English spec, verified on real iverilog and yosys.

    ## Description
    The agent reads a spec and a module interface (68 built-in problems in 27 families:
    multiplexers, decoders, priority encoders, adders, comparators, ALUs, popcount, rotators, Gray
    code, counters, shift registers, LFSRs, edge and sequence detectors, a traffic light, a FIFO,
    a clock divider, a debouncer, a UART transmitter, ...), writes Verilog, and iterates with the
    compiler, a simulator that compares its design with a hidden reference, and a synthesis flow
    that reports area and delay, then submits. VerilogEval problem directories can replace the
    built-ins (``tasks="verilog-eval:DIR"``).

    ## Action Space
    Text: a JSON tool call ``{"name": ..., "arguments": {...}}``, ``<tool_call>`` blocks, or an
    OpenAI ``tool_calls`` message. Tools, each taking the complete source as ``code``: compile,
    simulate, synthesize, submit.

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the task prompt after reset, the JSON
    report of each tool after each step, error observations for bad actions.

    ## Rewards
    0 on every step but the last; then the verdict of format -> syntax -> function -> formal -> ppa
    (see :mod:`hiergym.envs.rtl.verifier`), folded by the aggregator (``gated`` by default).
    ``info["verdict"]`` holds every level, with mismatches, counterexamples and PPA metrics
    (``beats_reference``, ``improvement``) in findings and metrics.

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 16) actions. Both are verified.

    ## Arguments
    split ("train" | "dev" | "test"; problem families are disjoint between splits), difficulty
    ("easy" | "medium" | "hard"), tasks ("builtin", "verilog-eval:DIR" or "rtllm:DIR": every
    problem of the directory, whatever the split and difficulty; after ``hiergym data import
    verilog-eval|rtllm DIR``, which checks each reference and calibrates its proof and simulation
    budgets, without the problems it refused and with those budgets; built-in problems are checked
    and calibrated when the sandbox is built), limits (a :class:`~hiergym.envs.rtl.toolchain.Limits`
    or a dict of its fields: per-stage timeouts, memory, file size, processes), ppa_target (in
    (0, 1]: the cost ratio to the reference that earns the full PPA score; below 1 asks for an
    improvement), power (estimate the design's and the reference's power from switching activity
    in the PPA level's metrics: True, False, or None, the default, for RTLLM tasks only; it
    costs a gate-level simulation per verdict and never changes a score), max_turns, mode,
    backend, aggregate, aggregate_params, render_mode.

    Needs iverilog, vvp, yosys, yosys-abc and prlimit on PATH; ``gym.make`` says how to install
    them when they are missing.

    ## Version History
    * v0: initial release.
    """

    domain = "rtl"
    default_max_turns = 16

    def __init__(
        self,
        *args: Any,
        tasks: str = "builtin",
        limits: Limits | dict[str, Any] | None = None,
        ppa_target: float = 1.0,
        power: bool | None = None,
        **kwargs: Any,
    ):
        self.task_dir = importer.parse_source(tasks)
        self.limits = toolchain.limits_from(limits)
        self.ppa_target = ppa_target
        self.power = power
        super().__init__(*args, **kwargs)

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        toolchain.require_toolchain()
        toolchain.toolchain_version()  # part of every cache key: ask the tools once, now
        # Built-in problems are checked and calibrated as the sandbox is built (oracle.prove);
        # imported ones by `hiergym data import` (importer.py, rtllm.py).
        path = data.database_path(prove=oracle.prove if self.task_dir is None else None)
        return Sandbox.open("rtl", path, mode=mode, backend=backend)

    def make_toolbox(self) -> Toolbox:
        return tools.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        if self.task_dir is not None:
            return TaskSet(importer.load_directory(self.task_dir), split, difficulty)
        return tasks.load_tasks(self.sandbox.db, str(self.sandbox.db_path), split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(
            self.sandbox,
            self.limits,
            aggregate,
            ppa_target=self.ppa_target,
            power=self.power,
            **params,
        )

    def render_prompt(self, task: Any) -> str:
        return tasks.render_prompt(task)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        assert self.state is not None
        self.state.memory["limits"] = self.limits  # the tools run under the env's limits
        return obs, info

    def check_reference(self, task: Any) -> dict[str, Any]:
        """The import check of one problem under the env's limits (``hiergym data import``):
        see :func:`hiergym.envs.rtl.oracle.check_reference`."""
        return oracle.check_reference(task, self.limits)

    def make_oracle(self) -> Any:
        return oracle.RTLOracle()

    def subgoals(self) -> list[Any]:
        return verifier.subgoals()

    def mutants(self) -> list[Any]:
        return oracle.mutants()

    def attacks(self) -> list[Any]:
        return attacks.attacks()

    def twins(self) -> list[Any]:
        return attacks.twins()
