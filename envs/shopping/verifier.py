"""Shopping verifier: format -> grounding -> product -> process -> response, gated by default.

* format — one submission whose arguments are well formed and name a product in the catalog;
* grounding — the answer rests on results received *before* the submitting action
  (:mod:`hiergym.envs.evidence`): the product was listed by a search or its page opened, each chosen
  option value was shown for it, and the chosen variant's price was shown (``select_options``, the
  cart, or a single-price listing); the level cites those turns. Score: share of the three items;
  passes only at 1.0. A memorised ``submit`` (train tasks repeat) fails here;
* product — WebShop's formula: ``r_type * (|attrs matched| + |options matched| + 1[price <= budget])
  / (|attrs| + |options| + 1)``; an option counts only if the chosen variant exists and is in stock;
  passes only at 1.0;
* process — tool efficiency against the oracle's call count, with Shop-R1 difficulty scaling (harder
  tasks allow more calls) and a penalty per invalid call;
* response — a rubric over the message's *claims* (:mod:`.claims`: negation scope, prices in any
  currency form, every category's vocabulary): it names the product and states the requested
  attributes, the chosen options and the true price in US dollars; a message that states anything
  false (an attribute the product lacks, one it has negated, other values of an option, a price that
  is neither the variant's nor the budget, a foreign currency) scores 0. An optional judge
  (``judge(task, product, message) -> [0, 1]``, e.g. :class:`hiergym.rewards.judges.LLMJudge`) is
  blended in; a judge that abstains (:class:`~hiergym.rewards.judges.JudgeAbstained`) pays nothing.

Reward integrity: product ``requires`` format and grounding; process and response require format,
grounding and product. A level that only means something for a grounded, correct answer is not
applicable otherwise (score 0 under every aggregator), so no submission earns 0, a memorised or
unrelated answer at most 0.4 (format plus a share of grounding) and a lying message on the right
product at most 0.8, under every aggregator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from hiergym.envs.core import missing_submission
from hiergym.envs.evidence import Evidence
from hiergym.rewards.judges import JudgeAbstained
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from . import claims
from .tasks import ShoppingTask
from .tools import load_product

PRICE_TOLERANCE = 0.005  # half a cent: $0.01 over budget is over budget
CALL_SLACK = {"easy": 1.5, "medium": 2.0, "hard": 2.5}
INVALID_CALL_PENALTY = 0.1


def product_match(
    task: ShoppingTask, doc: dict[str, Any], options: dict[str, str]
) -> tuple[float, list[Finding]]:
    """WebShop's reward of a chosen product and options for a task, with the findings behind it."""
    findings: list[Finding] = []
    r_type, matched = product_part(task, doc, findings)
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
    matched += variant_part(task, variant, options, findings)
    return r_type * matched / match_terms(task), findings


def match_terms(task: ShoppingTask) -> int:
    """What :func:`product_match` counts: each attribute, each option and the budget."""
    return len(task.attributes) + len(task.options) + 1


def product_part(
    task: ShoppingTask, doc: dict[str, Any], findings: list[Finding] | None = None
) -> tuple[float, int]:
    """The part of :func:`product_match` that does not depend on the variant: the type factor and
    the attributes matched (findings appended when a list is given)."""
    if doc["product_type"] == task.product_type and doc["category"] == task.category:
        r_type = 1.0
    elif doc["category"] == task.category:
        r_type = 0.5
        if findings is not None:
            findings.append(
                Finding("wrong_type", f"a {doc['product_type']}, not a {task.product_type}")
            )
    else:
        r_type = 0.1
        if findings is not None:
            findings.append(Finding("wrong_category", f"{doc['category']}, not {task.category}"))
    matched = 0
    for attr in task.attributes:
        if attr in doc["attributes"]:
            matched += 1
        elif findings is not None:
            findings.append(Finding("missing_attribute", f"{doc['product_id']} is not {attr!r}"))
    return r_type, matched


