"""The conversation verifier: format -> elicitation -> correctness -> communication -> efficiency.

It reuses the domain verifiers' levels, run on the domain task (``ChatTask.base``) and the same
trajectory, and adds what only a conversation has:

* format — the domain's format level (one valid submit; shopping: a catalog product; travel: an
  itinerary that parses);
* elicitation — the assistant asked for what it needed and did not re-ask what it was told. Read
  from its messages with the user simulator's own question reader (:func:`.slots.asked_slots`), up
  to the submitting action: score = share of the hidden requirements asked about, minus
  :data:`PENALTY` for each re-ask (a slot asked again after it was asked, or one the opening
  stated) and each off-task question (the brand, the airline). Passes at :data:`ELICITATION_PASS`
  (one stray question is tolerated; two of two requirements must be asked). This level measures
  *asking*; a question sent with the recommendation itself counts as asked, and recommending
  before the answer arrived is judged where it shows, in correctness. Requires format;
* correctness — the domain's answer levels as one (shopping: grounding, product; travel:
  feasibility, grounding, constraints, quality), each honouring its own ``requires``: score = the
  product of their scores (an AND: a not-applicable one counts 0, so an ungrounded answer earns
  nothing here however feasible), passes when all pass. Requires format;
* communication — the final message: shopping's hardened response rubric (names the product,
  states the requested attributes, options and the true price; any false claim scores 0; the
  judge hook blends in persuasiveness); travel: :class:`TravelMessageLevel`. Requires format and
  correctness;
* efficiency — tool calls against the domain oracle's (with the domain's difficulty slack),
  messages against the requirements to ask (plus :data:`EXTRA_MESSAGES`), 0.1 off per invalid
  call. Requires format and correctness.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from hiergym.rewards.judges import JudgeAbstained
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    Level,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from .slots import ChatTask, asked_slots

PENALTY = 0.25
ELICITATION_PASS = 0.75
CALL_SLACK = {"easy": 1.5, "medium": 2.0, "hard": 2.5}
EXTRA_MESSAGES = 2
"""Messages allowed beyond one per requirement (a confirmation, a proposal)."""
INVALID_CALL_PENALTY = 0.1
MONEY_TOLERANCE = 0.005
MESSAGE_TOOL = "message_user"


def _base_ctx(ctx: VerifyContext) -> VerifyContext:
    """The context a domain level reads: the same trajectory and scratch, the domain task."""
    return VerifyContext(ctx.trajectory, ctx.task.base, ctx.scratch)


def submitting_turn(trajectory: Any) -> int:
    """The index of the turn whose action submitted (the number of turns if none did)."""
    sub = trajectory.submission
    for turn in trajectory.turns:
        if sub is not None and any(c is sub for c in turn.calls):
            return turn.index
    return len(trajectory.turns)


def messages_sent(trajectory: Any, before: int | None = None) -> list[tuple[int, str]]:
    """``(turn, text)`` of every message the user received (before turn ``before``)."""
    out = []
    for turn in trajectory.turns:
        if before is not None and turn.index >= before:
            break
        for call, result in zip(turn.calls, turn.results, strict=False):
            if call.name == MESSAGE_TOOL and result.ok:
                out.append((turn.index, str(call.arguments.get("text", ""))))
    return out


class DomainLevel(Level):
    """A domain level run on the domain task, under another name and other requirements."""

    def __init__(self, inner: Level, name: str | None = None, requires: Sequence[str] = ()):
        self.inner = inner
        self.name = name or inner.name
        self.requires = tuple(requires)
        self.threshold = inner.threshold
        self.weight = inner.weight

    def check(self, ctx: VerifyContext) -> LevelResult:
        return replace(self.inner.check(_base_ctx(ctx)), name=self.name)


class ElicitationLevel(Level):
    """Asked for the hidden requirements, re-asked nothing, asked nothing off the task."""

    name = "elicitation"
    threshold = ELICITATION_PASS
    requires = ("format",)

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: ChatTask = ctx.task
        traj = ctx.trajectory
        asked_at: dict[str, int] = {}
        reasked: list[tuple[str, int]] = []
        off: list[tuple[str, int]] = []
        for turn, text in messages_sent(traj, before=submitting_turn(traj) + 1):
            for name in asked_slots(task, text):
                kind = task.slot(name).kind
                if kind == "off":
                    off.append((name, turn))
                elif kind == "stated" or name in asked_at:
                    reasked.append((name, turn))
                else:
                    asked_at[name] = turn
        needed = task.needed
        missing = [n for n in needed if n not in asked_at]
        share = (len(needed) - len(missing)) / len(needed) if needed else 1.0
        score = max(0.0, share - PENALTY * (len(reasked) + len(off)))
        findings = [Finding("not_asked", f"never asked about the {n}") for n in missing]
        findings += [
            Finding("re_asked", f"asked about the {n} again; the user had told it", turn=t)
            for n, t in reasked
        ]
        findings += [
            Finding("off_task", f"asked about the {n}, which the task does not involve", turn=t)
            for n, t in off
        ]
        return self.result(
            score,
            findings,
            metrics={
                "asked": sorted(asked_at),
                "needed": list(needed),
                "re_asked": len(reasked),
                "off_task": len(off),
            },
        )


class CorrectnessLevel(Level):
    """The domain's answer levels as one: the product of their scores, passes when all pass."""

    name = "correctness"
    requires = ("format",)

    def __init__(self, levels: Sequence[Level]):
        self.levels = list(levels)

    def check(self, ctx: VerifyContext) -> LevelResult:
        base = _base_ctx(ctx)
        passed: dict[str, bool] = {}
        scores: dict[str, float] = {}
        findings: list[Finding] = []
        evidence: set[int] = set()
        for level in self.levels:
            failed = [r for r in level.requires if r in passed and not passed[r]]
            if failed:
                passed[level.name], scores[level.name] = False, 0.0
                findings.append(
                    Finding("not_applicable", f"{level.name}: needs {', '.join(failed)}")
                )
                continue
            try:
                result = level.check(base)
            except SkipLevel as skip:
                passed[level.name], scores[level.name] = False, 0.0
                findings.append(Finding("skipped", f"{level.name}: {skip}"))
                continue
            passed[level.name], scores[level.name] = result.passed, result.score
            findings += [replace(f, message=f"{level.name}: {f.message}") for f in result.findings]
            evidence |= set(result.evidence)
        score = math.prod(scores.values())
        return self.result(
            score, findings, passed=all(passed.values()), metrics=scores, evidence=sorted(evidence)
        )


