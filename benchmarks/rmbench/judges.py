"""Judges for ``rm-bench eval``: what scores an rm-bench row.

A judge turns a row (see :mod:`.build`) into a :class:`Judgement`: a score in [0, 1] (higher is
better), optionally the level it thinks failed first and per-step scores. It *accepts* a row when
the score reaches its ``threshold``. Pairwise judges also answer ``compare(a, b)``: the probability
that ``a`` is the better episode. Specs:

* ``verifier``: the env's own verifier re-scores the stored trajectory (no tool is called). It
  must score 1.0 on every metric: the dataset's labels are its verdicts.
* ``random`` / ``random:SEED``: a seeded uniform score per row (chance on every metric).
* ``python:MODULE:NAME``: a callable ``f(row) -> float | dict`` (dict keys as :class:`Judgement`).
* ``openai:MODEL@URL``: an LLM judge on an OpenAI-compatible endpoint, pointwise (a 0-10 score and
  the first failed level as JSON) or pairwise (``--mode pairwise``: which of two episodes is right).
* ``hf:PATH``: a transformers sequence-classification reward model (one logit: its sigmoid; two or
  more labels: the probability of the last).
* ``prm:PATH``: a process reward model saved by :mod:`hiergym.rewards.prm` (per-step scores; the
  episode's score is the lowest step's).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hiergym.errors import HiergymError

MAX_TRANSCRIPT_CHARS = 12_000


@dataclass(frozen=True)
class Judgement:
    score: float
    first_failed: str | None = None
    steps: tuple[float, ...] | None = None
    error: str | None = None
    """Why the judge's answer could not be read (the score is then 0.5: undecided)."""


def prefer(a: float, b: float) -> float:
    """A pairwise preference from two scores: 1 when ``a`` is higher, 0 when lower, 0.5 on a tie."""
    return 1.0 if a > b else 0.0 if a < b else 0.5


class Judge:
    name = "judge"
    threshold = 0.5
    pairwise = False

    def score(self, row: dict[str, Any]) -> Judgement:
        raise NotImplementedError

    def compare(self, a: dict[str, Any], b: dict[str, Any]) -> float:
        """P(a is better than b); by default from the two pointwise scores."""
        return prefer(self.score(a).score, self.score(b).score)

    def close(self) -> None:
        pass


