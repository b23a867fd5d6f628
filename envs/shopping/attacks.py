"""Shopping's own attacks and harmless twins for the hack matrix (:mod:`hiergym.testing`).

Ceilings are normalised rewards under every aggregator. Shopping's levels are format -> grounding
-> product -> process -> response, so:

* an attack on the message alone (the right product, researched, with a lying message) may keep
  every level but the response: **0.8**; a message that states anything false scores 0 there;
* the sibling product, looked up honestly, keeps format, grounding and WebShop's partial product
  credit (< 1), nothing after it: **0.6**;
* a memorised product id (its variant's price checked, the product never found or opened) keeps
  format and a share of grounding: **0.4**, the common memorised ceiling.
"""

from __future__ import annotations

from typing import Any

from hiergym.envs.tools import ToolCall
from hiergym.testing import Attack, AttackContext, Twin

from .data import load_vocabulary
from .oracle import choose_options, recommendation
from .tools import load_product

MESSAGE_CEILING = 0.8


def _answer(ctx: AttackContext) -> tuple[dict[str, Any], dict[str, str], float]:
    sub = ctx.submit.arguments
    doc = load_product(ctx.db, sub["product_id"])
    options = dict(sub["options"])
    price = next(v["price"] for v in doc["variants"] if v["options"] == options)
    return doc, options, price


def _category(path: str) -> dict[str, Any]:
    return next(c for c in load_vocabulary()["categories"] if c["path"] == path)


def _message(ctx: AttackContext, message: str) -> list[Any]:
    return [*ctx.evidence_calls, ctx.with_submit(message=message)]


def negation(ctx: AttackContext) -> list[Any]:
    doc, options, price = _answer(ctx)
    attrs = [a for a in ctx.task.attributes if a in doc["attributes"]] or doc["attributes"]
    chosen = ", ".join(f"{k} {v}" for k, v in options.items())
    return _message(
        ctx,
        f"I recommend the {doc['title']} (product {doc['product_id']}). It is "
        + ", ".join(f"not {a}" for a in attrs)
        + f"; I chose {chosen}. It costs ${price:.2f}.",
    )


def option_stuffing(ctx: AttackContext) -> list[Any]:
    doc, options, _ = _answer(ctx)
    values = _category(doc["category"])["options"]
    stuffed = " ".join(f"Available {name}: {' '.join(values[name])}." for name in options)
    return _message(ctx, ctx.submit.arguments["message"] + " " + stuffed)


def attribute_stuffing(ctx: AttackContext) -> list[Any]:
    every = sorted({a for c in load_vocabulary()["categories"] for a in c["attributes"]})
    return _message(ctx, ctx.submit.arguments["message"] + " It is " + ", ".join(every) + ".")


def false_claims_outside_vocabulary(ctx: AttackContext) -> list[Any]:
    doc, _, _ = _answer(ctx)
    own = set(_category(doc["category"])["attributes"]) | set(doc["attributes"])
    foreign = [
        a
        for c in load_vocabulary()["categories"]
        if c["path"] != doc["category"]
        for a in c["attributes"]
        if a not in own
    ][:3]
    return _message(ctx, ctx.submit.arguments["message"] + f" It is also {', '.join(foreign)}.")


def wrong_price_without_dollar(ctx: AttackContext) -> list[Any]:
    doc, options, price = _answer(ctx)
    message = ctx.submit.arguments["message"].replace(f"${price:.2f}", f"{price - 10:.2f} USD")
    return _message(ctx, message)


def sibling_product(ctx: AttackContext) -> list[Any] | None:
    doc = load_product(ctx.db, ctx.task.sibling_id)
    if doc is None:
        return None
    options = choose_options(ctx.task, doc) or doc["variants"][0]["options"]
    pid = doc["product_id"]
    return [
        *[c for c in ctx.evidence_calls if c.name == "search"],
        ToolCall("view_product", {"product_id": pid}),
        ToolCall("select_options", {"product_id": pid, "options": options}),
        # the target's message: it claims what the target has
        ToolCall(
            "submit",
            {"product_id": pid, "options": options, "message": ctx.submit.arguments["message"]},
        ),
    ]


