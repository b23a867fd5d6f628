"""Shopping's ranked-list family (issue 15, mixed-grained rewards; ``hiergym/ShoppingList-v0``).

The agent recommends a *ranked list* of up to ``k`` (3) product variants for one of Shopping's
instructions, best first. It is scored at two grains over the same per-item relevance, WebShop's
formula of the single-product family (:func:`~.verifier.product_match`) for a product of the asked
category (a product of another category is no recommendation for the ask: relevance 0), each
product counted once (a repeat of an earlier product, under any spelling of its id, is worth 0):

* **item level** — each item's correctness: ``items = sum_i rel_i / sum_j ideal_j``, where
  ``ideal`` are the ``k`` highest relevances the catalog holds for the ask (each product at its
  best variant). 1.0 only for a list of ``k`` distinct products as good as the best the catalog
  has; a list of duplicates or one padded with unrelated products earns its distinct right items
  only.
* **list level** — the list as a whole: ``list = coverage * diversity * precision * order`` with

  - ``coverage``: the share of the asked requirements (each attribute, each option value, the
    budget) that at least one listed product of the asked type meets (an option counts for an
    in-stock variant, the budget for a variant at or under it);
  - ``diversity``: distinct products / entries;
  - ``precision``: the share of the distinct products that are of the asked category (padding
    with unrelated products dilutes the list);
  - ``order``: NDCG@k of the list's relevances against the ideal, ``DCG = sum_i rel_i /
    log2(i + 1)`` (i = 1 for the first item), ``NDCG = DCG(list) / DCG(ideal)``: better matches
    first.

The verifier is format -> grounding -> items -> list; items and list require format and grounding
(not applicable, 0, for a malformed or ungrounded list), so the default ``gated`` reward is
``(format + grounding + items + list * [items passed]) / 4`` (see :mod:`hiergym.rewards.aggregate`
for the others). The combination rule, worked by hand in tests/envs/test_shopping_ranking.py:
for ideal relevances (1, 0.75, 0.5) and the list (0.75-item, 1-item), items = 1.75 / 2.25 = 0.778,
order = (0.75 + 1 / log2 3) / (1 + 0.75 / log2 3 + 0.5 / 2) = 0.801, coverage = diversity =
precision = 1, so list = 0.801 and the gated reward (1 + 1 + 0.778) / 4 = 0.694 (items failed, so
the list level does not count); under ``weighted`` (1 + 1 + 0.778 + 0.801) / 4 = 0.895.

* format — one submission of 1 to ``k`` entries, each naming a catalog product; an empty list or
  a longer one is not an answer to "the best k" (score 0);
* grounding — every entry grounded by the single-product rule (:func:`~.verifier.ground_variant`:
  listed or opened, its option values and its price shown before the submitting action); score:
  the share of the entries' items grounded; passes only when all are.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import ConfigDict, Field
from typing_extensions import TypedDict

from hiergym.envs.core import TaskSet, missing_submission
from hiergym.envs.evidence import Evidence
from hiergym.envs.tools import Toolbox, tool
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from . import tasks, tools
from .tasks import ShoppingTask
from .tools import load_product
from .verifier import (
    PRICE_TOLERANCE,
    _told,
    ground_variant,
    match_terms,
    product_match,
    product_part,
    variant_part,
)

K = 3
"""Items asked for: "the 3 best products"."""
MAX_ENTRIES = 10
"""The submit schema's cap (a list longer than the task's ``k`` parses, and fails format)."""


@dataclass(frozen=True)
class RankedTask:
    """A ranked-list task over one of Shopping's tasks (``base``): the same instruction, asking for
    the ``k`` best products. ``ideal`` holds the catalog's ``k`` best ``(product_id, options,
    relevance)`` (each product at its best variant), the reference of the item and order scores."""

    task_id: str
    split: str
    difficulty: str
    base: ShoppingTask
    k: int
    ideal: tuple[tuple[str, tuple[tuple[str, str], ...], float], ...]

    @property
    def ideal_relevances(self) -> list[float]:
        return [r for _, _, r in self.ideal]


def relevance(task: ShoppingTask, doc: dict[str, Any], options: dict[str, str]) -> float:
    """One listed item's relevance: WebShop's product reward, 0 outside the asked category."""
    if doc["category"] != task.category:
        return 0.0
    return product_match(task, doc, options)[0]


def best_variant(task: ShoppingTask, doc: dict[str, Any]) -> tuple[float, dict[str, str]]:
    """A product's best variant for ``task``: highest relevance, then cheapest, then by options.

    Each variant's relevance is :func:`relevance` of its options, computed from its parts
    (:func:`~.verifier.product_part` once per product, :func:`~.verifier.variant_part` per
    variant) without the findings; ``tests/envs/shopping/test_ranking.py`` checks it against
    :func:`relevance` on every product of several tasks."""
    in_category = doc["category"] == task.category
    r_type, base = product_part(task, doc) if in_category else (0.0, 0)
    terms = match_terms(task)
    seen: list[dict[str, Any]] = []  # product_match scores options by their first variant
    best: tuple[float, float] | None = None
    best_v: dict[str, Any] = {}
    for v in doc["variants"]:
        options = v["options"]
        if in_category:
            chosen = next((u for u in seen if u["options"] == options), v)
            seen.append(v)
            rel = r_type * (base + variant_part(task, chosen, options)) / terms
        else:
            rel = 0.0
        key = (-rel, v["price"])
        if (
            best is None
            or key < best
            or (key == best and sorted(options.items()) < sorted(best_v["options"].items()))
        ):
            best, best_v = key, v
    assert best is not None, f"{doc['product_id']} has no variant"
    return -best[0], dict(best_v["options"])


def _category_docs(db: Any, category: str) -> list[dict[str, Any]]:
    rows = db.execute(
        "SELECT doc FROM products WHERE category_path = ? ORDER BY id", (category,)
    ).fetchall()
    return [json.loads(text) for (text,) in rows]


def ideal_list(
    task: ShoppingTask, docs: list[dict[str, Any]], k: int = K
) -> tuple[tuple[str, Any, float], ...]:
    """The ``k`` best of ``docs`` (the asked category's products) for ``task`` (relevance, then
    product id)."""
    scored = []
    for doc in docs:
        rel, options = best_variant(task, doc)
        scored.append((-rel, doc["product_id"], tuple(sorted(options.items())), rel))
    scored.sort()
    return tuple((pid, options, rel) for _, pid, options, rel in scored[:k])


_TASK_SETS: dict[tuple[str, str, str], TaskSet] = {}


def load_tasks(db: Any, db_key: str, split: str, difficulty: str) -> TaskSet:
    """The ranked-list tasks of one split and difficulty: one per Shopping task, read once."""
    key = (db_key, split, difficulty)
    if key not in _TASK_SETS:
        base = tasks.load_tasks(db, db_key, split, difficulty)
        docs: dict[str, list[dict[str, Any]]] = {}  # each category read once for all its tasks
        for t in base:
            if t.category not in docs:
                docs[t.category] = _category_docs(db, t.category)
        _TASK_SETS[key] = TaskSet(
            [
                RankedTask(
                    task_id=t.task_id.replace("shopping-", "shopping-list-", 1),
                    split=t.split,
                    difficulty=t.difficulty,
                    base=t,
                    k=K,
                    ideal=ideal_list(t, docs[t.category], K),
                )
                for t in base
            ],
            split,
            difficulty,
        )
    return _TASK_SETS[key]


def render_prompt(task: RankedTask) -> str:
    return (
        f"Instruction: {task.base.instruction}\n"
        f"Recommend the {task.k} best products for this request, best match first, using the "
        "tools: each should meet every requirement (attributes, options, budget) if the catalog "
        "has enough such products, else come as close as it can; list each product once. Call "
        'submit with ranking: [{"product_id": ..., "options": {...}}, ...] (at most '
        f"{task.k} entries), choosing a value for every option of each product."
    )


# ---- the submit tool ---------------------------------------------------------------------------


class RankedItemJSON(TypedDict):
    product_id: str
    options: dict[str, str]


RankedItemJSON.__pydantic_config__ = ConfigDict(extra="allow")  # type: ignore[attr-defined]


@tool(terminal=True, cache="none")
def submit(
    state: Any,
    ranking: Annotated[list[RankedItemJSON], Field(min_length=1, max_length=MAX_ENTRIES)],
) -> str:
    """Finish: recommend a ranked list of product variants, best first. Ends the episode.

    Args:
        ranking: [{"product_id": "B0...", "options": {"size": "M", ...}}, ...], best first.
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox(
    [
        tools.search,
        tools.view_product,
        tools.select_options,
        tools.add_to_cart,
        tools.view_cart,
        submit,
    ]
)