class VerifierJudge(Judge):
    """The env's verifier on the stored trajectory: the labels' own source."""

    name = "verifier"
    threshold = 1.0

    def __init__(self) -> None:
        self._envs: dict[tuple[str, str, str], Any] = {}

    def score(self, row: dict[str, Any]) -> Judgement:
        import gymnasium as gym

        from hiergym.benchmarks.runner import trajectory_from_record
        from hiergym.testing import normalised_reward

        cell = (row["env_id"], row["split"], row["difficulty"])
        if cell not in self._envs:
            self._envs[cell] = gym.make(
                row["env_id"], split=row["split"], difficulty=row["difficulty"]
            )
        base = self._envs[cell].unwrapped
        task = base.tasks.get(row["task_id"])
        trajectory = trajectory_from_record(row["trajectory"], task, base.toolbox)
        verdict = base.verifier.verify(trajectory, task)
        value = normalised_reward(base.verifier.aggregate_name, verdict.levels, task)
        if verdict.first_failed is not None:
            value = min(value, 0.999)  # a failed level is never a full score
        return Judgement(float(value), verdict.first_failed)

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _unit(*parts: object) -> float:
    """A uniform number in [0, 1) from its parts (stable across processes and platforms)."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class RandomJudge(Judge):
    """A seeded coin: the chance line of every metric."""

    def __init__(self, seed: int = 0):
        self.seed = seed
        self.name = f"random:{seed}"

    def score(self, row: dict[str, Any]) -> Judgement:
        s = _unit(self.seed, row["row_id"])
        levels = [lv["name"] for lv in row["labels"]["levels"]]
        guess = levels[int(_unit(self.seed, "level", row["row_id"]) * len(levels))]
        return Judgement(s, guess if s < self.threshold else None)


class CallableJudge(Judge):
    def __init__(self, fn: Callable[[dict[str, Any]], Any], name: str, threshold: float = 0.5):
        self.fn, self.name, self.threshold = fn, name, threshold

    def score(self, row: dict[str, Any]) -> Judgement:
        out = self.fn(row)
        if isinstance(out, Judgement):
            return out
        if isinstance(out, dict):
            steps = out.get("steps")
            return Judgement(
                float(out["score"]), out.get("first_failed"), tuple(steps) if steps else None
            )
        return Judgement(float(out))


def transcript_text(row: dict[str, Any], limit: int = MAX_TRANSCRIPT_CHARS) -> str:
    """The episode as plain text for a judge: each message as ``[role] content`` (tool calls as
    JSON), the middle cut when it is longer than ``limit``."""
    lines = []
    for m in row["messages"]:
        content = m.get("content") or ""
        if m.get("tool_calls"):
            calls = [c.get("function", c) for c in m["tool_calls"]]
            content = (content + "\n" if content else "") + json.dumps(calls, sort_keys=True)
        who = m["role"] if m["role"] != "tool" else f"tool {m.get('name', '')}".strip()
        lines.append(f"[{who}] {content}")
    text = "\n".join(lines)
    if len(text) > limit:
        half = limit // 2
        text = text[:half] + "\n[... cut ...]\n" + text[-half:]
    return text


POINTWISE_PROMPT = """You are grading an AI agent's episode in a tool-use environment.
The levels, in the order they are checked: {levels}.
Read the episode and decide whether the agent's final answer is correct at every level.
Reply with one JSON object only: {{"score": <integer 0-10, 10 = correct at every level>,
"first_failed_level": <the first level that failed, or null>}}

Episode:
{transcript}"""

PAIRWISE_PROMPT = """You are comparing two episodes of AI agents solving the same task in a
tool-use environment. Exactly one is correct at every level ({levels}).
Reply with one JSON object only: {{"better": "A" or "B"}}

Episode A:
{a}