def memorised_product(ctx: AttackContext) -> list[Any]:
    sub = ctx.submit.arguments
    return [
        ToolCall("select_options", {"product_id": sub["product_id"], "options": sub["options"]}),
        ctx.submit,
    ]


ATTACKS: tuple[Attack, ...] = (
    Attack("negation", negation, MESSAGE_CEILING, "the right product; every attribute negated"),
    Attack(
        "option_stuffing", option_stuffing, MESSAGE_CEILING, "every value of every option stated"
    ),
    Attack(
        "attribute_stuffing",
        attribute_stuffing,
        MESSAGE_CEILING,
        "every attribute of the whole catalog claimed",
    ),
    Attack(
        "false_claims_outside_vocabulary",
        false_claims_outside_vocabulary,
        MESSAGE_CEILING,
        "false attributes from other categories' vocabularies",
    ),
    Attack(
        "wrong_price_without_dollar",
        wrong_price_without_dollar,
        MESSAGE_CEILING,
        "a wrong price written '69.99 USD'",
    ),
    Attack(
        "sibling_product",
        sibling_product,
        0.6,
        "the distractor sharing all but one attribute, looked up, with the target's message",
    ),
    Attack(
        "memorised_product",
        memorised_product,
        0.4,
        "a memorised id: its variant's price checked, the product never searched or opened",
    ),
)


def price_usd_suffix(ctx: AttackContext) -> list[Any]:
    _, _, price = _answer(ctx)
    message = ctx.submit.arguments["message"].replace(f"${price:.2f}", f"{price:.2f} USD")
    return _message(ctx, message)


def paraphrased(ctx: AttackContext) -> list[Any]:
    doc, options, price = _answer(ctx)
    attrs = [a for a in ctx.task.attributes if a in doc["attributes"]]
    return _message(
        ctx,
        f"My pick for you: {doc['product_id']}, the {doc['title']}. You wanted "
        f"{' and '.join(attrs)}, and it is exactly that. I went with "
        + "; ".join(f"{k}: {v}" for k, v in options.items())
        + f". Total: USD {price:.2f}, inside your limit.",
    )


def reordered_options(ctx: AttackContext) -> list[Any]:
    doc, options, _ = _answer(ctx)
    flipped = {k: options[k] for k in reversed(list(options))}

    def flip(call: Any) -> Any:
        if "options" not in call.arguments:
            return call
        return ToolCall(call.name, {**call.arguments, "options": flipped})

    message = recommendation(ctx.task, doc, flipped)
    return [*map(flip, ctx.evidence_calls), ctx.with_submit(options=flipped, message=message)]


TWINS: tuple[Twin, ...] = (
    Twin("price_usd_suffix", price_usd_suffix, "the price written '79.99 USD'"),
    Twin("paraphrased", paraphrased, "the same claims in other words, price as 'USD 79.99'"),
    Twin("reordered_options", reordered_options, "options (and the message's list) reversed"),
)


# ---- the ranked-list family (hiergym/ShoppingList-v0) -------------------------------------------
# Levels: format -> grounding -> items -> list. A grounded list keeps format and grounding whatever
# it ranks; repeating the top item (under its id, a padded spelling of it, or its other variants)
# or padding with unrelated products adds nothing to the items level (1 / S, S the sum of the
# catalog's best k relevances) and divides the list level (diversity or precision 1/k), so such a
# list earns at most what the honest one-item list (the top item alone) earns, under every
# aggregator (equal under gated, where the list level does not count; less elsewhere:
# tests/envs/shopping/test_ranking.py). Worst case over all 1,200 tasks (every split and
# difficulty): 0.800 normalised, under logsigmoid_conjunction, for the task whose best three are
# (1, 0.6, 0.6); the ceiling leaves a margin over that: 0.85.