def variant_part(
    task: ShoppingTask,
    variant: dict[str, Any] | None,
    options: dict[str, str],
    findings: list[Finding] | None = None,
) -> int:
    """The options and the budget matched by ``options``, whose variant (the product's first with
    exactly those options) is ``variant`` (``None``: no such variant)."""
    matched = 0
    purchasable = variant is not None and variant["stock"] > 0
    for name, value in task.options:
        if purchasable and options.get(name) == value:
            matched += 1
        elif options.get(name) != value and findings is not None:
            findings.append(
                Finding("wrong_option", f"{name} is {options.get(name)!r}, asked for {value!r}")
            )
    if variant is not None and variant["price"] <= task.budget + PRICE_TOLERANCE:
        matched += 1
    elif variant is not None and findings is not None:
        findings.append(
            Finding(
                "over_budget", f"${variant['price']:.2f} is over the budget of ${task.budget:.2f}"
            )
        )
    return matched


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


def _options_key(options: Any) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((str(k), str(v)) for k, v in dict(options).items()))


def _told(r: Any) -> tuple[str, dict[Any, Any]] | None:
    """What one successful Shopping result shows: listed products, a page, or priced variants."""
    data = r.data
    if r.name == "search":
        return "listed", {x["product_id"]: x for x in data.get("results", ())}
    if r.name == "view_product":
        return "page", {data["product_id"]: data}
    if r.name == "select_options":
        return "variant", {(data["product_id"], _options_key(data["options"])): data}
    if r.name in ("add_to_cart", "view_cart"):
        return "variant", {
            (i["product_id"], _options_key(i["options"])): i for i in data.get("items", ())
        }
    return None


def _single_price(price: Any) -> float | None:
    """The one price a listing shows (a number, or a range whose ends agree), else None."""
    if isinstance(price, int | float) and not isinstance(price, bool):
        return float(price)
    if isinstance(price, list) and len(price) == 2 and price[0] == price[1]:
        return float(price[0])
    return None


class GroundingLevel(Level):
    """The answer rests on results the agent received before its submitting action.

    Three items, each cited (:attr:`LevelResult.evidence`): the product was listed by a search or
    its page opened; every chosen option value was shown for it (on its page, or as the variant
    returned by ``select_options`` / the cart); and the chosen variant's price was shown (by
    ``select_options`` / the cart, or a listing whose every variant costs the same) — the price the
    response level then requires the message to state. Results of the submitting action itself
    never count (:mod:`hiergym.envs.evidence`). Score: the share of items grounded; passes only
    when all are.
    """

    name = "grounding"
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        doc, options, _ = _submitted(ctx)
        seen = Evidence(ctx.trajectory, _told)
        findings = ground_variant(seen, doc, options)
        score = 1.0 - len(findings) / 3
        return self.result(score, findings, passed=not findings, evidence=sorted(seen.cited))


def ground_variant(seen: Evidence, doc: dict[str, Any], options: dict[str, str]) -> list[Finding]:
    """The grounding rule for one product variant (:class:`GroundingLevel`): a finding for each of
    its three items (the product listed or opened, every option value shown for it, the variant's
    price shown) that no result in ``seen`` supports."""
    pid = doc["product_id"]
    variant_key = (pid, _options_key(options))
    listed, page = seen.first("listed", pid), seen.first("page", pid)
    variant = seen.first("variant", variant_key)
    findings: list[Finding] = []
    if listed is None and page is None:
        findings.append(
            Finding(
                "ungrounded_product",
                f"{pid} was never listed by a search or opened before submitting",
            )
        )
    page_options = page[1].get("options", {}) if page else {}
    unseen = [
        f"{name} {value!r}"
        for name, value in options.items()
        if variant is None and value not in page_options.get(name, ())
    ]
    if unseen:
        findings.append(
            Finding(
                "ungrounded_options",
                f"{', '.join(unseen)} of {pid} was never shown before submitting",
            )
        )
    true = _variant(doc, options)
    shown = [
        p
        for p in (
            variant[1].get("price") if variant else None,
            _single_price(listed[1].get("price")) if listed else None,
            _single_price(page[1].get("price")) if page else None,
        )
        if p is not None
    ]
    if true is None or not any(abs(p - true["price"]) <= PRICE_TOLERANCE for p in shown):
        findings.append(
            Finding(
                "ungrounded_price",
                f"the price of {pid} {options} was never shown before submitting "
                "(select_options shows a variant's price)",
            )
        )
    return findings


