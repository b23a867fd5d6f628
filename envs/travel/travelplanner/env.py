"""The TravelPlanner env: wiring only; the rules live in tools.py, tasks.py and verifier.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import LiveBackend, Mode, Sandbox
from hiergym.envs.tools import Toolbox
from hiergym.rewards.levels import HierarchicalVerifier

from . import oracle, tasks, tools, verifier
from .database import open_database
from .importer import import_travelplanner


class TravelPlannerEnv(ToolEnv):
    """TravelPlanner (Xie et al., 2024) as an environment: its queries, database, tools, plan
    format and evaluation, over a sandbox imported from TravelPlanner's files.

    ## Description
    The agent reads a TravelPlanner query (origin, destination city or state, 3/5/7 days, dates,
    people, budget, local constraints on room type, house rules, cuisines and transportation),
    looks up accommodations, restaurants, attractions, cities, routes and (when imported) flights,
    and submits a plan in TravelPlanner's format: one entry per day with current_city,
    transportation, breakfast, attraction, lunch, dinner and accommodation as strings.

    ## Action Space
    Text: a JSON tool call ``{"name": ..., "arguments": {...}}``, ``<tool_call>`` blocks, or an
    OpenAI ``tool_calls`` message. Tools: search_flights, search_accommodations,
    search_restaurants, search_attractions, search_cities, get_distance, submit.

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the query and the plan format after reset,
    compact JSON tool results after each step, ``error: ...`` observations for bad actions.

    ## Rewards
    0 on every step but the last; then the verdict of format -> commonsense (TravelPlanner's 8
    checks) -> grounding (every item shown by a tool this episode, in its day's city, the trip
    where the query goes) -> hard (TravelPlanner's 5 checks), folded by the aggregator (``gated``
    by default). ``info["verdict"]`` holds every level; the commonsense and hard levels' metrics
    hold TravelPlanner's per-check results.

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 60) actions. Both are verified.

    ## Arguments
    data_dir (a folder in TravelPlanner's database layout; default ``$HIERGYM_TRAVELPLANNER_DIR``,
    else the folder last imported with ``hiergym data import travelplanner DIR`` (recorded under
    ``HIERGYM_HOME``), else, in a source checkout only, ``shared/data/travelplanner`` beside it;
    imported once into ``HIERGYM_HOME``),
    queries (a JSONL file of TravelPlanner query records; default the 48 queries shipped in
    sandbox_data/travel, each proven solvable on TravelPlanner's database without flights), split
    ("train" | "dev" | "test": a hash of (org, dest)), difficulty ("easy" | "medium" | "hard":
    the query's ``level``), max_turns, mode ("replay" | "record" | "live"), backend (a
    LiveBackend), aggregate (an aggregator name or function), aggregate_params, render_mode
    ("ansi" | "human").

    ## Version History
    * v0: initial release.
    """

    domain = "travelplanner"
    default_max_turns = 60

    def __init__(
        self,
        *args: Any,
        data_dir: str | Path | None = None,
        queries: str | Path | None = None,
        **kwargs: Any,
    ):
        self.data_dir = Path(data_dir).expanduser() if data_dir else tasks.default_data_dir()
        self.queries = Path(queries).expanduser() if queries else tasks.default_queries()
        # An import whose source folder has gone is still usable: its database was built.
        self.database = None if data_dir or self.data_dir else tasks.default_database()
        if self.database is None:
            tasks.check_data_dir(self.data_dir)
        super().__init__(*args, **kwargs)

    @classmethod
    def missing_data(cls) -> str | None:
        """Why ``gym.make`` with no data_dir cannot work here: "needs data: hiergym data import
        travelplanner DIR" until an import is recorded (or the data is otherwise configured)."""
        return tasks.missing_data()

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        path = self.database or import_travelplanner(self.data_dir)
        self.db = open_database(path)
        return Sandbox.open("travelplanner", path, mode=mode, backend=backend)

    def make_toolbox(self) -> Toolbox:
        return tools.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        return tasks.load_tasks(self.queries, self.db, split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(self.db, aggregate, **params)

    def render_prompt(self, task: Any) -> str:
        prompt = tasks.render_prompt(task)
        if not self.db.has_flights:
            prompt += "\nThis sandbox has no flight data: travel by self-driving or taxi."
        return prompt

    def make_oracle(self) -> Any:
        return oracle.TravelPlannerOracle(self.sandbox)

    def mutants(self) -> list[Any]:
        from .mutants import mutants

        return mutants()

    def attacks(self) -> list[Any]:
        from ..attacks import tp_attacks

        return tp_attacks()
