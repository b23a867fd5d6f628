"""The Geometry env: wiring only; the rules live in tools.py, tasks.py and verifier.py."""

from __future__ import annotations

from functools import partial
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import LiveBackend, Mode, Sandbox
from hiergym.envs.tools import Toolbox
from hiergym.rewards.levels import HierarchicalVerifier

from . import data, oracle, tasks, tools, verifier
from .pyrunner import PythonRunner, warm_zygote


class GeometryEnv(ToolEnv):
    """Tool-integrated geometric reasoning over generated tabletop and room scenes.

    ## Description
    Each task names a scene (5-20 oriented boxes, a robot base frame, 1-3 pinhole cameras, a part
    held by the robot) and asks for a point in some frame, a distance or angle, a part's pose from
    correspondences (Kabsch / PnP), a yes/no fit, or an area or volume. The agent measures through
    the tools (detect, depth_at, pixel_to_point, transform, ...) and computes with a sandboxed
    ``python`` tool, then submits a value with its unit.

    ## Action Space
    Text: a JSON tool call ``{"name": ..., "arguments": {...}}``, ``<tool_call>`` blocks, or an
    OpenAI ``tool_calls`` message. Tools: list_objects, get_camera, detect, depth_at,
    pixel_to_point, transform, get_correspondences, python, submit.

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the prompt after reset, tool results after
    each step, ``error: ...`` observations for bad actions and failing code.

    ## Rewards
    0 on every step but the last; then the verdict of format -> grounding -> precision ->
    tool_use, folded by the aggregator (``gated`` by default). ``info["verdict"]`` holds every
    level. Only results received before the submitting action ground an answer, and only an
    answer that agrees with them; precision compares only answers built on all their
    measurements; tool_use scores only a right, grounded answer (otherwise not applicable, 0,
    under every aggregator). The hack matrix adds Geometry's own attacks and twins
    (``attacks.py``).

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 40) actions. Both are verified.

    ## Arguments
    split ("train" | "dev" | "test", disjoint by scene), difficulty ("easy" | "medium" | "hard"),
    max_turns, mode ("replay" | "record" | "live"), backend (a LiveBackend), aggregate (an aggregator
    name or function), aggregate_params, python_timeout_s (per call, default 5),
    python_memory_mb (default 512), render_mode ("ansi" | "human").

    ## Version History
    * v0: initial release. Reward integrity (issue 9), same id: grounding ignores results of the
      submitting action, must agree with the answer, and a yes/no needs all its evidence;
      tool_use is needs met / (needs + wasted calls); levels reordered format -> grounding ->
      precision -> tool_use with ``requires``; a miss earns at most 0.3 x MRA; every python call
      runs in a fresh process with a per-call disk quota.
    """

    domain = "geometry"
    default_max_turns = 40

    @classmethod
    def warm_parent(cls) -> None:
        """Called in a process about to fork workers that make these envs (bench's
        ``start_workers_early``): start the python tool's zygote here, so the workers share it
        (one import of numpy and scipy for all, done while the caller goes on)."""
        warm_zygote()

    def __init__(
        self,
        *args: Any,
        python_timeout_s: float = 5.0,
        python_memory_mb: int = 512,
        **kwargs: Any,
    ):
        self.python = PythonRunner(timeout_s=python_timeout_s, memory_mb=python_memory_mb)
        super().__init__(*args, **kwargs)

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        # The top of the import chain hands the oracle's prover down to the task generator.
        add_tasks = partial(tasks.generate_tasks, prove=oracle.prove)
        path = data.database_path(add_tasks=add_tasks)
        return Sandbox.open("geometry", path, mode=mode, backend=backend)

    def make_toolbox(self) -> Toolbox:
        return tools.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        return tasks.load_tasks(self.sandbox.db, str(self.sandbox.db_path), split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(aggregate, **params)

    def render_prompt(self, task: Any) -> str:
        return tasks.render_prompt(task)

    def make_oracle(self) -> Any:
        return oracle.GeometryOracle(self.sandbox)

    def mutants(self) -> list[Any]:
        return oracle.mutants()

    def attacks(self) -> list[Any]:
        from .attacks import ATTACKS

        return list(ATTACKS)

    def twins(self) -> list[Any]:
        from .attacks import TWINS

        return list(TWINS)

    def subgoals(self) -> list[Any]:
        # Called at every reset, once the task is drawn: one subgoal per measurement it needs.
        return verifier.subgoals(self.task)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        # A worker that ran agent code is replaced, so no episode sees another's leftovers.
        self.python.recycle()
        obs, info = super().reset(seed=seed, options=options)
        assert self.state is not None
        self.state.memory["python"] = self.python
        return obs, info

    def fork(self) -> GeometryEnv:
        clone = super().fork()
        # The episode memory was deep-copied, which gave the clone a fresh, unstarted worker.
        clone.python = clone.state.memory["python"] if clone.state is not None else PythonRunner()
        return clone  # type: ignore[return-value]

    def close(self) -> None:
        self.python.close()
        super().close()
