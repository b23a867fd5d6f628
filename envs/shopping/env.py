"""The Shopping env: wiring only; the rules live in tools.py, tasks.py and verifier.py."""

from __future__ import annotations

from functools import partial
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import LiveBackend, Mode, Sandbox
from hiergym.envs.tools import Toolbox
from hiergym.rewards.levels import HierarchicalVerifier

from . import data, oracle, ranking, tasks, tools, verifier


class ShoppingEnv(ToolEnv):
    """WebShop-style shopping over a generated catalog of 5,520 products in 24 categories.

    ## Description
    The agent reads an instruction ("a waterproof, hooded rain jacket, navy color, size M, under
    $80"), searches the catalog, opens product pages, picks options and submits one product variant
    with a recommendation message.

    ## Action Space
    Text: a JSON tool call ``{"name": ..., "arguments": {...}}``, ``<tool_call>`` blocks, or an
    OpenAI ``tool_calls`` message. Tools: search, view_product, select_options, add_to_cart,
    view_cart, submit.

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the prompt after reset, tool results after
    each step, error observations for bad actions.

    ## Rewards
    0 on every step but the last; then the verdict of format -> grounding -> product -> process ->
    response, folded by the aggregator (``gated`` by default). ``info["verdict"]`` holds every
    level. Grounding: the submitted product, its options and its variant's price must appear in
    results received before the submitting action (a memorised submit fails it). Product, process
    and response are not applicable (0) unless the levels they stand on passed. The response level
    reads the message's claims (negation, prices in any currency form, the whole catalog's
    vocabulary); any false statement scores it 0.

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 20) actions. Both are verified.

    ## Arguments
    split ("train" | "dev" | "test"), difficulty ("easy" | "medium" | "hard"), max_turns, mode
    ("replay" | "record" | "live"), backend (a LiveBackend), aggregate (an aggregator name or
    function), aggregate_params, judge (``judge(task, product, message) -> [0, 1]`` blended into the
    response level), render_mode ("ansi" | "human").

    ## Version History
    * v0: initial release. Issue 9 (reward integrity) added the grounding level, the
      not-applicable rule for answer-only levels and the claim-reading response rubric without
      renaming the id; rewards of v0 runs before and after that change are not comparable.
    """

    domain = "shopping"
    default_max_turns = 20

    def __init__(self, *args: Any, judge: Any = None, **kwargs: Any):
        self.judge = judge
        super().__init__(*args, **kwargs)

    def make_sandbox(self, mode: Mode, backend: LiveBackend | None) -> Sandbox:
        # The top of the import chain hands the oracle's prover down to the task generator.
        add_tasks = partial(tasks.generate_tasks, prove=oracle.prove)
        path = data.database_path(add_tasks=add_tasks)
        return Sandbox.open("shopping", path, mode=mode, backend=backend)

    def make_toolbox(self) -> Toolbox:
        return tools.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        return tasks.load_tasks(self.sandbox.db, str(self.sandbox.db_path), split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        return verifier.build_verifier(self.sandbox.db, aggregate, judge=self.judge, **params)

    def render_prompt(self, task: Any) -> str:
        return tasks.render_prompt(task)

    def make_oracle(self) -> Any:
        return oracle.ShoppingOracle(self.sandbox)

    def subgoals(self) -> list[Any]:
        # built once per env: the checks hold no episode state (what an episode reached is the
        # env's), and their product records can be shared across episodes (a read-only catalog)
        if getattr(self, "_shopping_subgoals", None) is None:
            self._shopping_subgoals = verifier.subgoals(self.sandbox.db)
        return list(self._shopping_subgoals)

    def mutants(self) -> list[Any]:
        return oracle.mutants()

    def attacks(self) -> list[Any]:
        from . import attacks

        return list(attacks.ATTACKS)

    def twins(self) -> list[Any]:
        from . import attacks

        return list(attacks.TWINS)


class ShoppingListEnv(ShoppingEnv):
    """Shopping's ranked-list family: recommend the k best products for an instruction, best first.

    ## Description
    The same catalog, tools and instructions as ``hiergym/Shopping-v0``; the agent submits a ranked
    list of up to k = 3 product variants instead of one, scored at two grains (issue 15's
    mixed-grained rewards, :mod:`hiergym.envs.shopping.ranking`): each item's correctness
    (WebShop's product reward against the best k the catalog holds) and the list as a whole
    (coverage of the asked requirements x diversity x NDCG of the order).

    ## Action Space
    Text: a JSON tool call, ``<tool_call>`` blocks, or an OpenAI ``tool_calls`` message. Tools:
    search, view_product, select_options, add_to_cart, view_cart, submit (``ranking``: a list of
    ``{"product_id", "options"}``, best first).

    ## Observation Space
    Text (printable ASCII, up to 100,000 characters): the prompt after reset, tool results after
    each step, error observations for bad actions.

    ## Rewards
    0 on every step but the last; then the verdict of format -> grounding -> items -> list folded
    by the aggregator (``gated`` by default): items and list are not applicable (0) unless every
    entry is a catalog product grounded in results received before the submit. A list longer than
    k fails format. ``info["verdict"]`` holds the relevances, coverage, diversity and order.

    ## Episode End
    Terminated when ``submit`` is called with valid arguments; truncated after ``max_turns``
    (default 20) actions. Both are verified.

    ## Arguments
    split ("train" | "dev" | "test"), difficulty ("easy" | "medium" | "hard"), max_turns, mode
    ("replay" | "record" | "live"), backend (a LiveBackend), aggregate (an aggregator name or
    function), aggregate_params, render_mode ("ansi" | "human").

    ## Version History
    * v0: initial release (issue 15).
    """

    def make_toolbox(self) -> Toolbox:
        return ranking.TOOLBOX

    def make_tasks(self, split: str, difficulty: str) -> TaskSet:
        return ranking.load_tasks(self.sandbox.db, str(self.sandbox.db_path), split, difficulty)

    def make_verifier(self, aggregate: Any, **params: Any) -> HierarchicalVerifier:
        if self.judge is not None:
            raise ValueError(
                "hiergym/ShoppingList-v0 submits no message for a judge to read; drop judge= "
                "(it blends into hiergym/Shopping-v0's response level)"
            )
        return ranking.build_verifier(self.sandbox.db, aggregate, **params)

    def render_prompt(self, task: Any) -> str:
        return ranking.render_prompt(task)

    def make_oracle(self) -> Any:
        return oracle.RankingOracle(self.sandbox)

    def mutants(self) -> list[Any]:
        return oracle.ranking_mutants()

    def attacks(self) -> list[Any]:
        from . import attacks

        return list(attacks.RANKING_ATTACKS)

    def twins(self) -> list[Any]:
        from . import attacks

        return list(attacks.RANKING_TWINS)
