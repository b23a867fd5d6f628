"""ArithEnv: sum a list of integers with an ``add`` tool, then ``submit`` the total."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hiergym.envs.core import TaskSet, ToolEnv
from hiergym.envs.sandbox import Sandbox
from hiergym.envs.tools import Toolbox, ToolCall, tool
from hiergym.rewards.levels import Finding, HierarchicalVerifier, Level, SkipLevel
from hiergym.testing import MALFORMED_JSON, NO_SUBMIT, Mutant


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


class Correct(Level):
    name = "correct"

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
        return HierarchicalVerifier([Format(), Correct()], aggregate, **params)

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

        return [Mutant("off_by_one", "correct", off_by_one), NO_SUBMIT, MALFORMED_JSON]