class ProductLevel(Level):
    name = "product"
    requires = ("format", "grounding")

    def check(self, ctx: VerifyContext) -> LevelResult:
        doc, options, _ = _submitted(ctx)
        score, findings = product_match(ctx.task, doc, options)
        return self.result(score, findings, passed=score >= 1.0 - 1e-9)


class ProcessLevel(Level):
    name = "process"
    threshold = 0.75
    requires = ("format", "grounding", "product")

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


def _variant(doc: dict[str, Any], options: dict[str, str]) -> dict[str, Any] | None:
    return next((v for v in doc["variants"] if v["options"] == options), None)


class ResponseLevel(Level):
    """The recommendation, read as claims (see :mod:`.claims`).

    Items: it names the product (id or title), states each requested attribute the product has,
    each chosen option value, and the variant's true price in US dollars. A message that states
    anything false scores 0, whatever else it gets right: an attribute the product lacks (from any
    category's vocabulary), an attribute it has negated, a value of an option other than the one
    chosen (stuffing), a price that is neither the variant's nor the user's budget, or a price in
    another currency.
    """

    name = "response"
    threshold = 0.75
    requires = ("format", "grounding", "product")

    def __init__(
        self,
        judge: Callable[[ShoppingTask, dict[str, Any], str], float | None] | None = None,
        judge_weight: float = 0.5,
    ):
        self.judge = judge
        self.judge_weight = judge_weight

    def check(self, ctx: VerifyContext) -> LevelResult:
        doc, options, message = _submitted(ctx)
        task: ShoppingTask = ctx.task
        said = claims.read(message, doc["category"])
        own = {claims.key(a) for a in doc["attributes"]}
        items: list[tuple[str, bool]] = [
            (
                "names the product",
                said.has_phrase(doc["product_id"]) or said.has_phrase(doc["title"]),
            )
        ]
        for a in task.attributes:
            if a in doc["attributes"]:
                k = claims.key(a)
                items.append(
                    (f"state {a!r}", k in said.attributes and k not in said.negated_attributes)
                )
        for name, value in options.items():
            k = claims.key(value)
            items.append(
                (
                    f"state {name} {value!r}",
                    k in said.values.get(name, set())
                    and k not in said.negated_values.get(name, set()),
                )
            )
        variant = _variant(doc, options)
        true_price = variant["price"] if variant else None
        usd = [p.amount for p in said.prices if p.currency == "USD"]
        items.append(
            (
                "state the price",
                true_price is not None and any(abs(p - true_price) <= PRICE_TOLERANCE for p in usd),
            )
        )
        findings = [
            Finding("rubric_miss", f"the message does not {what}") for what, ok in items if not ok
        ]
        lies: list[Finding] = []
        lies += [
            Finding("false_claim", f"claims {claims.phrase(a)!r}, which {doc['product_id']} is not")
            for a in sorted(said.attributes - own)
        ]
        lies += [
            Finding(
                "false_negation",
                f"says it is not {claims.phrase(a)!r}, which {doc['product_id']} is",
            )
            for a in sorted(said.negated_attributes & own)
        ]
        for name, stated in sorted(said.values.items()):
            others = sorted(stated - {claims.key(options.get(name, ""))})
            if others:
                lies.append(
                    Finding(
                        "option_stuffing",
                        f"states {name} {', '.join(map(claims.phrase, others))}; the chosen "
                        f"{name} is {options.get(name)!r}",
                    )
                )
        for name, value in options.items():
            if claims.key(value) in said.negated_values.get(name, set()):
                lies.append(
                    Finding("false_negation", f"says it is not {name} {value!r}, which was chosen")
                )
        for p in said.prices:
            if p.currency != "USD":
                lies.append(
                    Finding("false_price", f"states {p.text!r}; the catalog prices in US dollars")
                )
            elif all(
                abs(p.amount - ref) > PRICE_TOLERANCE
                for ref in (true_price if true_price is not None else -1.0, task.budget)
            ):
                lies.append(
                    Finding(
                        "false_price",
                        f"states {p.text!r}; the variant costs "
                        + (
                            f"${true_price:.2f}"
                            if true_price is not None
                            else "nothing (no such variant)"
                        ),
                    )
                )
        findings += lies
        rubric = 0.0 if lies else sum(ok for _, ok in items) / len(items)
        metrics: dict[str, Any] = {"rubric": rubric}
        score = rubric
        if self.judge is not None and not lies:
            try:
                judged = self.judge(task, doc, message)
            except JudgeAbstained as e:
                judged = None
                findings.append(Finding("judge_abstained", str(e)[:300]))
            if judged is not None:
                judged = float(judged)
                if not 0.0 <= judged <= 1.0:
                    raise ValueError(f"judge returned {judged}, expected a score in [0, 1]")
            metrics["judge"] = judged
            # an abstaining judge never pays: its share of the score is 0
            score = (1 - self.judge_weight) * rubric + self.judge_weight * (judged or 0.0)
        return self.result(
            score, findings, metrics=metrics, passed=score >= self.threshold and not lies
        )