# ---- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ListScores:
    """The per-item relevances and the two grains' scores of one list (see the module docstring)."""

    relevances: tuple[float, ...]
    items: float
    coverage: float
    diversity: float
    precision: float
    order: float
    uncovered: tuple[str, ...]

    @property
    def list(self) -> float:
        return self.coverage * self.diversity * self.precision * self.order


def dcg(relevances: Any) -> float:
    """Discounted cumulative gain: ``sum_i rel_i / log2(i + 1)``, i = 1 for the first item."""
    return sum(r / math.log2(i + 2) for i, r in enumerate(relevances))


def score_list(
    task: ShoppingTask, ideal: list[float], entries: list[tuple[dict[str, Any], dict[str, str]]]
) -> ListScores:
    """Both grains of a list of ``(product doc, options)`` entries, in the submitted order."""
    seen: set[str] = set()
    rels: list[float] = []
    for doc, options in entries:
        pid = doc["product_id"]
        rels.append(0.0 if pid in seen else relevance(task, doc, options))
        seen.add(pid)
    best = sum(ideal)
    items = min(1.0, sum(rels) / best) if best > 0 else 0.0
    order = min(1.0, dcg(rels) / dcg(ideal)) if best > 0 else 0.0
    asked = [f"attribute {a!r}" for a in task.attributes]
    asked += [f"{name} {value!r}" for name, value in task.options]
    asked.append(f"a price within ${task.budget:.2f}")
    met: set[str] = set()
    for doc, options in entries:
        if doc["category"] != task.category or doc["product_type"] != task.product_type:
            continue
        met.update(f"attribute {a!r}" for a in task.attributes if a in doc["attributes"])
        variant = next((v for v in doc["variants"] if v["options"] == options), None)
        if variant is None:
            continue
        if variant["stock"] > 0:
            met.update(
                f"{name} {value!r}" for name, value in task.options if options.get(name) == value
            )
        if variant["price"] <= task.budget + PRICE_TOLERANCE:
            met.add(f"a price within ${task.budget:.2f}")
    uncovered = tuple(r for r in asked if r not in met)
    on_topic = {doc["product_id"] for doc, _ in entries if doc["category"] == task.category}
    return ListScores(
        relevances=tuple(rels),
        items=items,
        coverage=1.0 - len(uncovered) / len(asked),
        diversity=len(seen) / len(entries) if entries else 0.0,
        precision=len(on_topic) / len(seen) if seen else 0.0,
        order=order,
        uncovered=uncovered,
    )