class EfficiencyLevel(Level):
    """Tool calls against the domain oracle's, messages against what there was to ask."""

    name = "efficiency"
    threshold = 0.75
    requires = ("format", "correctness")

    def check(self, ctx: VerifyContext) -> LevelResult:
        task: ChatTask = ctx.task
        traj = ctx.trajectory
        messages = len(messages_sent(traj))
        calls = traj.n_calls - messages
        allowed_calls = math.ceil(task.base.oracle_calls * CALL_SLACK[task.difficulty])
        allowed_messages = len(task.needed) + EXTRA_MESSAGES
        efficiency = min(
            1.0 if calls <= allowed_calls else allowed_calls / calls,
            1.0 if messages <= allowed_messages else allowed_messages / messages,
        )
        invalid = traj.n_invalid
        score = max(0.0, efficiency - INVALID_CALL_PENALTY * invalid)
        findings = []
        if calls > allowed_calls:
            findings.append(Finding("inefficient", f"{calls} tool calls; {allowed_calls} allowed"))
        if messages > allowed_messages:
            findings.append(
                Finding("chatty", f"{messages} messages to the user; {allowed_messages} allowed")
            )
        if invalid:
            findings.append(Finding("invalid_calls", f"{invalid} invalid or failed calls"))
        return self.result(
            score,
            findings,
            metrics={
                "calls": calls,
                "messages": messages,
                "allowed_calls": allowed_calls,
                "allowed_messages": allowed_messages,
                "invalid": invalid,
            },
        )


# --------------------------------------------------------------------------------------------
# Travel's final message

_PRICE = re.compile(r"\$\s?((?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?)")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")


def plan_cities(itinerary: Any, world: Any) -> list[str]:
    """The cities a parsed itinerary stays or eats in, or rides to, in order of first visit."""
    seen: dict[str, None] = {}
    for day in itinerary.days:
        for a in day.activities:
            if a.type in ("flight", "train"):
                seen.setdefault(a.destination, None)
            elif a.place in world.places:
                seen.setdefault(world.places[a.place].city, None)
        if day.accommodation is not None and day.accommodation.place in world.places:
            seen.setdefault(world.places[day.accommodation.place].city, None)
    return list(seen)


def travel_message(task: Any, itinerary: Any, world: Any) -> str:
    """The truthful final message the oracle sends about a parsed itinerary."""
    cities = [c for c in plan_cities(itinerary, world) if c != task.origin]
    return (
        f"Here is your trip from {task.origin}: {', '.join(cities)}, from {task.start_date} to "
        f"{task.end_date}. The total cost is ${itinerary.total_cost:.2f}."
    )


