"""The Travel env: wiring only; the rules live in tools.py, tasks.py and verifier.py."""

from __future__ import annotations

from functools import partial
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import LiveBackend, Mode, Sandbox
from hiergym.envs.tools import Toolbox
from hiergym.rewards.levels import HierarchicalVerifier

from . import data, oracle, tasks, tools, verifier
from .process import turn_checks
from .recorder import Oracle


class TravelEnv(ToolEnv):
    """Trip planning over 38 real US cities: flights, trains, hotels, attractions, restaurants.

    ## Description
    The agent reads a TravelPlanner-style request (origin, a destination city or region, 3/5/7
    days, dates, people, budget, hard constraints, preferences), searches transport, hotels,
    attractions and restaurants, looks up travel times between places, and submits a timed
    itinerary: per day an ordered list of rides, transfers, meals and visits, plus a bed per night.

    ## Action Space
    Text: a JSON tool call ``{"name": ..., "arguments": {...}}``, ``<tool_call>`` blocks, or an
    OpenAI ``tool_calls`` message. Tools: search_flights, search_trains, search_hotels,
    search_attractions, search_restaurants, get_distance, submit.

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the request and the itinerary format after
    reset, compact JSON tool results after each step, ``error: ...`` observations for bad actions.

    ## Rewards
    0 on every step but the last; then the verdict of format -> feasibility -> grounding ->
    constraints -> quality folded by the aggregator (``gated`` by default). ``info["verdict"]``
    holds every level and its findings. ``process_reward=True`` adds per-turn penalties for failed
    or repeated calls and for asking about a city outside the trip.

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 60) actions. Both are verified.

    ## Arguments
    split ("train" | "dev" | "test"), difficulty ("easy" | "medium" | "hard"), max_turns, mode
    ("replay" | "record" | "live"), backend (a LiveBackend), aggregate (an aggregator name or
    function), aggregate_params, render_mode ("ansi" | "human").

    ## Version History
    * v0: initial release.
    """

    domain = "travel"
    default_max_turns = 60

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        # The top of the import chain hands the oracle's prover down to the task generator.
        add_tasks = partial(tasks.generate_tasks, prove=oracle.prove)
        path = data.database_path(add_tasks=add_tasks)
        return Sandbox.open("travel", path, mode=mode, backend=backend)

    def make_toolbox(self) -> Toolbox:
        return tools.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        return tasks.load_tasks(self.sandbox.db, str(self.sandbox.db_path), split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(self.sandbox.db, aggregate, **params)

    def render_prompt(self, task: Any) -> str:
        return tasks.render_prompt(task)

    def make_oracle(self) -> Any:
        return Oracle(self.sandbox, oracle.plan)

    def mutants(self) -> list[Any]:
        from .mutants import mutants

        return mutants()

    def turn_checks(self) -> list[Any]:
        return turn_checks()

    def subgoals(self) -> list[Any]:
        # Called at every reset, once the task is drawn: one subgoal per day of this trip.
        return verifier.subgoals(self.sandbox.db, self.task)

    def attacks(self) -> list[Any]:
        from .attacks import attacks

        return attacks()

    def twins(self) -> list[Any]:
        from .attacks import twins

        return twins()
