"""What a simulated user holds: the slots of a conversational task and how questions name them.

A :class:`ChatTask` wraps one task of a single-agent domain (a ``ShoppingTask``, a ``TravelTask``:
its ``base``, which stays the ground truth the domain verifier judges). Its **slots** are every
question an assistant could ask, each of one kind:

* ``need`` — a hidden requirement (the budget, a colour, the travel dates): the user states it only
  when asked, and the assistant needs it;
* ``open`` — a fair question the user has no preference on ("I don't mind about the size");
* ``stated`` — said in the opening request (the product type, the destination); asking it again is
  a re-ask;
* ``off`` — off the task (the brand, the airline): the user does not care, the question is wasted.

A question names a slot when a *question sentence* of the assistant's message (one ending in ``?``,
or one saying "tell me", "let me know") matches one of the slot's patterns (:func:`asked_slots`).
The rule-based user and the verifier's elicitation level both read questions with this one
function, so what the user answers and what the verifier credits never disagree.

On hard tasks one ``need`` slot changes mid-conversation (:class:`Change`): the first answer is a
decoy, and the user corrects it in their next reply; the ``base`` task holds the final value.

Everything here is a pure function of the base task (and, for shopping, the catalog), seeded by the
task id: the same task gives the same slots, opening and change in every process.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

SLOT_KINDS = ("need", "open", "stated", "off")


@dataclass(frozen=True)
class Slot:
    """One thing an assistant may ask about, the user's answer, and how the oracle asks it."""

    name: str
    kind: str
    answer: str
    patterns: tuple[str, ...]
    question: str = ""
    values: tuple[str, ...] = ()
    """The telling values of a ``need`` slot (an amount, a colour, a city, a date): what a
    guarded LLM user must not say before the slot was asked."""

    def asked_in(self, sentence: str) -> bool:
        return _compiled("|".join(f"(?:{p})" for p in self.patterns)).search(sentence) is not None


@dataclass(frozen=True)
class Change:
    """A hard task's change of mind: ``slot`` is first answered with ``before``; the user's next
    reply adds ``after`` (the base task holds the value ``after`` states)."""

    slot: str
    before: str
    after: str


@dataclass(frozen=True)
class ChatTask:
    """A conversational task over a domain task (``base``, the ground truth).

    Attribute lookups it does not define fall through to ``base`` (``task.budget``,
    ``task.origin``), so the domain's own helpers can read a ChatTask where they read a task.
    """

    task_id: str
    split: str
    difficulty: str
    domain: str
    base: Any
    opening: str
    slots: tuple[Slot, ...]
    change: Change | None = None

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def slot(self, name: str) -> Slot:
        for s in self.slots:
            if s.name == name:
                return s
        raise KeyError(f"no slot {name!r}; slots are {[s.name for s in self.slots]}")

    def of_kind(self, kind: str) -> tuple[Slot, ...]:
        return tuple(s for s in self.slots if s.kind == kind)

    @property
    def needed(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.of_kind("need"))


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_SENTENCE = re.compile(r"[^.!?\n]*[.!?\n]?")
_ASKING = re.compile(
    r"\b(tell me|let me know|please (share|specify|confirm)|i need to know)\b", re.IGNORECASE
)
MAX_MESSAGE_CHARS = 4000
"""Questions are read from the first 4,000 characters of a message (longer ones are padding)."""


def question_sentences(text: str) -> list[str]:
    """The sentences of ``text`` that ask something: end in ``?`` or say "tell me"/"let me know"."""
    text = text[:MAX_MESSAGE_CHARS]
    return [
        s.strip()
        for s in _SENTENCE.findall(text)
        if s.strip() and (s.strip().endswith("?") or _ASKING.search(s))
    ]


def asked_slots(task: ChatTask, text: str) -> tuple[str, ...]:
    """The slots a message asks about, in the task's slot order (each at most once)."""
    return _asked(task.slots, text)


@lru_cache(maxsize=4096)
def _asked(slots: tuple[Slot, ...], text: str) -> tuple[str, ...]:
    # the user answers, records and the verifier reads each message: read it once
    questions = " ?\n".join(question_sentences(text))  # "?" ends every pattern's reach
    if not questions:
        return ()
    return tuple(s.name for s in slots if s.asked_in(questions))


def _w(*words: str) -> tuple[str, ...]:
    """Word-bounded patterns, one per word or phrase."""
    return tuple(rf"\b{w}\b" for w in words)


def _join(words: Sequence[str]) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# --------------------------------------------------------------------------------------------
# Shopping

