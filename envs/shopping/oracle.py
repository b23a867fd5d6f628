"""Shopping oracle: a search-then-verify solver whose every action is a tool call.

It searches with the task's words inside its category and budget, walks the result pages, and takes
the first product whose variant the verifier's own ``product_match`` scores 1.0; then it opens the
page, selects the options, adds to cart and submits a truthful recommendation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hiergym.envs.tools import ToolCall

from .ranking import RankedTask
from .tasks import ShoppingTask
from .tools import load_product, search
from .verifier import product_match

MAX_PAGES = 5


def choose_options(task: ShoppingTask, doc: dict[str, Any]) -> dict[str, str] | None:
    """The cheapest in-stock, in-budget variant with the goal options, if the product has one."""
    goal = task.goal_options
    fits = [
        v
        for v in doc["variants"]
        if v["stock"] > 0
        and v["price"] <= task.budget
        and all(v["options"].get(k) == val for k, val in goal.items())
    ]
    return (
        min(fits, key=lambda v: (v["price"], sorted(v["options"].items())))["options"]
        if fits
        else None
    )


def recommendation(task: ShoppingTask, doc: dict[str, Any], options: dict[str, str]) -> str:
    price = next(v["price"] for v in doc["variants"] if v["options"] == options)
    attrs = [a for a in task.attributes if a in doc["attributes"]]
    chosen = ", ".join(f"{k} {v}" for k, v in options.items())
    return (
        f"I recommend the {doc['title']} (product {doc['product_id']}). It is {', '.join(attrs)}; "
        f"I chose {chosen}. It costs ${price:.2f}, within your budget of ${task.budget:.2f}."
    )


def plan(state: Any, task: ShoppingTask) -> list[ToolCall] | None:
    """The oracle's calls for ``task``, or ``None`` if it finds no product that scores 1.0."""
    calls: list[ToolCall] = []
    query = " ".join([*task.attributes, task.product_type])
    for page in range(1, MAX_PAGES + 1):
        args = {"query": query, "category": task.category, "max_price": task.budget, "page": page}
        calls.append(ToolCall("search", args))
        found = search.fn(state, **args)
        for hit in found["results"]:
            doc = load_product(state.db, hit["product_id"])
            options = choose_options(task, doc) if doc else None
            if options is None or product_match(task, doc, options)[0] < 1.0:
                continue
            pid = doc["product_id"]
            return calls + [
                ToolCall("view_product", {"product_id": pid}),
                ToolCall("select_options", {"product_id": pid, "options": options}),
                ToolCall("add_to_cart", {"product_id": pid, "options": options, "quantity": 1}),
                ToolCall(
                    "submit",
                    {
                        "product_id": pid,
                        "options": options,
                        "message": recommendation(task, doc, options),
                    },
                ),
            ]
        if not found["more_pages"]:
            return None
    return None


def prove(state: Any, task: ShoppingTask) -> ShoppingTask | None:
    """The build-time prover (env.py hands it to ``tasks.generate_tasks``): ``task`` with its
    ``oracle_calls`` if the oracle reaches a product the verifier scores 1.0, else None."""
    calls = plan(state, task)
    return None if calls is None else replace(task, oracle_calls=len(calls))


class ShoppingOracle:
    def __init__(self, sandbox: Any):
        self.sandbox = sandbox

    def plan(self, task: ShoppingTask) -> list[ToolCall]:
        calls = plan(self.sandbox, task)
        if calls is None:
            raise RuntimeError(
                f"the oracle cannot solve {task.task_id}; every served task must be solvable"
            )
        return calls


def plan_ranking(task: RankedTask) -> list[ToolCall]:
    """The ranked-list oracle: a search in the asked category and budget, then each of the
    catalog's ``k`` best products (``task.ideal``, by the verifier's own relevance) opened and its
    best variant selected, submitted best first."""
    base = task.base
    query = " ".join([*base.attributes, base.product_type])
    calls = [
        ToolCall(
            "search",
            {"query": query, "category": base.category, "max_price": base.budget, "page": 1},
        )
    ]
    ranking = []
    for pid, options, _ in task.ideal:
        chosen = dict(options)
        calls.append(ToolCall("view_product", {"product_id": pid}))
        calls.append(ToolCall("select_options", {"product_id": pid, "options": chosen}))
        ranking.append({"product_id": pid, "options": chosen})
    return [*calls, ToolCall("submit", {"ranking": ranking})]


class RankingOracle:
    def __init__(self, sandbox: Any):
        self.sandbox = sandbox

    def plan(self, task: RankedTask) -> list[ToolCall]:
        return plan_ranking(task)


def researched_entry(db: Any, pid: str) -> tuple[list[ToolCall], dict[str, Any]]:
    """A product looked up honestly (page opened, its first in-stock variant selected) and its
    ranking entry: a wrong or extra item the agent did ground."""
    doc = load_product(db, pid)
    variant = next((v for v in doc["variants"] if v["stock"] > 0), doc["variants"][0])
    options = dict(variant["options"])
    calls = [
        ToolCall("view_product", {"product_id": pid}),
        ToolCall("select_options", {"product_id": pid, "options": options}),
    ]
    return calls, {"product_id": pid, "options": options}


