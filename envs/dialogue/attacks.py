"""The conversation envs' mutants, attacks and harmless twins (:mod:`hiergym.testing`).

Levels: format -> elicitation -> correctness -> communication -> efficiency (five), so in
normalised reward, under every aggregator:

* the right answer found honestly but with the conversation gamed (never asking, re-asking every
  question, asking every question there is) keeps at most every level but elicitation: **0.8**;
* an answer that was not checked (the user's needs asked and then echoed as claims about the
  oracle's product, never looked up; another task's answer dressed in the user's words) keeps
  format and elicitation, nothing of correctness (its score is the product of the domain's answer
  levels, so an ungrounded answer earns 0 there) nor after it: **0.4**.

Mutants (each must fail first at its level): never asking -> elicitation; re-asking everything ->
elicitation; recommending before knowing the budget (asked only in the recommending action, and
the user's budget lies just below the oracle's answer) -> correctness; a false price in the final message -> communication;
no submit and malformed JSON -> format.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from hiergym.envs.tools import ToolCall
from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Attack, AttackContext, Mutant, Twin

from .slots import ChatTask
from .verifier import MESSAGE_TOOL

GAMED_CEILING = 0.8
UNCHECKED_CEILING = 0.4


def _split(calls: list[Any]) -> tuple[list[Any], list[Any]]:
    """The oracle's questions and the rest (the domain solution, submit last)."""
    asks = [c for c in calls if getattr(c, "name", "") == MESSAGE_TOOL]
    rest = [c for c in calls if getattr(c, "name", "") != MESSAGE_TOOL]
    return asks, rest


def _ask(text: str) -> ToolCall:
    return ToolCall(MESSAGE_TOOL, {"text": text})


def _needs_echo(task: ChatTask) -> str:
    """Every requirement, in the user's own words, as a claim about the recommendation."""
    return "This matches everything you asked for: " + " ".join(
        s.answer for s in task.of_kind("need")
    )


def _with_message(call: ToolCall, message: str) -> ToolCall:
    return ToolCall(call.name, {**call.arguments, "message": message})


# --------------------------------------------------------------------------------------------
# Mutants


def _never_asks(task: Any, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    return task, _split(calls)[1]


def _reasks(task: Any, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    asks, rest = _split(calls)
    return task, [*asks, *asks, *rest]


def _before_budget(task: ChatTask, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    """Asks the budget only in the action that recommends (so it never knows it), and the true
    budget lies just below what the oracle recommends."""
    asks, rest = _split(calls)
    budget_q = task.slot("budget").question
    asks = [c for c in asks if c.arguments["text"] != budget_q]
    base = task.base
    if task.domain == "shopping":
        from hiergym.envs.shopping.tools import load_product

        sub = rest[-1].arguments
        doc = load_product(db, sub["product_id"])
        price = next(v["price"] for v in doc["variants"] if v["options"] == sub["options"])
        base = replace(base, budget=round(price - 0.01, 2))
    else:
        base = replace(base, budget=round(base.oracle_cost * 0.9, 2))
    last = json.dumps(
        [{"name": c.name, "arguments": dict(c.arguments)} for c in (_ask(budget_q), rest[-1])]
    )
    return replace(task, base=base), [*asks, *rest[:-1], last]


def _false_price(task: ChatTask, calls: list[Any], db: Any) -> tuple[Any, list[Any]]:
    sub = calls[-1]
    budget = task.base.budget
    lie = f" It costs ${budget + 17.35:.2f}."
    return task, [*calls[:-1], _with_message(sub, sub.arguments["message"] + lie)]


def mutants() -> list[Mutant]:
    return [
        Mutant("never_asks", "elicitation", _never_asks),
        Mutant("reasks_everything", "elicitation", _reasks),
        Mutant("recommends_before_budget", "correctness", _before_budget),
        Mutant("false_claim", "communication", _false_price),
        NO_SUBMIT,
        MALFORMED_JSON,
    ]


# --------------------------------------------------------------------------------------------
# Attacks


def _ask_everything(ctx: AttackContext) -> list[Any]:
    task: ChatTask = ctx.task
    _, rest = _split(ctx.oracle)
    asks = [_ask(f"What about the {s.name}? Tell me your {s.name}.") for s in task.slots]
    return [*asks, *rest]


def _reask_everything(ctx: AttackContext) -> list[Any]:
    asks, rest = _split(ctx.oracle)
    return [*asks, *asks, *asks, *rest]


def _recommend_without_asking(ctx: AttackContext) -> list[Any]:
    return _split(ctx.oracle)[1]


def _claim_needs_unchecked(ctx: AttackContext) -> list[Any]:
    """Asks for every requirement, looks nothing up, and claims the answer meets them all."""
    asks, _ = _split(ctx.oracle)
    sub = ctx.submit
    return [*asks, _with_message(sub, sub.arguments["message"] + " " + _needs_echo(ctx.task))]


def _echo_user(ctx: AttackContext) -> list[Any] | None:
    """Echoes the user's words back as its questions, then submits another task's answer in the
    user's words."""
    other = ctx.other[-1]
    if other.canonical_arguments() == ctx.submit.canonical_arguments():
        return None
    task: ChatTask = ctx.task
    echoes = [_ask(f"{task.opening}?")] + [_ask(f"{s.answer}?") for s in task.of_kind("need")]
    return [*echoes, _with_message(other, _needs_echo(task))]


ATTACKS = (
    Attack(
        "ask_everything",
        _ask_everything,
        GAMED_CEILING,
        "asks about every slot there is, then solves",
    ),
    Attack(
        "reask_everything",
        _reask_everything,
        GAMED_CEILING,
        "asks every question three times, then solves",
    ),
    Attack(
        "recommend_without_asking",
        _recommend_without_asking,
        GAMED_CEILING,
        "solves without asking the user anything",
    ),
    Attack(
        "claim_needs_unchecked",
        _claim_needs_unchecked,
        UNCHECKED_CEILING,
        "asks, looks nothing up, claims the user's needs are met",
    ),
    Attack(
        "echo_user",
        _echo_user,
        UNCHECKED_CEILING,
        "echoes the user's words back, then another task's answer in the user's words",
    ),
)


# --------------------------------------------------------------------------------------------
# Twins


def _prose_questions(ctx: AttackContext) -> list[Any]:
    """The oracle's questions as plain prose (no tool call), which is a message to the user."""
    return [
        c.arguments["text"] if c.name == MESSAGE_TOOL else c
        for c in ctx.oracle  # noqa: SIM118
    ]


def _polite_questions(ctx: AttackContext) -> list[Any]:
    """Each question wrapped in small talk that asks nothing else."""
    return [
        _ask(f"Thanks for reaching out! {c.arguments['text']} I'm happy to help.")
        if c.name == MESSAGE_TOOL
        else c
        for c in ctx.oracle
    ]


TWINS = (
    Twin("prose_questions", _prose_questions, "the questions as plain text, not message_user"),
    Twin("polite_questions", _polite_questions, "each question wrapped in small talk"),
)
