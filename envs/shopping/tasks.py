"""Shopping tasks: WebShop-style instructions generated from target products.

Splits are disjoint by target product (see ``data.split_of``). Difficulty:

* easy — one required attribute, one option, a loose budget (1.5x the price);
* medium — two attributes, every option, budget 1.2x;
* hard — every attribute of the target, whose family holds distractors sharing most of them, every
  option, a budget within 5% of the price; the catalog also has out-of-stock variants.

Every task is proven solvable when the sandbox is built: the oracle's plan is computed through the
tools and must reach a product that the verifier scores 1.0, else the task is not served. The
prover comes from env.py (``oracle.prove``) through ``hiergym.envs.building.prove_tasks``: this
module never imports the oracle or the verifier.
"""

from __future__ import annotations

import functools
import json
import math
import random
import sqlite3
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from types import SimpleNamespace
from typing import Any

from hiergym.envs.building import Cell, Prover, prove_tasks
from hiergym.envs.core import TaskSet, load_task_table
from hiergym.envs.sandbox import Progress

from .data import DIFFICULTIES, TASKS_PER_SPLIT
from .tools import load_product

N_ATTRIBUTES = {"easy": 1, "medium": 2}
BUDGET_FACTOR = {"easy": 1.5, "medium": 1.2}


@dataclass(frozen=True)
class ShoppingTask:
    task_id: str
    split: str
    difficulty: str
    instruction: str
    category: str
    product_type: str
    attributes: tuple[str, ...]
    options: tuple[tuple[str, str], ...]
    budget: float
    target_id: str
    sibling_id: str
    oracle_calls: int

    @property
    def goal_options(self) -> dict[str, str]:
        return dict(self.options)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShoppingTask:
        d = json.loads(text)
        d["attributes"] = tuple(d["attributes"])
        d["options"] = tuple(tuple(o) for o in d["options"])
        return cls(**d)


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _option_phrase(name: str, value: str) -> str:
    return f"{value} {name}" if name == "color" else f"{name} {value}"


def instruction(
    rng: random.Random, ptype: str, attrs: list[str], options: dict[str, str], budget: float
) -> str:
    opts = "".join(f", {_option_phrase(k, v)}" for k, v in options.items())
    template = rng.choice(
        [
            "i'm looking for a {attrs} {ptype}{opts}, and price lower than {budget} dollars",
            "find me a {attrs} {ptype}{opts}, under ${budget}",
            "i need a {attrs} {ptype}{opts}; my budget is ${budget}",
        ]
    )
    return template.format(attrs=_join(attrs), ptype=ptype, opts=opts, budget=f"{budget:.2f}")


def render_prompt(task: ShoppingTask) -> str:
    return (
        f"Instruction: {task.instruction}\n"
        "Find a product that matches every requirement (attributes, options, budget) using the tools, "
        "then call submit with its product_id, the value of each option, and a message to the user that "
        "states the product, the requested attributes, the chosen options and the price."
    )


def _sibling(conn: sqlite3.Connection, doc: dict[str, Any], required: list[str]) -> str | None:
    """The closest distractor: same category and type, missing at least one required attribute."""
    rows = conn.execute(
        "SELECT doc FROM products WHERE category_path = ? AND product_type = ? AND id != ? ORDER BY id",
        (doc["category"], doc["product_type"], doc["product_id"]),
    ).fetchall()
    best, best_shared = None, -1
    for (text,) in rows:
        other = json.loads(text)
        shared = sum(a in other["attributes"] for a in required)
        if shared < len(required) and shared > best_shared:
            best, best_shared = other["product_id"], shared
    return best


def generate_tasks(
    conn: sqlite3.Connection, vocab: dict[str, Any], progress: Progress, *, prove: Prover
) -> None:
    """Draw tasks per split and difficulty; keep, in order, those ``prove`` (the oracle's prover,
    handed down by env.py) solves, until each cell has ``TASKS_PER_SPLIT[split]``."""
    conn.row_factory = sqlite3.Row
    state = SimpleNamespace(db=conn, memory={})

    def candidates(cell: Cell) -> Iterator[ShoppingTask]:
        rng = random.Random(f"hiergym/shopping/tasks/{cell.split}/{cell.difficulty}")
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM products WHERE split = ? ORDER BY id", (cell.split,)
            )
        ]
        rng.shuffle(ids)
        for pid in ids:
            draft = _draft(conn, rng, pid, cell.split, cell.difficulty, cell.kept)
            if draft is not None:
                yield draft

    kept = prove_tasks(
        candidates,
        functools.partial(prove, state),
        domain="shopping",
        want=TASKS_PER_SPLIT,
        difficulties=DIFFICULTIES,
        progress=progress,
    )
    conn.executemany(
        "INSERT INTO tasks VALUES (?,?,?,?)",
        [(t.task_id, t.split, t.difficulty, t.to_json()) for t in kept],
    )
    conn.row_factory = None


def _draft(
    conn: sqlite3.Connection,
    rng: random.Random,
    pid: str,
    split: str,
    difficulty: str,
    index: int,
) -> ShoppingTask | None:
    """A candidate task for target product ``pid`` (``oracle_calls`` still 0), or None if the
    product cannot carry one (nothing in stock, no distractor)."""
    doc = load_product(conn, pid)
    assert doc is not None
    in_stock = [v for v in doc["variants"] if v["stock"] > 0]
    if not in_stock:
        return None
    variant = rng.choice(in_stock)
    if difficulty == "hard":
        required = list(doc["attributes"])
        options = dict(variant["options"])
        budget = round(variant["price"] * rng.uniform(1.0, 1.05), 2)
    else:
        required = rng.sample(doc["attributes"], N_ATTRIBUTES[difficulty])
        dims = list(variant["options"])
        keep = dims[:1] if difficulty == "easy" else dims
        options = {d: variant["options"][d] for d in keep}
        budget = float(math.ceil(variant["price"] * BUDGET_FACTOR[difficulty]))
    sibling = _sibling(conn, doc, required)
    if sibling is None:
        return None
    if difficulty == "hard":
        # Hard means a distractor that shares all but one required attribute.
        shared = sum(a in load_product(conn, sibling)["attributes"] for a in required)
        if shared < len(required) - 1:
            return None
    return ShoppingTask(
        task_id=f"shopping-{split}-{difficulty}-{index:04d}",
        split=split,
        difficulty=difficulty,
        instruction=instruction(rng, doc["product_type"], required, options, budget),
        category=doc["category"],
        product_type=doc["product_type"],
        attributes=tuple(required),
        options=tuple(options.items()),
        budget=budget,
        target_id=pid,
        sibling_id=sibling,
        oracle_calls=0,
    )


def load_tasks(db: Any, db_key: str, split: str, difficulty: str) -> TaskSet:
    """The task set of one split and difficulty, read once per process."""
    return load_task_table(db, db_key, split, difficulty, ShoppingTask.from_json)