def build_verifier(
    db: Any, aggregate: Any = "gated", judge: Any = None, **params: Any
) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [FormatLevel(db), GroundingLevel(), ProductLevel(), ProcessLevel(), ResponseLevel(judge)],
        aggregate,
        **params,
    )


def product_fits(task: ShoppingTask, doc: dict[str, Any] | None) -> bool:
    """Whether a catalog product (``None``: none) is of the task's type and category and has every
    asked attribute: the ``found_product`` subgoal's rule."""
    return (
        doc is not None
        and doc["product_type"] == task.product_type
        and doc["category"] == task.category
        and all(a in doc["attributes"] for a in task.attributes)
    )


def subgoals(db: Any) -> list[Any]:
    """Shopping's subgoal boundaries: ``found_product`` (a product page opened that is of the asked
    type and category and has every asked attribute) and ``chose_variant`` (``select_options`` on a
    product and options that earn the full WebShop reward: type, attributes, options, in stock and
    within budget). Read from the tools' results and the catalog, with the product level's rule;
    results of the submitting action count for nothing (the agent never read them). Each is decided
    by one result of its tool (:meth:`~hiergym.envs.core.Subgoal.of_results`), so only a turn
    that opened a page or selected options asks it.

    Built once per env; a product's record is read from the catalog once for all its episodes
    (the checks run on every turn that views or selects, and the catalog is read-only), and
    whether a product fits the task is decided once per task and product: a page opened again
    costs a dict lookup."""
    import functools

    from hiergym.envs.core import Subgoal

    product = functools.lru_cache(maxsize=4096)(functools.partial(load_product, db))
    # whether a product fits the last task asked about (held, so compared by identity): id -> bool
    fits_task: Any = None
    fits_base: Any = None
    fits: dict[str, bool] = {}

    def found(result: Any, task: Any) -> bool:
        nonlocal fits_task, fits_base, fits
        if task is not fits_task:
            # a conversational task wraps the shopping one
            fits_task, fits_base, fits = task, getattr(task, "base", task), {}
        product_id = str(result.data["product_id"])
        hit = fits.get(product_id)
        if hit is None:
            hit = fits[product_id] = product_fits(fits_base, product(product_id))
        return hit

    def chose(result: Any, task: Any) -> bool:
        task = getattr(task, "base", task)
        doc = product(str(result.data["product_id"]))
        return doc is not None and product_match(task, doc, result.data["options"])[0] >= 1.0

    return [
        Subgoal.of_results(
            "found_product",
            {"view_product"},
            found,
            0.5,
            "opened a product of the asked type with every attribute",
        ),
        Subgoal.of_results(
            "chose_variant",
            {"select_options"},
            chose,
            0.5,
            "selected options that earn the full product reward",
        ),
    ]
