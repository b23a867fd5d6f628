"""Model judges for quality levels: an LLM judge over any OpenAI-compatible endpoint, cached.

A judge is a callable that returns a score in [0, 1]; domains blend it into a rule-based level
(e.g. shopping's response level: ``gym.make("hiergym/Shopping-v0", judge=LLMJudge(...))``).
Verdicts must be reproducible, so every judgement is cached by a hash of (model, prompt) in the
sandbox's ToolCache table: the second time the same message is judged, no request is made.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from hiergym.errors import VerifierError

SHOPPING_RUBRIC = (
    "You grade a shopping assistant's recommendation. The user asked: {instruction}\n"
    "The recommended product is: {product}\n"
    "The assistant wrote: {message}\n\n"
    "Score 0-10 how helpful, truthful and complete the message is for this user (10 = states the "
    "product, the requested attributes, options and the true price, claims nothing false). "
    'Reply with JSON only: {{"score": <0-10>, "reason": "<short>"}}'
)


class JudgeAbstained(Exception):  # noqa: N818 - an outcome, not a bug
    """The judge gave no usable judgement (a reply that is not exactly the requested JSON object,
    or a score out of range). The level that asked records it and pays nothing for the judge's
    share; it is never read as a score."""


_SCORE = re.compile(r'"score"\s*:\s*(-?\d+(?:\.\d+)?)')


class LLMJudge:
    """``judge(task, product, message) -> [0, 1]`` asked of a chat model, temperature 0, cached.

    Args:
        backend: an :class:`~hiergym.agents.openai_compatible.OpenAICompatible` (or any object with
            ``complete(messages, tools, seed=, temperature=, max_tokens=)``).
        rubric: a format string with ``{instruction}``, ``{product}`` and ``{message}``.
        cache: a :class:`~hiergym.envs.sandbox.ToolCache` (default: the one at ``HIERGYM_DB_URL``).
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # Gymnasium deep-copies make() kwargs into the env spec; a client with open connections
        # and locks is shared, not copied.
        return self

    def __init__(
        self, backend: Any, rubric: str = SHOPPING_RUBRIC, cache: Any = None, seed: int = 0
    ):
        self.backend = backend
        self.rubric = rubric
        self.seed = seed
        self._cache = cache
        self.requests = 0

    @property
    def cache(self) -> Any:
        if self._cache is None:
            from hiergym.envs.sandbox import ToolCache

            self._cache = ToolCache()
        return self._cache

    def prompt(self, task: Any, product: dict[str, Any], message: str) -> str:
        summary = {
            k: product.get(k) for k in ("title", "attributes", "options", "price_min", "price_max")
        }
        return self.rubric.format(
            instruction=getattr(task, "instruction", str(task)),
            product=json.dumps(summary),
            message=message,
        )

    def __call__(self, task: Any, product: dict[str, Any], message: str) -> float:
        from hiergym.envs.sandbox import CacheKey

        prompt = self.prompt(task, product, message)
        model = getattr(self.backend, "name", type(self.backend).__name__)
        key = CacheKey("judge", model, "llm_judge", hashlib.sha256(prompt.encode()).hexdigest())
        cached = self.cache.get(key)
        if cached is not None:
            return float(cached)
        self.requests += 1
        completion = self.backend.complete(
            [{"role": "user", "content": prompt}],
            None,
            seed=self.seed,
            temperature=0.0,
            max_tokens=128,
        )
        match = _SCORE.search(completion.text)
        if match is None:
            # A judge that cannot be read is a broken verifier, not a zero for the agent.
            raise VerifierError(
                f"the judge {model!r} answered without a score: {completion.text[:200]!r}"
            )
        score = min(10.0, max(0.0, float(match.group(1)))) / 10.0
        self.cache.put(key, score)
        return score