def _has_word(text: str, phrase: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(phrase)}(?!\w)", text, re.IGNORECASE) is not None


class TravelMessageLevel(Level):
    """The final message about the plan: names every city it visits, the first and last dates and
    the total cost; any amount that is neither the total nor the budget, a city the trip does not
    touch or a date outside it is a false claim and scores 0. An optional judge
    (``judge(task, itinerary, message) -> [0, 1]``) is blended in like shopping's."""

    name = "communication"
    threshold = 0.75
    requires = ("format", "correctness")

    def __init__(
        self,
        world: Any,
        judge: Callable[[Any, Any, str], float | None] | None = None,
        judge_weight: float = 0.5,
    ):
        self.world = world
        self.judge = judge
        self.judge_weight = judge_weight

    def check(self, ctx: VerifyContext) -> LevelResult:
        if "itinerary" not in ctx.scratch:
            raise SkipLevel("no parsable itinerary to describe")
        itinerary = ctx.scratch["itinerary"]
        task = ctx.task.base
        message = str(ctx.trajectory.submission.arguments.get("message", ""))[:4000]
        cities = plan_cities(itinerary, self.world)
        items = [(f"name {c}", _has_word(message, c)) for c in cities if c != task.origin]
        items.append(("state the start date", task.start_date in message))
        items.append(("state the end date", task.end_date in message))
        amounts = [float(m.replace(",", "")) for m in _PRICE.findall(message)]
        total = itinerary.total_cost
        items.append(
            ("state the total cost", any(abs(a - total) <= MONEY_TOLERANCE for a in amounts))
        )
        findings = [
            Finding("rubric_miss", f"the message does not {w}") for w, ok in items if not ok
        ]
        lies = [
            Finding("false_price", f"states ${a:,.2f}; the plan costs ${total:,.2f}")
            for a in amounts
            if all(abs(a - ref) > MONEY_TOLERANCE for ref in (total, task.budget))
        ]
        allowed = {c.lower() for c in cities} | {task.origin.lower()}
        lies += [
            Finding("false_city", f"names {c}, which the trip does not visit")
            for c in sorted(self.world.cities)
            if c.lower() not in allowed and _has_word(message, c)
        ]
        lies += [
            Finding("false_date", f"states {d}, outside the trip")
            for d in sorted(set(_DATE.findall(message)))
            if not task.start_date <= d <= task.end_date
        ]
        findings += lies
        rubric = 0.0 if lies else sum(ok for _, ok in items) / len(items)
        score, metrics = rubric, {"rubric": rubric}
        if self.judge is not None and not lies:
            try:
                judged = self.judge(task, itinerary, message)
            except JudgeAbstained as e:
                judged = None
                findings.append(Finding("judge_abstained", str(e)[:300]))
            if judged is not None and not 0.0 <= float(judged) <= 1.0:
                raise ValueError(f"judge returned {judged}, expected a score in [0, 1]")
            metrics["judge"] = judged
            score = (1 - self.judge_weight) * rubric + self.judge_weight * float(judged or 0.0)
        return self.result(
            score, findings, metrics=metrics, passed=score >= self.threshold and not lies
        )


# --------------------------------------------------------------------------------------------


def build_verifier(
    domain: str, db: Any, aggregate: Any = "gated", judge: Any = None, **params: Any
) -> HierarchicalVerifier:
    """The conversation verifier of ``domain`` ("shopping" or "travel") over its sandbox DB."""
    if domain == "shopping":
        from hiergym.envs.shopping import verifier as shop

        levels: list[Level] = [
            DomainLevel(shop.FormatLevel(db)),
            ElicitationLevel(),
            CorrectnessLevel([shop.GroundingLevel(), shop.ProductLevel()]),
            DomainLevel(shop.ResponseLevel(judge), "communication", ("format", "correctness")),
        ]
    elif domain == "travel":
        from hiergym.envs.travel import verifier as trip

        inner = trip.build_verifier(db).levels
        world = trip.world_of(db)
        levels = [
            DomainLevel(inner[0]),
            ElicitationLevel(),
            CorrectnessLevel(inner[1:]),
            TravelMessageLevel(world, judge),
        ]
    else:
        raise ValueError(f"no conversation verifier for domain {domain!r}")
    return HierarchicalVerifier([*levels, EfficiencyLevel()], aggregate, **params)
