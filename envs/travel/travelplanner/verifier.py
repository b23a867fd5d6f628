"""TravelPlanner verifier: format -> grounding -> commonsense -> hard, each gating the next.

* format — one submission whose plan has TravelPlanner's shape, one entry per day (plan.py);
* grounding (turn level, hiergym's addition) — what TravelPlanner's evaluation reads was shown to
  the agent by a tool before its submitting action: every restaurant, attraction and
  accommodation (in a city of its day), every flight by its number on its day with the leg's
  cities, every drive or taxi by its mode and cities (the database costs the budget adds); and
  the trip goes where the query asks (TravelPlanner checks neither: its sandbox check matches a
  name by containment anywhere in a city, and it ignores an attraction written without a
  trailing ';'). A leg's detail strings (flight times; a drive's duration, distance and stated
  cost), which the evaluation never reads, are compared too and reported as ``detail_differs``
  findings that do not fail the level (TravelPlanner's own annotated plans carry durations and
  distances from live look-ups). A plan that names nothing grounds nothing: score 0;
* commonsense — TravelPlanner's 8 commonsense checks, as its evaluation runs them (evaluate.py);
* hard — TravelPlanner's 5 hard checks (budget and the query's local constraints), run, as in
  TravelPlanner, only on plans that pass ``is_not_absent`` and ``is_valid_information_in_sandbox``.

Reward integrity: commonsense and hard only mean something for a plan the agent was shown, and
hard only for a commonsense-valid one. Each still runs TravelPlanner's checks (its per-check
answers stay in the level's metrics, as TravelPlanner's evaluation gives them), but scores 0, not
passed, with a ``not_applicable`` finding when a level it stands on failed, so no aggregator pays
for a memorised or invented plan's commonsense. A plan passes TravelPlanner's evaluation exactly
when every check in the commonsense and hard metrics is true.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from hiergym.envs.evidence import Citations
from hiergym.rewards.levels import (
    Finding,
    HierarchicalVerifier,
    LevelResult,
    SkipLevel,
    VerifyContext,
)

from ..levels import FormatLevel, WorldLevel, submitted
from .database import TravelPlannerDB
from .evaluate import COMMONSENSE_CHECKS, HARD_CHECKS
from .plan import day_cities, leg, parse_plan, places
from .tasks import TravelPlannerTask

COST_TOLERANCE = 0.5  # TravelPlanner's route costs are whole dollars
# Findings that do not fail grounding: a leg's detail strings (a flight's times, a drive's
# duration, distance and stated cost), which TravelPlanner's evaluation never reads (the budget
# costs a leg from the database by its mode and cities) and which its annotators copied from
# live look-ups that the distributed database does not always match.
NON_GATING = frozenset({"detail_differs"})
NOT_SCORED = "(reported, not scored: TravelPlanner's evaluation does not read it)"
LISTINGS = {
    "search_accommodations": "accommodation",
    "search_restaurants": "restaurant",
    "search_attractions": "attraction",
}


def _plan(ctx: VerifyContext) -> list[dict[str, Any]]:
    return submitted(ctx, "plan")


class ChecksLevel(WorldLevel):
    """TravelPlanner checks as a level: the score is the share of the applicable checks passed (a
    check answering None does not apply to the query); ``metrics`` holds every check's answer."""

    world: TravelPlannerDB
    checks: dict[str, Any]

    def run(self, ctx: VerifyContext) -> tuple[LevelResult, dict[str, Any]]:
        plan, q = _plan(ctx), ctx.task.record
        outcomes = {name: check(q, plan, self.world) for name, check in self.checks.items()}
        applicable = {n: r for n, r in outcomes.items() if r[0] is not None}
        findings = [Finding(n, why or n) for n, (ok, why) in applicable.items() if not ok]
        score = sum(bool(ok) for ok, _ in applicable.values()) / max(1, len(applicable))
        metrics = {n: ok for n, (ok, _) in outcomes.items()}
        return self.result(score, findings, passed=not findings, metrics=metrics), outcomes


def _not_applicable(result: LevelResult, failed: str) -> LevelResult:
    """``result`` with score 0 and not passed (its metrics kept): ``failed`` did not pass."""
    note = Finding(
        "not_applicable",
        f"not scored: it only means something for a plan that passes {failed}, which failed",
    )
    return replace(result, score=0.0, passed=False, findings=(note, *result.findings))


class CommonsenseLevel(ChecksLevel):
    name = "commonsense"
    checks = COMMONSENSE_CHECKS

    def check(self, ctx: VerifyContext) -> LevelResult:
        result, ctx.scratch["commonsense"] = self.run(ctx)
        if not ctx.scratch.get("grounded"):
            return _not_applicable(result, "grounding")
        return result


class HardLevel(ChecksLevel):
    name = "hard"
    checks = HARD_CHECKS

    def check(self, ctx: VerifyContext) -> LevelResult:
        commonsense = ctx.scratch.get("commonsense") or {}
        gate = ("is_not_absent", "is_valid_information_in_sandbox")
        if not all(commonsense.get(name, (False,))[0] for name in gate):
            raise SkipLevel(
                "TravelPlanner runs the hard checks only on plans that pass is_not_absent and "
                "is_valid_information_in_sandbox"
            )
        result = self.run(ctx)[0]
        if not ctx.scratch.get("grounded"):
            return _not_applicable(result, "grounding")
        if not all(ok is None or bool(ok) for ok, _ in commonsense.values()):
            return _not_applicable(result, "commonsense")
        return result


