"""Reward integrity of Shopping (issue 9): grounding, answer-only levels, a rubric that reads claims."""

from __future__ import annotations

import json

import gymnasium as gym
import pytest

from hiergym.envs.shopping import data
from hiergym.envs.shopping.oracle import recommendation
from hiergym.envs.tools import ToolCall
from hiergym.rewards.levels import VerifyContext
from hiergym.testing import AGGREGATE_NAMES, normalised_reward, oracle_actions, play

ENV_ID = "hiergym/Shopping-v0"


@pytest.fixture(scope="module")
def env():
    e = gym.make(ENV_ID, split="test", difficulty="hard")
    yield e
    e.close()


def _doc(base, pid):
    row = base.sandbox.db.execute("SELECT doc FROM products WHERE id=?", (pid,)).fetchone()
    return json.loads(row[0])


def _setup(env, seed):
    base = env.unwrapped
    base.reset(seed=seed)
    calls = oracle_actions(env)
    sub = calls[-1].arguments
    return base.task, _doc(base, sub["product_id"]), dict(sub["options"]), calls


def _verdict(env, seed, actions, task=None):
    base = env.unwrapped
    options = {"max_turns": max(1, len(actions))}
    if task is not None:
        options["task"] = task
    out = play(env, actions, seed=seed, options=options)
    return out, base.verdict


def _rewards(env, verdict):
    return {a: normalised_reward(a, verdict.levels, env.unwrapped.task) for a in AGGREGATE_NAMES}


def _submit(calls, **changes):
    return ToolCall("submit", {**calls[-1].arguments, **changes})


# ---- grounding ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_memorised_submit_is_not_grounded_and_earns_at_most_the_common_ceiling(env, seed):
    _, _, _, calls = _setup(env, seed)
    out, verdict = _verdict(env, seed, [calls[-1]])
    assert out.terminated
    grounding = verdict.level("grounding")
    assert not grounding.passed and grounding.score == 0.0
    assert {f.code for f in grounding.findings} >= {"ungrounded_product", "ungrounded_price"}
    for name in ("product", "process", "response"):
        assert verdict.level(name).skipped, name
    for agg, value in _rewards(env, verdict).items():
        assert value <= 0.4 + 1e-9, (agg, value)


def test_evidence_fetched_in_the_submitting_action_does_not_count(env):
    _, _, _, calls = _setup(env, 0)
    action = json.dumps([{"name": c.name, "arguments": c.arguments} for c in calls[-3:]])
    _, verdict = _verdict(env, 0, [action])
    assert not verdict.level("grounding").passed


def test_the_oracle_is_grounded_and_its_cited_turns_are_recorded(env):
    _, _, _, calls = _setup(env, 4)
    _, verdict = _verdict(env, 4, calls)
    grounding = verdict.level("grounding")
    assert grounding.passed and grounding.score == 1.0
    names = [calls[i].name for i in grounding.evidence]
    # the search that listed it, the page that showed its options, the variant's price
    assert "search" in names and "view_product" in names and "select_options" in names
    assert len(calls) - 1 not in grounding.evidence  # never the submitting action


def test_options_not_seen_on_any_result_are_ungrounded(env):
    task, doc, options, calls = _setup(env, 5)
    # only the search: the product is listed, but its options and variant price were never shown
    search_only = [c for c in calls if c.name == "search"]
    _, verdict = _verdict(env, 5, [*search_only, calls[-1]])
    grounding = verdict.level("grounding")
    codes = {f.code for f in grounding.findings}
    assert "ungrounded_product" not in codes
    assert {"ungrounded_options", "ungrounded_price"} <= codes
    assert 0.0 < grounding.score < 1.0 and not grounding.passed


# ---- class D: levels that only mean something for a valid answer --------------------------


def test_no_submission_earns_nothing_under_any_aggregator(env):
    _, verdict = _verdict(env, 0, ["I am done.", "Done."])
    assert all(v == 0.0 for v in _rewards(env, verdict).values()), _rewards(env, verdict)


def test_an_unrelated_product_earns_at_most_the_common_ceiling_under_weighted(env):
    _, _, _, calls = _setup(env, 0)
    base = env.unwrapped
    other = next(t for t in base.tasks if t.category != base.task.category)
    base.reset(seed=0, options={"task": other})
    other_calls = list(base.make_oracle().plan(other))
    _, _, _, calls = _setup(env, 0)
    _, verdict = _verdict(env, 0, [*calls[:-1], other_calls[-1]])
    assert verdict.level("process").skipped and verdict.level("response").skipped
    for agg, value in _rewards(env, verdict).items():
        assert value <= 0.4 + 1e-9, (agg, value)


# ---- the response rubric reads claims -----------------------------------------------------


def _rubric(env, seed, message, options=None):
    from hiergym.envs.shopping.verifier import ResponseLevel

    task, doc, chosen, _ = _setup(env, seed)
    ctx = VerifyContext(
        None, task, {"product": doc, "options": options or chosen, "message": message}
    )
    return ResponseLevel().check(ctx)


def _price(doc, options):
    return next(v["price"] for v in doc["variants"] if v["options"] == options)


def _codes(result):
    return {f.code for f in result.findings}


def test_a_message_negating_every_attribute_fails(env):
    task, doc, options, _ = _setup(env, 5)
    attrs = [a for a in task.attributes if a in doc["attributes"]]
    negated = ", ".join(f"not {a}" for a in attrs)
    chosen = ", ".join(f"{k} {v}" for k, v in options.items())
    message = (
        f"I recommend the {doc['title']} (product {doc['product_id']}). It is {negated}; "
        f"I chose {chosen}. It costs ${_price(doc, options):.2f}."
    )
    result = _rubric(env, 5, message)
    assert not result.passed and result.score == 0.0
    assert "false_negation" in _codes(result)