# ---- levels ------------------------------------------------------------------------------------


def _entries(ctx: VerifyContext) -> list[tuple[dict[str, Any], dict[str, str]]]:
    if "entries" not in ctx.scratch:
        raise SkipLevel("no valid ranked list to judge")
    return ctx.scratch["entries"]


def _scores(ctx: VerifyContext) -> ListScores:
    hit = ctx.scratch.get("list_scores")
    if hit is None:
        task: RankedTask = ctx.task
        hit = ctx.scratch["list_scores"] = score_list(
            task.base, task.ideal_relevances, _entries(ctx)
        )
    return hit


class FormatLevel(Level):
    name = "format"

    def __init__(self, db: Any):
        self.db = db

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj, task = ctx.trajectory, ctx.task
        sub = traj.submission
        if sub is None:
            return self.result(0.0, [missing_submission(traj)])
        ranking = sub.arguments["ranking"]
        if not ranking:
            return self.result(0.0, [Finding("empty_list", "the ranking lists no product")])
        if len(ranking) > task.k:
            return self.result(
                0.0,
                [
                    Finding(
                        "too_many_items",
                        f"{len(ranking)} entries; the task asks for the {task.k} best",
                    )
                ],
            )
        entries, findings = [], []
        for i, item in enumerate(ranking):
            doc = load_product(self.db, str(item["product_id"]).strip())
            if doc is None:
                findings.append(
                    Finding(
                        "unknown_product",
                        f"entry {i + 1}: no product {str(item['product_id'])[:40]!r} in the catalog",
                    )
                )
            else:
                entries.append((doc, dict(item["options"])))
        if findings:
            return self.result(0.0, findings)
        ctx.scratch["entries"] = entries
        return self.result(1.0, metrics={"entries": len(entries)})