def _told(r: Any) -> tuple[Any, dict[Any, Any]] | None:
    """What one successful TravelPlanner tool result lists: its kind and its rows by key."""
    data = r.data
    if r.name in LISTINGS:
        return (LISTINGS[r.name], data["city"]), {x["name"]: x for x in data["results"]}
    if r.name == "search_flights":
        route = {"origin": data["origin"], "destination": data["destination"]}
        return ("flight", data["date"]), {x["number"]: {**route, **x} for x in data["results"]}
    if r.name == "get_distance" and data.get("cost"):
        route = (data["origin"], data["destination"])
        return "route", {(*route, mode): data for mode in data["cost"]}
    return None


_LEG_MODES = {"Self-driving": "self-driving", "Taxi": "taxi"}


def _same_number(stated: str, told: Any) -> bool:
    try:
        return abs(float(stated.replace(",", "")) - float(told)) <= COST_TOLERANCE
    except (TypeError, ValueError):
        return False


class GroundingLevel(WorldLevel):
    name = "grounding"
    world: TravelPlannerDB

    def check(self, ctx: VerifyContext) -> LevelResult:
        plan = _plan(ctx)
        task: TravelPlannerTask = ctx.task
        told = Citations(ctx.trajectory, _told)
        found: list[Finding] = []
        items = 0
        visited: set[str] = set()
        for i, unit in enumerate(plan):
            label = f"day {i + 1}"
            cities = day_cities(unit)
            visited.update(cities)
            ride = leg(unit)
            if ride is not None:
                items += 1
                found += self._leg(ride, label, task.dates[i] if i < len(task.dates) else "", told)
            for p in places(unit):
                items += 1
                what = f"{label} {p.field} {p.name!r} ({p.city})"
                hit = told.first((p.kind, p.city), p.name)
                if hit is None:
                    found.append(
                        Finding(
                            "ungrounded", f"{what}: no {p.kind} search in this episode showed it"
                        )
                    )
                # Where the traveller is: either city of a travel day, the night's city for a bed.
                where = cities[-1:] if p.kind == "accommodation" else cities
                if p.city not in where:
                    found.append(
                        Finding(
                            "wrong_city",
                            f"{what}: on {label} the traveller is in {' or '.join(where)}",
                        )
                    )
        found += self._destination(task, visited - {task.org})
        gating = [f for f in found if f.code not in NON_GATING]
        if not items:  # nothing grounded is not "all grounded"
            found.append(Finding("nothing_to_ground", "the plan names nothing to ground"))
            ctx.scratch["grounded"] = False
            return self.result(0.0, found, passed=False, metrics={"items": 0})
        ctx.scratch["grounded"] = not gating
        score = max(0.0, 1.0 - len(gating) / items)
        return self.result(
            score,
            [*gating, *(f for f in found if f.code in NON_GATING)],
            passed=not gating,
            metrics={"items": items, "details_differ": len(found) - len(gating)},
            evidence=told.cited,
        )

    def _leg(self, ride: Any, label: str, date: str, told: Citations) -> list[Finding]:
        what = (
            f"{label} transportation ({ride.mode or 'unknown'} {ride.origin} -> {ride.destination})"
        )
        if ride.mode == "Flight":
            hit = told.first(("flight", date), ride.number)
            if hit is None:
                return [
                    Finding(
                        "ungrounded", f"{what}: no flight search showed {ride.number!r} on {date}"
                    )
                ]
            facts, turn = hit[1], hit[0]
            claimed = {"origin": ride.origin, "destination": ride.destination, **ride.details}
            wrong = [k for k in ("origin", "destination") if claimed[k] != facts[k]]
            details = [k for k in ("depart", "arrive") if k in claimed and claimed[k] != facts[k]]
        elif ride.mode in _LEG_MODES:
            mode = _LEG_MODES[ride.mode]
            hit = told.first("route", (ride.origin, ride.destination, mode))
            if hit is None:
                return [Finding("ungrounded", f"{what}: get_distance never showed this route")]
            turn = hit[0]
            facts = {**hit[1], "cost": hit[1]["cost"][mode]}
            wrong = []
            details = [
                k
                for k in ("duration", "distance", "cost")
                if k in ride.details
                and not (
                    _same_number(ride.details[k], facts[k])
                    if k == "cost"
                    else ride.details[k] == facts[k]
                )
            ]
        else:
            return [Finding("ungrounded", f"{what}: not a flight, self-driving or taxi leg")]

        def differs(k: str) -> str:
            planned = ride.details.get(k, getattr(ride, k, None))
            return f"{what}: {k} is {facts[k]} in the response, planned {planned}"

        return [Finding("mismatch", differs(k), turn) for k in wrong] + [
            Finding("detail_differs", f"{differs(k)} {NOT_SCORED}", turn) for k in details
        ]

    def _destination(self, task: TravelPlannerTask, visited: set[str]) -> list[Finding]:
        if task.visiting_city_number == 1:
            off = visited - {task.dest}
            missing = task.dest not in visited
        else:
            off = {c for c in visited if self.world.city_state.get(c) != task.dest}
            missing = False
        findings = []
        if off:
            findings.append(
                Finding(
                    "off_request",
                    f"{', '.join(sorted(off))}: not in {task.dest}, where the query goes",
                )
            )
        if missing:
            findings.append(Finding("off_request", f"the plan never goes to {task.dest}"))
        return findings


def build_verifier(
    db: TravelPlannerDB, aggregate: Any = "gated", **params: Any
) -> HierarchicalVerifier:
    return HierarchicalVerifier(
        [
            FormatLevel("plan", lambda raw, task: parse_plan(raw, task.days)),
            GroundingLevel(db),
            CommonsenseLevel(db),
            HardLevel(db),
        ],
        aggregate,
        **params,
    )
