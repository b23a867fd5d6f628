"""What both travel verifiers' levels share: the format level that parses the submission, and
the way later levels reach what it parsed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hiergym.envs.core import missing_submission
from hiergym.rewards.levels import Finding, Level, LevelResult, SkipLevel, VerifyContext

MAX_SCHEMA_FINDINGS = 20

Parse = Callable[[Any, Any], "tuple[Any | None, list[str]]"]
"""``parse(raw argument, task) -> (parsed, [])`` or ``(None, every schema error by path)``."""


class FormatLevel(Level):
    """One valid submit call whose ``argument`` parses; the parsed value goes to
    ``ctx.scratch[argument]`` for the levels after it (see :func:`submitted`)."""

    name = "format"

    def __init__(self, argument: str, parse: Parse):
        self.argument = argument
        self.parse = parse

    def check(self, ctx: VerifyContext) -> LevelResult:
        sub = ctx.trajectory.submission
        if sub is None:
            return self.result(0.0, [missing_submission(ctx.trajectory)])
        parsed, errors = self.parse(sub.arguments.get(self.argument), ctx.task)
        if parsed is None:
            shown = [Finding("schema", e) for e in errors[:MAX_SCHEMA_FINDINGS]]
            if len(errors) > MAX_SCHEMA_FINDINGS:
                more = len(errors) - MAX_SCHEMA_FINDINGS
                shown.append(Finding("schema", f"... and {more} more schema errors"))
            return self.result(0.0, shown)
        ctx.scratch[self.argument] = parsed
        return self.result(1.0)


def submitted(ctx: VerifyContext, argument: str) -> Any:
    """What the format level parsed; a later level is skipped when it parsed nothing."""
    if argument not in ctx.scratch:
        raise SkipLevel(f"no parsable {argument} to judge")
    return ctx.scratch[argument]


class WorldLevel(Level):
    """A level that reads a sandbox view (the travel World, TravelPlanner's database)."""

    def __init__(self, world: Any):
        self.world = world
