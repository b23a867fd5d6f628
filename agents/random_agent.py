"""A schema-valid random agent: the floor every benchmark table should show."""

from __future__ import annotations

import json
import random
import re
import string
from typing import Any

_WORDS = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


class RandomAgent:
    """Picks a random tool from ``info["tools"]`` and fills its arguments by the schema.

    String arguments are drawn from the words of the current observation (so it sometimes names a
    real product or city) or are random letters; every call is valid JSON that passes the schema.
    """

    def __init__(self, seed: int = 0, name: str = "random"):
        self.seed = seed
        self.name = name
        self.rng = random.Random(seed)

    def bind(self, env: Any) -> None:
        pass

    def reset(self, seed: int) -> None:
        self.rng = random.Random(f"{self.seed}/{seed}")

    def act(self, observation: str, info: dict[str, Any]) -> str:
        tools = info["tools"]
        fn = self.rng.choice(tools)["function"]
        words = _WORDS.findall(observation[:20_000]) or ["item"]
        args = {}
        params = fn["parameters"]
        for name, schema in params["properties"].items():
            if name in params.get("required", []) or self.rng.random() < 0.3:
                args[name] = self._value(schema, words)
        return json.dumps({"name": fn["name"], "arguments": args})

    def _value(self, schema: dict[str, Any], words: list[str]) -> Any:
        rng = self.rng
        if "enum" in schema:
            return rng.choice(schema["enum"])
        kind = schema.get("type")
        if kind == "string":
            if rng.random() < 0.8:
                return " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))
            return "".join(rng.choices(string.ascii_letters, k=rng.randint(1, 12)))
        if kind == "integer":
            return rng.randint(1, 3)
        if kind == "number":
            return round(rng.uniform(0, 200), 2)
        if kind == "boolean":
            return rng.random() < 0.5
        if kind == "array":
            return [
                self._value(schema.get("items", {"type": "string"}), words)
                for _ in range(rng.randint(0, 3))
            ]
        if kind == "object":
            sub = schema.get("additionalProperties", {"type": "string"})
            sub = sub if isinstance(sub, dict) else {"type": "string"}
            return {
                rng.choice(words).lower(): self._value(sub, words) for _ in range(rng.randint(0, 2))
            }
        return rng.choice(words)