SHOPPING_OPTION_NAMES = (
    "size",
    "color",
    "flavor",
    "style",
    "model",
    "scent",
    "pack",
    "capacity",
    "count",
    "voltage",
    "kit",
    "form",
    "metal",
)
"""Every option dimension of the catalog (the target's own are added if new): one the target product
lacks is off the task."""
_OPTION_PATTERNS = {"color": _w("colou?rs?"), "flavor": _w("flavou?rs?"), "pack": _w("packs?")}
_SHOPPING_OFF = {
    "brand": (_w("brands?", "manufacturer"), "brand"),
    "delivery": (_w("deliver(y|ed)?", "shipping", "ship"), "delivery"),
    "quantity": (_w("quantity", "how many (do you|would you)"), "quantity"),
    "gift": (_w("gifts?", "gift wrap(ping)?"), "gift wrapping"),
    "warranty": (_w("warranty", "guarantee"), "warranty"),
    "returns": (_w("returns?", "return policy", "refunds?"), "return policy"),
}


def _option_phrase(name: str, value: str) -> str:
    return f"the {value} color" if name == "color" else f"{name} {value}"


def shopping_task(base: Any, doc: dict[str, Any]) -> ChatTask:
    """The conversational form of a ShoppingTask; ``doc`` is its target product's catalog entry."""
    rng = random.Random(f"hiergym/dialogue/{base.task_id}")
    ptype = base.product_type
    goal = dict(base.options)
    slots = [
        Slot(
            "product",
            "stated",
            f"As I said, I'm looking for a {ptype}.",
            _w(
                "what (kind|type|sort) of (product|item|thing)",
                "what are you (looking|shopping) for",
                "what (product|item) (do|would|are)",
            ),
        ),
        Slot(
            "features",
            "need",
            f"It needs to be {_join(base.attributes)}.",
            _w(
                "features?",
                "attributes?",
                "requirements?",
                "must[- ]haves?",
                "properties",
                "qualities",
            ),
            "Which features does it need to have?",
            tuple(base.attributes),
        ),
    ]
    for name in dict.fromkeys([*SHOPPING_OPTION_NAMES, *doc["options"], *goal]):
        patterns = _OPTION_PATTERNS.get(name, _w(f"{name}s?"))
        if name in goal:
            slots.append(
                Slot(
                    name,
                    "need",
                    f"I'd like {_option_phrase(name, goal[name])}.",
                    patterns,
                    f"Which {name} would you like?",
                    (goal[name],),
                )
            )
        elif name in doc["options"]:
            slots.append(Slot(name, "open", f"I don't mind about the {name}.", patterns))
        else:
            slots.append(Slot(name, "off", f"I don't care about the {name}.", patterns))
    slots.append(
        Slot(
            "budget",
            "need",
            f"My budget is ${base.budget:.2f}.",
            _w("budget", "price", "spend", "costs?", "afford", "how much"),
            "What is your budget?",
            (f"{base.budget:.2f}", f"{base.budget:g}"),
        )
    )
    for name, (patterns, label) in _SHOPPING_OFF.items():
        slots.append(Slot(name, "off", f"I don't care about the {label}.", patterns))
    opening = rng.choice(
        [
            f"Hi! I'm looking for a {ptype}.",
            f"Hello, I need a {ptype}. Can you help me?",
            f"I want to buy a {ptype}.",
        ]
    )
    change = None
    if base.difficulty == "hard":
        change = _shopping_change(rng, base, doc, goal)
    return ChatTask(
        f"chat-{base.task_id}",
        base.split,
        base.difficulty,
        "shopping",
        base,
        opening,
        tuple(slots),
        change,
    )


def _shopping_change(
    rng: random.Random, base: Any, doc: dict[str, Any], goal: dict[str, str]
) -> Change:
    """A different value of one requested option first (then the real one), or a lower budget."""
    for name in sorted(goal):
        others = sorted(v for v in doc["options"].get(name, ()) if v != goal[name])
        if others:
            decoy = rng.choice(others)
            return Change(
                name,
                f"I'd like {_option_phrase(name, decoy)}.",
                f"Actually, I changed my mind about the {name}: "
                f"I'd like {_option_phrase(name, goal[name])} instead.",
            )
    return Change(
        "budget",
        f"My budget is ${base.budget * 0.8:.2f}.",
        f"Actually, I can spend a bit more: my budget is ${base.budget:.2f}.",
    )


# --------------------------------------------------------------------------------------------
# Travel

_TRAVEL_OFF = {
    "airline": (_w("airlines?", "carrier"), "airline"),
    "seat": (_w("seats?", "window or aisle"), "seats"),
    "insurance": (
        _w(
            "insurance",
        ),
        "travel insurance",
    ),
    "documents": (_w("visas?", "passports?"), "travel documents"),
    "luggage": (_w("luggage", "baggage", "bags?"), "luggage"),
    "weather": (_w("weather", "climate"), "weather"),
}