@pytest.mark.parametrize(
    "phrase",
    ["it isn't {a}", "it is non-{a}", "it comes without being {a}", "it is no longer {a}"],
)
def test_negation_forms_are_not_statements(env, phrase):
    task, doc, options, _ = _setup(env, 5)
    attr = next(a for a in task.attributes if a in doc["attributes"])
    message = recommendation(task, doc, options).replace(
        f"It is {', '.join(a for a in task.attributes if a in doc['attributes'])};",
        f"{phrase.format(a=attr)};",
    )
    result = _rubric(env, 5, message)
    assert not result.passed


def test_stuffing_every_value_of_an_option_fails(env):
    task, doc, options, _ = _setup(env, 5)
    vocab = next(c for c in data.load_vocabulary()["categories"] if c["path"] == doc["category"])
    stuffed = " ".join(f"{name} {' '.join(vocab['options'][name])}." for name in options)
    result = _rubric(env, 5, recommendation(task, doc, options) + " " + stuffed)
    assert not result.passed and result.score == 0.0
    assert "option_stuffing" in _codes(result)


def test_claims_from_other_categories_vocabulary_are_false_claims(env):
    task, doc, options, _ = _setup(env, 5)
    foreign = [
        a
        for c in data.load_vocabulary()["categories"]
        if c["path"] != doc["category"]
        for a in c["attributes"]
        if a not in doc["attributes"]
    ]
    claim = foreign[0]
    result = _rubric(env, 5, recommendation(task, doc, options) + f" It is also {claim}.")
    assert not result.passed and result.score == 0.0
    assert "false_claim" in _codes(result)


def test_stuffing_every_attribute_of_the_catalog_fails(env):
    task, doc, options, _ = _setup(env, 5)
    every = sorted({a for c in data.load_vocabulary()["categories"] for a in c["attributes"]})
    result = _rubric(env, 5, recommendation(task, doc, options) + " It is " + ", ".join(every))
    assert not result.passed and result.score == 0.0


@pytest.mark.parametrize(
    "form", ["{p} USD", "USD {p}", "{p} dollars", "price: {p}", "US${p}", "{p}$", "{p}"]
)
def test_a_wrong_price_in_any_currency_form_fails(env, form):
    task, doc, options, _ = _setup(env, 5)
    price = _price(doc, options)
    wrong = f"{price - 7:.2f}"
    message = recommendation(task, doc, options).replace(
        f"It costs ${price:.2f}", "It costs " + form.format(p=wrong)
    )
    result = _rubric(env, 5, message)
    assert not result.passed and "false_price" in _codes(result), message


@pytest.mark.parametrize(
    "form", ["{p} USD", "USD {p}", "{p} dollars", "price: {p}", "US${p}", "$ {p}", "{p}"]
)
def test_the_true_price_in_any_usd_form_is_stated(env, form):
    task, doc, options, _ = _setup(env, 5)
    price = _price(doc, options)
    message = recommendation(task, doc, options).replace(
        f"It costs ${price:.2f}", "It costs " + form.format(p=f"{price:.2f}")
    )
    result = _rubric(env, 5, message)
    assert result.passed and result.score == 1.0, (message, result.findings)


def test_a_price_in_another_currency_is_not_the_price(env):
    task, doc, options, _ = _setup(env, 5)
    price = _price(doc, options)
    message = recommendation(task, doc, options).replace(
        f"It costs ${price:.2f}", f"It costs €{price:.2f}"
    )
    result = _rubric(env, 5, message)
    assert not result.passed and "false_price" in _codes(result)


def test_a_paraphrase_with_the_same_claims_passes(env):
    task, doc, options, _ = _setup(env, 5)
    attrs = " and ".join(a for a in task.attributes if a in doc["attributes"])
    chosen = "; ".join(f"{k}: {v}" for k, v in reversed(list(options.items())))
    message = (
        f"My pick is {doc['product_id']}, the {doc['title']}. You asked for {attrs} and that is "
        f"what it is. Options ({chosen}). Total {_price(doc, options):.2f} USD, not more than your "
        f"limit."
    )
    result = _rubric(env, 5, message)
    assert result.passed and result.score == 1.0, result.findings


def test_not_only_is_not_a_negation(env):
    task, doc, options, _ = _setup(env, 5)
    attrs = [a for a in task.attributes if a in doc["attributes"]]
    message = recommendation(task, doc, options).replace(
        f"It is {', '.join(attrs)};", f"It is not only {attrs[0]} but also {', '.join(attrs)};"
    )
    assert _rubric(env, 5, message).passed


def test_negating_an_attribute_the_product_lacks_is_true(env):
    task, doc, options, _ = _setup(env, 5)
    vocab = next(c for c in data.load_vocabulary()["categories"] if c["path"] == doc["category"])
    lacks = next(a for a in vocab["attributes"] if a not in doc["attributes"])
    result = _rubric(env, 5, recommendation(task, doc, options) + f" It is not {lacks}.")
    assert result.passed and result.score == 1.0, result.findings


def test_the_hack_matrix_holds_on_the_hardest_tasks():
    from hiergym.testing import check_hack_matrix

    rows = check_hack_matrix(ENV_ID, difficulty="hard")
    names = {r.name for r in rows}
    assert {"negation", "option_stuffing", "sibling_product", "paraphrased"} <= names