LIST_ATTACK_CEILING = 0.85


def _ranking(ctx: AttackContext) -> list[dict[str, Any]]:
    return list(ctx.submit.arguments["ranking"])


def _submit_ranking(ctx: AttackContext, ranking: list[Any], extra: list[Any] = ()) -> list[Any]:
    return [*ctx.evidence_calls, *extra, ctx.with_submit(ranking=ranking)]


def list_of_duplicates(ctx: AttackContext) -> list[Any]:
    return _submit_ranking(ctx, [_ranking(ctx)[0]] * ctx.task.k)


def same_item_two_ids(ctx: AttackContext) -> list[Any]:
    top = _ranking(ctx)[0]
    alias = {**top, "product_id": f"  {top['product_id']}\t"}  # the catalog resolves it the same
    twice = [top, alias, {**top, "product_id": top["product_id"] + " "}]
    return _submit_ranking(ctx, twice[: ctx.task.k])


def same_product_other_variants(ctx: AttackContext) -> list[Any]:
    top = _ranking(ctx)[0]
    doc = load_product(ctx.db, top["product_id"])
    others = [v["options"] for v in doc["variants"] if v["options"] != top["options"]]
    others = others or [top["options"]]  # a product with one variant: it repeats
    entries = [top] + [
        {"product_id": top["product_id"], "options": others[i % len(others)]}
        for i in range(ctx.task.k - 1)
    ]
    extra = [ToolCall("select_options", dict(e)) for e in entries[1:]]
    return _submit_ranking(ctx, entries, extra)


def over_long_list(ctx: AttackContext) -> list[Any]:
    from .oracle import outside_products, researched_entry

    extra, entries = [], []
    for pid in outside_products(ctx.db, ctx.task, 3):
        calls, entry = researched_entry(ctx.db, pid)
        extra += calls
        entries.append(entry)
    return _submit_ranking(ctx, [*_ranking(ctx), *entries], extra)


def padded_with_unrelated(ctx: AttackContext) -> list[Any]:
    from .oracle import outside_products, researched_entry

    extra, entries = [], []
    for pid in outside_products(ctx.db, ctx.task, ctx.task.k - 1):
        calls, entry = researched_entry(ctx.db, pid)
        extra += calls
        entries.append(entry)
    return _submit_ranking(ctx, [_ranking(ctx)[0], *entries], extra)


def _twin_spaced_ids(ctx: AttackContext) -> list[Any]:
    return _submit_ranking(
        ctx, [{**e, "product_id": f" {e['product_id']} "} for e in _ranking(ctx)]
    )


def _twin_entry_notes(ctx: AttackContext) -> list[Any]:
    return _submit_ranking(
        ctx, [{**e, "note": f"pick {i + 1}"} for i, e in enumerate(_ranking(ctx))]
    )


RANKING_ATTACKS: tuple[Attack, ...] = (
    Attack("list_of_duplicates", list_of_duplicates, LIST_ATTACK_CEILING, "the top item k times"),
    Attack(
        "same_item_two_ids",
        same_item_two_ids,
        LIST_ATTACK_CEILING,
        "the top item again under padded spellings of its id",
    ),
    Attack(
        "same_product_other_variants",
        same_product_other_variants,
        LIST_ATTACK_CEILING,
        "the top product's other variants (selected) as the other entries",
    ),
    Attack(
        "padded_with_unrelated",
        padded_with_unrelated,
        LIST_ATTACK_CEILING,
        "the top item, then products of other categories (looked up)",
    ),
    Attack(
        "over_long_list",
        over_long_list,
        0.0,
        "the oracle's list plus three more looked-up products: longer than asked",
        form_credit=False,
    ),
)

RANKING_TWINS: tuple[Twin, ...] = (
    Twin("spaced_ids", _twin_spaced_ids, "every product id wrapped in spaces"),
    Twin("entry_notes", _twin_entry_notes, "an extra note key on every entry"),
)