def outside_products(db: Any, task: RankedTask, n: int) -> list[str]:
    """``n`` products of other categories than the ask (unrelated items), by id."""
    rows = db.execute(
        "SELECT id FROM products WHERE category_path != ? ORDER BY id LIMIT ?",
        (task.base.category, n),
    ).fetchall()
    return [r[0] for r in rows]


def ranking_mutants() -> list[Any]:
    """Mutated ranked-list solutions, each with the level it must fail at."""
    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    def ranking_of(calls: list[ToolCall]) -> list[dict[str, Any]]:
        return list(calls[-1].arguments["ranking"])

    def submit(calls: list[ToolCall], ranking: list[Any], extra: list[ToolCall] = ()) -> list:
        return [*calls[:-1], *extra, ToolCall("submit", {"ranking": ranking})]

    def memorised(task: Any, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
        return task, calls[-1:]

    def duplicated(task: Any, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
        top = ranking_of(calls)[0]
        return task, submit(calls, [top] * task.k)

    def unrelated_tail(task: Any, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
        extra, entries = [], []
        for pid in outside_products(db, task, task.k - 1):
            c, e = researched_entry(db, pid)
            extra += c
            entries.append(e)
        return task, submit(calls, [ranking_of(calls)[0], *entries], extra)

    def too_long(task: Any, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
        c, e = researched_entry(db, outside_products(db, task, 1)[0])
        return task, submit(calls, [*ranking_of(calls), e], c)

    def hallucinated(task: Any, calls: list[ToolCall], db: Any) -> tuple[Any, list[Any]]:
        ranking = ranking_of(calls)
        return task, submit(calls, [*ranking[:-1], {**ranking[-1], "product_id": "B0NOSUCH00"}])

    return [
        Mutant("memorised_submit", "grounding", memorised),
        Mutant("duplicated_top_item", "items", duplicated),
        Mutant("unrelated_tail", "items", unrelated_tail),
        Mutant("one_entry_too_many", "format", too_long),
        Mutant("hallucinated_product_id", "format", hallucinated),
        NO_SUBMIT,
        MALFORMED_JSON,
    ]


def mutants() -> list[Any]:
    """Mutated oracle solutions, each with the verifier level it must fail at."""
    from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant

    def with_submit(calls: list[ToolCall], **changes: Any) -> list[Any]:
        sub = calls[-1]
        return [*calls[:-1], ToolCall("submit", {**sub.arguments, **changes})]

    def researched(
        task: ShoppingTask, calls: list[ToolCall], doc: dict[str, Any], options: dict[str, str]
    ) -> list[Any]:
        """The oracle's search, then ``doc`` opened, ``options`` selected and submitted with a
        truthful message: a wrong answer the agent did look up (so it is grounded)."""
        pid = doc["product_id"]
        return [
            *[c for c in calls if c.name == "search"],
            ToolCall("view_product", {"product_id": pid}),
            ToolCall("select_options", {"product_id": pid, "options": options}),
            ToolCall(
                "submit",
                {
                    "product_id": pid,
                    "options": options,
                    "message": recommendation(task, doc, options),
                },
            ),
        ]

    def wrong_option(
        task: ShoppingTask, calls: list[ToolCall], db: Any
    ) -> tuple[ShoppingTask, list[Any]]:
        sub = calls[-1].arguments
        doc = load_product(db, sub["product_id"])
        name, value = task.options[0]
        other = next(v for v in doc["options"][name] if v != value)
        return task, researched(task, calls, doc, {**sub["options"], name: other})

    def sibling(
        task: ShoppingTask, calls: list[ToolCall], db: Any
    ) -> tuple[ShoppingTask, list[Any]]:
        doc = load_product(db, task.sibling_id)
        options = choose_options(task, doc) or doc["variants"][0]["options"]
        return task, researched(task, calls, doc, dict(options))

    def over_budget(
        task: ShoppingTask, calls: list[ToolCall], db: Any
    ) -> tuple[ShoppingTask, list[Any]]:
        sub = calls[-1].arguments
        doc = load_product(db, sub["product_id"])
        price = next(v["price"] for v in doc["variants"] if v["options"] == sub["options"])
        return replace(task, budget=round(price - 0.01, 2)), calls

    def hallucinated(
        task: ShoppingTask, calls: list[ToolCall], db: Any
    ) -> tuple[ShoppingTask, list[Any]]:
        return task, with_submit(calls, product_id="B0NOSUCH00")

    def memorised(
        task: ShoppingTask, calls: list[ToolCall], db: Any
    ) -> tuple[ShoppingTask, list[Any]]:
        return task, calls[-1:]

    return [
        Mutant("memorised_submit", "grounding", memorised),
        Mutant("wrong_option", "product", wrong_option),
        Mutant("sibling_product", "product", sibling),
        Mutant("one_cent_over_budget", "product", over_budget),
        NO_SUBMIT,
        MALFORMED_JSON,
        Mutant("hallucinated_product_id", "format", hallucinated),
    ]
