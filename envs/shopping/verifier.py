"""Shopping verifier: format -> product -> process -> response, gated.

* format — one submission whose arguments are well formed and name a product in the catalog;
* product — WebShop's formula: ``r_type * (|attrs matched| + |options matched| + 1[price <= budget])
  / (|attrs| + |options| + 1)``; an option counts only if the chosen variant exists and is in stock;
  passes only at 1.0;
* process — tool efficiency against the oracle's call count, with Shop-R1 difficulty scaling (harder
  tasks allow more calls) and a penalty per invalid call;
* response — a rule-based rubric on the message: it names the product and states the requested
  attributes, options and the true price, and claims no attribute the product lacks; an optional LLM
  judge (``judge(task, product, message) -> [0, 1]``) is blended in.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable
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

from .data import load_vocabulary
from .tasks import ShoppingTask
from .tools import load_product

PRICE_TOLERANCE = 0.005  # half a cent: $0.01 over budget is over budget
CALL_SLACK = {"easy": 1.5, "medium": 2.0, "hard": 2.5}
INVALID_CALL_PENALTY = 0.1
_WORD = re.compile(r"[a-z0-9]+")
_PRICE = re.compile(r"\$\s?(\d{1,7}(?:,\d{3})*(?:\.\d{1,2})?)")


def product_match(
    task: ShoppingTask, doc: dict[str, Any], options: dict[str, str]
) -> tuple[float, list[Finding]]:
    """WebShop's reward of a chosen product and options for a task, with the findings behind it."""
    findings: list[Finding] = []
    if doc["product_type"] == task.product_type and doc["category"] == task.category:
        r_type = 1.0
    elif doc["category"] == task.category:
        r_type = 0.5
        findings.append(
            Finding("wrong_type", f"a {doc['product_type']}, not a {task.product_type}")
        )
    else:
        r_type = 0.1
        findings.append(Finding("wrong_category", f"{doc['category']}, not {task.category}"))
    matched = 0
    for attr in task.attributes:
        if attr in doc["attributes"]:
            matched += 1
        else:
            findings.append(Finding("missing_attribute", f"{doc['product_id']} is not {attr!r}"))
    variant = next((v for v in doc["variants"] if v["options"] == options), None)
    if variant is None:
        findings.append(
            Finding(
                "invalid_options",
                f"{doc['product_id']} has no variant {options}; its options are {doc['options']}",
            )
        )
    elif variant["stock"] <= 0:
        findings.append(Finding("out_of_stock", f"{doc['product_id']} {options} is out of stock"))
    purchasable = variant is not None and variant["stock"] > 0
    for name, value in task.options:
        if purchasable and options.get(name) == value:
            matched += 1
        elif options.get(name) != value:
            findings.append(
                Finding("wrong_option", f"{name} is {options.get(name)!r}, asked for {value!r}")
            )
    if variant is not None and variant["price"] <= task.budget + PRICE_TOLERANCE:
        matched += 1
    elif variant is not None:
        findings.append(
            Finding(
                "over_budget", f"${variant['price']:.2f} is over the budget of ${task.budget:.2f}"
            )
        )
    return r_type * matched / (len(task.attributes) + len(task.options) + 1), findings


class FormatLevel(Level):
    name = "format"

    def __init__(self, db: Any):
        self.db = db
        self._products: dict[str, dict[str, Any] | None] = {}  # the catalog is read-only

    def product(self, product_id: str) -> dict[str, Any] | None:
        if product_id not in self._products:
            if len(self._products) > 50_000:
                self._products.clear()
            self._products[product_id] = load_product(self.db, product_id)
        return self._products[product_id]

    def check(self, ctx: VerifyContext) -> LevelResult:
        traj = ctx.trajectory
        sub = traj.submission
        if sub is None:
            return self.result(0.0, [missing_submission(traj)])
        doc = self.product(sub.arguments["product_id"].strip())
        if doc is None:
            return self.result(
                0.0,
                [
                    Finding(
                        "unknown_product",
                        f"no product {sub.arguments['product_id'][:40]!r} in the catalog",
                    )
                ],
            )
        ctx.scratch.update(
            product=doc, options=sub.arguments["options"], message=sub.arguments["message"]
        )
        return self.result(1.0)


def _submitted(ctx: VerifyContext) -> tuple[dict[str, Any], dict[str, str], str]:
    if "product" not in ctx.scratch:
        raise SkipLevel("no valid submission to judge")
    return ctx.scratch["product"], ctx.scratch["options"], ctx.scratch["message"]