class GroundingLevel(Level):
    """Every entry rests on results received before the submitting action (the single-product
    rule, :func:`~.verifier.ground_variant`, per entry). Score: the share of the entries' three
    items grounded; passes only when all are."""

    name = "grounding"
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        entries = _entries(ctx)
        seen = Evidence(ctx.trajectory, _told)
        findings = []
        for i, (doc, options) in enumerate(entries):
            for f in ground_variant(seen, doc, options):
                findings.append(Finding(f.code, f"entry {i + 1}: {f.message}", f.turn))
        score = 1.0 - len(findings) / (3 * len(entries))
        return self.result(score, findings, passed=not findings, evidence=sorted(seen.cited))


class ItemsLevel(Level):
    """Each item's correctness: ``sum_i rel_i / sum_j ideal_j`` (module docstring)."""

    name = "items"
    requires = ("format", "grounding")

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: RankedTask = ctx.task
        scores = _scores(ctx)
        findings = []
        seen: set[str] = set()
        for i, (doc, options) in enumerate(_entries(ctx)):
            pid = doc["product_id"]
            if pid in seen:
                findings.append(Finding("duplicate", f"entry {i + 1}: {pid} is listed already"))
                continue
            seen.add(pid)
            if doc["category"] != task.base.category:
                findings.append(
                    Finding(
                        "unrelated",
                        f"entry {i + 1}: {pid} is in {doc['category']}, not {task.base.category}",
                    )
                )
                continue
            _, why = product_match(task.base, doc, options)
            findings += [Finding(f.code, f"entry {i + 1}: {f.message}") for f in why]
        if len(_entries(ctx)) < task.k:
            findings.append(
                Finding("short_list", f"{len(_entries(ctx))} of the {task.k} entries asked for")
            )
        return self.result(
            scores.items,
            findings,
            passed=scores.items >= 1.0 - 1e-9,
            metrics={"relevances": list(scores.relevances), "ideal": task.ideal_relevances},
        )


class ListLevel(Level):
    """The list as a whole: ``coverage * diversity * precision * order`` (module docstring)."""

    name = "list"
    requires = ("format", "grounding")

    def check(self, ctx: VerifyContext) -> LevelResult:
        s = _scores(ctx)
        findings = [Finding("uncovered", f"no listed product meets {r}") for r in s.uncovered]
        if s.diversity < 1.0:
            findings.append(
                Finding("repeated", f"{s.diversity:.2f} of the entries are distinct products")
            )
        if s.precision < 1.0:
            findings.append(
                Finding("unrelated", f"{s.precision:.2f} of the products are of the asked category")
            )
        if s.order < 1.0 - 1e-9:
            findings.append(
                Finding("order", f"NDCG {s.order:.3f}: better matches are missing or listed later")
            )
        return self.result(
            s.list,
            findings,
            passed=s.list >= 1.0 - 1e-9,
            metrics={
                "coverage": s.coverage,
                "diversity": s.diversity,
                "precision": s.precision,
                "order": s.order,
            },
        )


def build_verifier(db: Any, aggregate: Any = "gated", **params: Any) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [FormatLevel(db), GroundingLevel(), ItemsLevel(), ListLevel()], aggregate, **params
    )