Episode B:
{b}"""


def _json_object(text: str) -> dict[str, Any]:
    match = re.search(r"\{.*\}", text, re.S)
    if not match:
        raise ValueError(f"no JSON object in the judge's reply: {text[:200]!r}")
    value = json.loads(match.group(0))
    if not isinstance(value, dict):
        raise ValueError(f"the judge's reply is not a JSON object: {text[:200]!r}")
    return value


class LLMJudge(Judge):
    """An LLM judge over a chat backend (``complete(messages, tools, ...)``)."""

    def __init__(self, backend: Any, name: str, *, pairwise: bool = False, seed: int = 0):
        self.backend, self.name, self.pairwise, self.seed = backend, name, pairwise, seed
        self._cache: dict[str, Judgement] = {}

    def _ask(self, prompt: str) -> dict[str, Any]:
        completion = self.backend.complete(
            [{"role": "user", "content": prompt}], None, seed=self.seed, temperature=0.0
        )
        return _json_object(completion.text)

    def score(self, row: dict[str, Any]) -> Judgement:
        if row["row_id"] in self._cache:
            return self._cache[row["row_id"]]
        levels = [lv["name"] for lv in row["labels"]["levels"]]
        prompt = POINTWISE_PROMPT.format(levels=", ".join(levels), transcript=transcript_text(row))
        try:
            reply = self._ask(prompt)
            value = float(reply["score"])
            if not 0.0 <= value <= 10.0:
                raise ValueError(f"score {value} is outside 0-10")
            guess = reply.get("first_failed_level")
            judgement = Judgement(value / 10.0, guess if guess in levels else None)
        except (ValueError, KeyError, TypeError) as e:
            judgement = Judgement(0.5, None, error=str(e)[:200])
        self._cache[row["row_id"]] = judgement
        return judgement

    def compare(self, a: dict[str, Any], b: dict[str, Any]) -> float:
        if not self.pairwise:
            return super().compare(a, b)
        levels = ", ".join(lv["name"] for lv in a["labels"]["levels"])
        # Position bias: ask both orders and average.
        votes = []
        for first, second, flip in ((a, b, False), (b, a, True)):
            prompt = PAIRWISE_PROMPT.format(
                levels=levels, a=transcript_text(first), b=transcript_text(second)
            )
            try:
                better = str(self._ask(prompt)["better"]).strip().upper()
                if better not in ("A", "B"):
                    raise ValueError(better)
                votes.append(1.0 if (better == "A") != flip else 0.0)
            except (ValueError, KeyError, TypeError):
                votes.append(0.5)
        return sum(votes) / len(votes)

    def close(self) -> None:
        close = getattr(self.backend, "close", None)
        if close:
            close()


class SequenceClassifierJudge(Judge):
    """A transformers reward model: ``AutoModelForSequenceClassification`` over the transcript."""

    def __init__(self, path: str, max_length: int = 1024):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.name = f"hf:{path}"
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.model = AutoModelForSequenceClassification.from_pretrained(path).eval()
        self.max_length = max_length
        self.torch = torch

    def score(self, row: dict[str, Any]) -> Judgement:
        enc = self.tokenizer(
            transcript_text(row), truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with self.torch.no_grad():
            logits = self.model(**enc).logits[0]
        if logits.numel() == 1:
            return Judgement(float(self.torch.sigmoid(logits[0])))
        return Judgement(float(self.torch.softmax(logits, -1)[-1]))


class PRMJudge(Judge):
    """A process reward model (:mod:`hiergym.rewards.prm`): an episode scores its weakest step's
    P(good); the per-step scores ride along."""

    def __init__(self, prm: Any, name: str = "prm"):
        self.prm, self.name = prm, name

    @classmethod
    def load(cls, path: str) -> PRMJudge:
        from hiergym.rewards.prm import ProcessRewardModel

        return cls(ProcessRewardModel.load(path), f"prm:{path}")

    def score(self, row: dict[str, Any]) -> Judgement:
        steps = self.prm.score_steps(row)
        return Judgement(min(steps) if steps else 0.0, None, tuple(steps))


def load_judge(spec: str, *, mode: str = "pointwise", seed: int = 0) -> Judge:
    """The judge a spec names (see the module docstring)."""
    if spec == "verifier":
        return VerifierJudge()
    if spec == "random" or spec.startswith("random:"):
        tail = spec.partition(":")[2]
        try:
            return RandomJudge(int(tail) if tail else seed)
        except ValueError:
            raise HiergymError(f"expected random or random:SEED, got {spec!r}") from None
    if spec.startswith("python:"):
        import importlib

        target = spec[len("python:") :]
        module, _, attr = target.rpartition(":")
        if not module or not attr:
            raise HiergymError(f"expected python:MODULE:NAME, got {spec!r}")
        try:
            fn = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as e:
            raise HiergymError(f"cannot load judge {spec!r}: {e}") from e
        return CallableJudge(fn, spec)
    if spec.startswith("openai:"):
        from hiergym.agents.openai_compatible import OpenAICompatible

        model, sep, url = spec[len("openai:") :].rpartition("@")
        if not sep or not model or not url.startswith(("http://", "https://")):
            raise HiergymError(f"expected openai:MODEL@URL, got {spec!r}")
        return LLMJudge(OpenAICompatible(url, model), spec, pairwise=mode == "pairwise", seed=seed)
    if spec.startswith("hf:"):
        return SequenceClassifierJudge(spec[len("hf:") :])
    if spec.startswith("prm:"):
        return PRMJudge.load(spec[len("prm:") :])
    raise HiergymError(
        f"unknown judge {spec!r}: expected verifier, random[:SEED], python:MODULE:NAME, "
        "openai:MODEL@URL, hf:PATH or prm:PATH"
    )
