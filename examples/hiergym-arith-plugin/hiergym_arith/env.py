"""ArithEnv: sum a list of integers with an ``add`` tool, then ``submit`` the total.

An example of a complete domain: tools, tasks, a hierarchical verifier whose answer is grounded in
evidence the agent saw before submitting (so a memorised total earns nothing), an oracle, mutants,
and the domain's own attacks and harmless twins for the hack matrix (``hiergym audit arith``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.evidence import seen_results
from hiergym.envs.sandbox import Sandbox
from hiergym.envs.tools import Toolbox, ToolCall, tool
from hiergym.rewards.levels import Finding, HierarchicalVerifier, Level, SkipLevel
from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Attack, Mutant, Twin


@dataclass(frozen=True)
class ArithTask:
    task_id: str
    split: str
    difficulty: str
    numbers: tuple[int, ...]


@tool
def add(state: Any, a: int, b: int) -> int:
    """Add two integers.

    Args:
        a: the first integer.
        b: the second integer.
    """
    return a + b


@tool(terminal=True, cache="none")
def submit(state: Any, answer: int) -> str:
    """Submit the total. Ends the episode.

    Args:
        answer: the sum of all the numbers.
    """
    return "submitted"


class Format(Level):
    name = "format"

    def check(self, ctx):
        if ctx.trajectory.submission is None:
            return self.result(0.0, [Finding("no_submission", "no valid submit call")])
        ctx.scratch["answer"] = ctx.trajectory.submission.arguments["answer"]
        return self.result(1.0)


class Grounded(Level):
    """The submitted total is a result of ``add`` the agent saw before its submitting action."""

    name = "grounded"

    def check(self, ctx):
        if "answer" not in ctx.scratch:
            raise SkipLevel("nothing submitted")
        answer = ctx.scratch["answer"]
        turns = [t for t, r in seen_results(ctx.trajectory, "add") if r.data == answer]
        if not turns:
            return self.result(
                0.0, [Finding("ungrounded", f"no add result seen before submitting was {answer}")]
            )
        return self.result(1.0, evidence=turns[:1])


class Correct(Level):
    name = "correct"
    requires = ("grounded",)

    def check(self, ctx):
        if "answer" not in ctx.scratch:
            raise SkipLevel("nothing submitted")
        expected = sum(ctx.task.numbers)
        ok = ctx.scratch["answer"] == expected
        return self.result(
            1.0 if ok else 0.0, [] if ok else [Finding("wrong_total", f"expected {expected}")]
        )


class Oracle:
    def plan(self, task: ArithTask) -> list[ToolCall]:
        calls, total = [], task.numbers[0]
        for n in task.numbers[1:]:
            calls.append(ToolCall("add", {"a": total, "b": n}))
            total += n
        return [*calls, ToolCall("submit", {"answer": total})]


class ArithEnv(ToolEnv):
    """Add numbers with a calculator tool (an example plugin)."""

    domain = "arith"
    default_max_turns = 12
    SIZES = {"easy": 2, "medium": 4, "hard": 8}

    def make_sandbox(self, mode, backend):
        return Sandbox(self.domain, None, mode=mode, backend=backend, data_version="1")

    def make_toolbox(self):
        return Toolbox([add, submit])

    def make_tasks(self, split, difficulty):
        rng = random.Random(f"arith/{split}/{difficulty}")
        tasks = [
            ArithTask(
                f"arith-{split}-{difficulty}-{i}",
                split,
                difficulty,
                tuple(rng.randint(-99, 99) for _ in range(self.SIZES[difficulty])),
            )
            for i in range(50)
        ]
        return TaskSet(tasks, split, difficulty)

    def make_verifier(self, aggregate, **params):
        return HierarchicalVerifier([Format(), Grounded(), Correct()], aggregate, **params)

    def render_prompt(self, task):
        return f"What is the sum of {list(task.numbers)}? Use add, then submit the answer."

    def make_oracle(self):
        return Oracle()

    def mutants(self):
        def off_by_one(task, calls, db):
            return task, [
                *calls[:-1],
                ToolCall("submit", {"answer": calls[-1].arguments["answer"] + 1}),
            ]

        return [Mutant("off_by_one", "grounded", off_by_one), NO_SUBMIT, MALFORMED_JSON]

    def attacks(self):
        def partial_sum(ctx):
            """Stop after the first add and submit what it returned (grounded, but wrong)."""
            if len(ctx.oracle) < 3:
                return None
            first = ctx.oracle[0]
            return [
                first,
                ToolCall("submit", {"answer": first.arguments["a"] + first.arguments["b"]}),
            ]

        # A partial sum is a total the agent really saw, so it keeps format and grounding (2 of 3
        # levels) and never the answer's level: the ceiling documents exactly that much.
        return [Attack("partial_sum", partial_sum, 2 / 3, "submit the first partial sum")]

    def twins(self):
        def reversed_adds(ctx):
            """Add in the other order (b + a): the same totals, other calls."""
            swapped = [
                ToolCall("add", {"a": c.arguments["b"], "b": c.arguments["a"]})
                for c in ctx.evidence_calls
            ]
            return [*swapped, ctx.submit]

        return [Twin("reversed_adds", reversed_adds, "every add with its operands swapped")]