class ProductLevel(Level):
    name = "product"

    def check(self, ctx: VerifyContext) -> LevelResult:
        doc, options, _ = _submitted(ctx)
        score, findings = product_match(ctx.task, doc, options)
        return self.result(score, findings, passed=score >= 1.0 - 1e-9)


class ProcessLevel(Level):
    name = "process"
    threshold = 0.75

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: ShoppingTask = ctx.task
        traj = ctx.trajectory
        calls, invalid = traj.n_calls, traj.n_invalid
        allowed = math.ceil(task.oracle_calls * CALL_SLACK[task.difficulty])
        efficiency = 1.0 if calls <= allowed else allowed / calls
        score = max(0.0, efficiency - INVALID_CALL_PENALTY * invalid)
        findings = []
        if calls > allowed:
            findings.append(
                Finding(
                    "inefficient",
                    f"{calls} calls; the oracle needs {task.oracle_calls}, {allowed} allowed at {task.difficulty}",
                )
            )
        if invalid:
            findings.append(Finding("invalid_calls", f"{invalid} invalid or failed calls"))
        return self.result(
            score, findings, metrics={"calls": calls, "invalid": invalid, "allowed": allowed}
        )


@functools.lru_cache(maxsize=1)
def _attribute_vocabulary() -> dict[str, tuple[str, ...]]:
    return {c["path"]: tuple(c["attributes"]) for c in load_vocabulary()["categories"]}


@functools.lru_cache(maxsize=4096)
def _phrase_tokens(phrase: str) -> str:
    return f" {' '.join(_WORD.findall(phrase.lower()))} "


def _has_phrase(padded_words: str, phrase: str) -> bool:
    """Whole-word phrase match: ``phrase``'s tokens appear consecutively among the message's tokens."""
    return _phrase_tokens(phrase) in padded_words


class ResponseLevel(Level):
    name = "response"
    threshold = 0.75

    def __init__(
        self,
        judge: Callable[[ShoppingTask, dict[str, Any], str], float] | None = None,
        judge_weight: float = 0.5,
    ):
        self.judge = judge
        self.judge_weight = judge_weight

    def check(self, ctx: VerifyContext) -> LevelResult:
        doc, options, message = _submitted(ctx)
        task: ShoppingTask = ctx.task
        words = " " + " ".join(_WORD.findall(message.lower())) + " "
        items: list[tuple[str, bool]] = [
            (
                "names the product",
                _has_phrase(words, doc["product_id"]) or _has_phrase(words, doc["title"]),
            )
        ]
        items += [
            (f"states {a!r}", _has_phrase(words, a))
            for a in task.attributes
            if a in doc["attributes"]
        ]
        items += [(f"states {v!r}", _has_phrase(words, v)) for v in options.values()]
        variant = next((v for v in doc["variants"] if v["options"] == options), None)
        prices = [float(p.replace(",", "")) for p in _PRICE.findall(message)]
        true_price = variant["price"] if variant else None
        items.append(
            (
                "states the price",
                true_price is not None
                and any(abs(p - true_price) <= PRICE_TOLERANCE for p in prices),
            )
        )
        findings = [
            Finding("rubric_miss", f"the message does not {what}") for what, ok in items if not ok
        ]
        false_claims = [
            a
            for a in _attribute_vocabulary().get(doc["category"], ())
            if a not in doc["attributes"] and _has_phrase(words, a)
        ]
        false_prices = [
            p
            for p in prices
            if all(abs(p - ref) > PRICE_TOLERANCE for ref in (true_price or -1.0, task.budget))
        ]
        findings += [
            Finding("false_claim", f"claims {a!r}, which {doc['product_id']} is not")
            for a in false_claims
        ]
        findings += [
            Finding("false_price", f"states ${p:.2f}; the variant costs {true_price}")
            for p in false_prices
        ]
        score = sum(ok for _, ok in items) / len(items)
        score *= 0.5 ** (len(false_claims) + len(false_prices))
        metrics: dict[str, Any] = {"rubric": score}
        if self.judge is not None:
            judged = float(self.judge(task, doc, message))
            if not 0.0 <= judged <= 1.0:
                raise ValueError(f"judge returned {judged}, expected a score in [0, 1]")
            metrics["judge"] = judged
            score = (1 - self.judge_weight) * score + self.judge_weight * judged
        return self.result(score, findings, metrics=metrics)


def build_verifier(
    db: Any, aggregate: Any = "gated", judge: Any = None, **params: Any
) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [FormatLevel(db), ProductLevel(), ProcessLevel(), ResponseLevel(judge)], aggregate, **params
    )
