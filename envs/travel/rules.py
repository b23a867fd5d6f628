"""What a task's hard constraints mean, in one place (oracle, verifier and TravelPlanner evaluator).

Values follow TravelPlanner's ``local_constraint``: a room type of "entire room", "private room",
"shared room" or "not shared room"; a house rule the group needs ("parties" means the place must
not forbid parties); cuisines to eat at least once; "no flight" or "no self-driving".
"""

from __future__ import annotations

import re
from functools import lru_cache

ROOM_TYPE_RULES = {
    "entire room": lambda room: room == "Entire home/apt",
    "private room": lambda room: room == "Private room",
    "shared room": lambda room: room == "Shared room",
    "not shared room": lambda room: room != "Shared room",
}
HOUSE_RULES = {
    "smoking": "No smoking",
    "parties": "No parties",
    "children under 10": "No children under 10",
    "visitors": "No visitors",
    "pets": "No pets",
}
TRANSPORT_RULES = ("no flight", "no self-driving")
_RULE_SPLIT = re.compile(r"\s*(?:;|&)\s*")


@lru_cache(maxsize=1024)  # a few dozen distinct fields, read on every verdict
def house_rules_of(text: str | None) -> frozenset[str]:
    """The rules of a place's ``house_rules`` field ("No parties; No pets" or TravelPlanner's
    "No parties & No pets"), as a set of exact rule names."""
    if not text or text in ("none", "nan"):
        return frozenset()
    return frozenset(r for r in _RULE_SPLIT.split(text.strip()) if r)


def room_type_ok(constraint: str | None, room_type: str) -> bool:
    return constraint is None or ROOM_TYPE_RULES[constraint](room_type)


def house_rule_ok(constraint: str | None, rules: frozenset[str]) -> bool:
    return constraint is None or HOUSE_RULES[constraint] not in rules