def travel_task(base: Any) -> ChatTask:
    """The conversational form of a TravelTask."""
    from hiergym.envs.travel.clock import add_days, all_dates
    from hiergym.envs.travel.tasks import constraint_phrases, destination_phrase, people_phrase

    rng = random.Random(f"hiergym/dialogue/{base.task_id}")
    where = destination_phrase(base.destination, base.visiting_city_number)

    def dates(start: str) -> str:
        return f"We travel from {start} to {add_days(start, base.days - 1)} ({base.days} days)."

    slots = [
        Slot(
            "destination",
            "stated",
            f"As I said, we want to go to {where}.",
            _w("destination", "where to", "where (do|would) you (like|want) to go"),
        ),
        Slot(
            "origin",
            "need",
            f"We're leaving from {base.origin}.",
            _w(
                "origin",
                "(leaving|departing|starting|travel+ing|coming|flying) from",
                "home city",
                "starting (city|point)",
            )
            + (r"\bwhere\b[^?]*\bfrom\b",),
            "Which city are you leaving from?",
            (base.origin,),
        ),
        Slot(
            "dates",
            "need",
            dates(base.start_date),
            _w("dates?", "when", "how long", "how many days", "duration"),
            "What are your travel dates?",
            (base.start_date, add_days(base.start_date, base.days - 1)),
        ),
        Slot(
            "people",
            "need",
            f"We are {people_phrase(base.people)}.",
            _w(
                "how many (people|travel+ers|persons|guests|adults|of you)",
                "how many in your (party|group)",
                "people",
                "travel+ers",
                "group size",
            ),
            "How many people are travelling?",
        ),
        Slot(
            "budget",
            "need",
            f"Our budget is ${base.budget:,.2f}.",
            _w("budget", "spend", "afford", "how much", "costs?"),
            "What is your budget for the whole trip?",
            (f"{base.budget:,.2f}", f"{base.budget:.2f}", f"{base.budget:g}"),
        ),
    ]
    constraint = {
        "room": (base.room_type, constraint_phrases(base.room_type, None, (), None)),
        "house_rule": (base.house_rule, constraint_phrases(None, base.house_rule, (), None)),
        "cuisine": (base.cuisines, constraint_phrases(None, None, base.cuisines, None)),
        "transport": (base.transport, constraint_phrases(None, None, (), base.transport)),
    }
    patterns = {
        "room": _w("rooms?", "room types?"),
        "house_rule": _w("house rules?", "pets?", "smoking", "parties", "children", "visitors"),
        "cuisine": _w("cuisines?", "food", "eat"),
        "transport": _w("transport(ation)?", "fly", "flights?", "trains?", "driv(e|ing)"),
    }
    questions = {
        "room": "What kind of room do you need?",
        "house_rule": "Are there house rules the places you stay at must allow?",
        "cuisine": "Are there cuisines you want to try?",
        "transport": "Any transportation you want to avoid?",
    }
    labels = {
        "room": "the room",
        "house_rule": "house rules",
        "cuisine": "the food",
        "transport": "the transport",
    }
    for name, (value, phrase) in constraint.items():
        if value:
            answer = phrase[0][0].upper() + phrase[0][1:] + "."
            slots.append(Slot(name, "need", answer, patterns[name], questions[name]))
        else:
            slots.append(Slot(name, "open", f"No preference on {labels[name]}.", patterns[name]))
    prefs = []
    if base.min_hotel_rating:
        prefs.append(f"accommodation rated at least {base.min_hotel_rating}")
    if base.min_restaurant_rating:
        prefs.append(f"restaurants rated at least {base.min_restaurant_rating}")
    rating_patterns = _w("ratings?", "rated", "stars?")
    if prefs:
        slots.append(
            Slot(
                "ratings",
                "need",
                f"We'd like {_join(prefs)}.",
                rating_patterns,
                "Do you have minimum ratings in mind?",
            )
        )
    else:
        slots.append(Slot("ratings", "open", "Ratings don't matter much to us.", rating_patterns))
    visit_patterns = _w("attractions?", "sightseeing", "things to (do|see)")
    if base.attractions_per_day > 1:
        slots.append(
            Slot(
                "attractions",
                "need",
                f"We'd like {base.attractions_per_day} attractions a day.",
                visit_patterns,
                "How many attractions a day would you like?",
            )
        )
    else:
        slots.append(Slot("attractions", "open", "One attraction a day is plenty.", visit_patterns))
    for name, (pats, label) in _TRAVEL_OFF.items():
        slots.append(Slot(name, "off", f"I don't care about the {label}.", pats))
    opening = rng.choice(
        [
            f"Hi! I'd like to plan a trip to {where}.",
            f"Hello, can you help me plan a trip to {where}?",
            f"We want to visit {where}. Can you plan it?",
        ]
    )
    change = None
    if base.difficulty == "hard":
        days = all_dates()
        latest = len(days) - base.days
        choices = [d for d in days[: latest + 1] if d != base.start_date]
        decoy = rng.choice(choices)
        change = Change(
            "dates",
            dates(decoy),
            "Sorry, I got the dates wrong: "
            + dates(base.start_date)[0].lower()
            + dates(base.start_date)[1:],
        )
    return ChatTask(
        f"chat-{base.task_id}",
        base.split,
        base.difficulty,
        "travel",
        base,
        opening,
        tuple(slots),
        change,
    )
