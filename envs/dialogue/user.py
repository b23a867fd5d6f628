"""Simulated users: the rule-based one (deterministic), an LLM-backed one, and an external one.

Every user splits its work in two so that replies can be cached like tool results: ``answer(text,
db)`` computes the reply to one assistant message from the conversation so far *without changing
anything*, and ``record(text, reply)`` moves the conversation on. The env calls ``answer`` through
the sandbox (a cache hit skips it) and ``record`` on every reply, cached or not, so a replayed run
and a live one leave the user in the same state.

* :class:`RuleUser` — holds the task's hidden slots (:mod:`.slots`); answers exactly the slots a
  message asks about, truthfully (a hard task's changed slot first with its decoy, corrected in the
  next reply); rejects a proposed product that does not fit with the first reason it does not
  (one product per message: a message proposing several gets "Please suggest one product at a
  time.");
  says "Yes, go ahead." to a question it has nothing to answer about.
* :class:`LLMUser` — a persona prompt over any :class:`hiergym.agents.llm.Backend`
  (OpenAI-compatible, transformers), guarded: a reply that states the value of a hidden
  requirement nobody asked about (:attr:`Slot.values`), is empty or runs long is replaced by the
  rule user's reply. Its replies are cached in the sandbox's tool cache,
  keyed by the task and the conversation so far (:meth:`LLMUser.scope`), so runs replay.
* :class:`ExternalUser` — the PettingZoo ``user`` agent: its reply is whatever that agent said.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from hiergym.errors import HiergymError, SandboxError, ToolError

from .slots import ChatTask, asked_slots, question_sentences

PRODUCT_ID = re.compile(r"\bB0[A-Z0-9]{8}\b")
NOTHING_TO_ANSWER = "Yes, go ahead."
NOT_A_QUESTION = "Okay."
ONE_AT_A_TIME = "Please suggest one product at a time."


@dataclass
class RuleUser:
    """The rule-based simulated user of one task (see the module docstring)."""

    task: ChatTask
    told: dict[str, int] = field(default_factory=dict)
    """Slot -> how many times the user has answered it."""
    changed: bool = False
    replies: int = 0

    kind = "rule"

    def opening(self) -> str:
        return self.task.opening

    def scope(self) -> str:
        return ""

    def _change_due(self) -> bool:
        change = self.task.change
        return change is not None and not self.changed and change.slot in self.told

    def answer(self, text: str, db: Any = None) -> str:
        task = self.task
        asked = asked_slots(task, text)
        parts = []
        change = task.change
        for name in asked:
            if change is not None and name == change.slot and not self.changed:
                parts.append(change.before)
            else:
                parts.append(task.slot(name).answer)
        if self._change_due():
            parts.append(change.after)
        if task.domain == "shopping" and db is not None:
            proposed = list(dict.fromkeys(PRODUCT_ID.findall(text)))
            if len(proposed) == 1:
                parts.append(self._judge(proposed[0], db))
            elif proposed:  # the user is no free verifier of a whole result page
                parts.append(ONE_AT_A_TIME)
        if not parts:
            parts.append(NOTHING_TO_ANSWER if question_sentences(text) else NOT_A_QUESTION)
        return " ".join(parts)

    def record(self, text: str, reply: str) -> None:
        due = self._change_due()
        for name in asked_slots(self.task, text):
            self.told[name] = self.told.get(name, 0) + 1
        if due:
            self.changed = True
        self.replies += 1

    def _judge(self, product_id: str, db: Any) -> str:
        """Accept a proposed product that fits every requirement, or reject it with a reason."""
        from hiergym.envs.shopping.oracle import choose_options
        from hiergym.envs.shopping.tools import load_product

        base = self.task.base
        doc = load_product(db, product_id)
        if doc is None:
            return f"I can't find a product {product_id}."
        if doc["product_type"] != base.product_type:
            return f"{product_id} is not a {base.product_type}."
        missing = [a for a in base.attributes if a not in doc["attributes"]]
        if missing:
            return f"{product_id} won't do: I need it to be {missing[0]}."
        if choose_options(base, doc) is not None:
            return f"{product_id} sounds good to me."
        goal = base.goal_options
        fits = [
            v
            for v in doc["variants"]
            if v["stock"] > 0 and all(v["options"].get(k) == x for k, x in goal.items())
        ]
        if not fits:
            return f"{product_id} won't do: it doesn't come in the options I want."
        return f"{product_id} won't do: it is over my budget."


@dataclass
class ExternalUser(RuleUser):
    """The PettingZoo ``user`` agent: the reply is what that agent said (set before the step)."""

    pending: str | None = None
    kind = "external"

    def answer(self, text: str, db: Any = None) -> str:
        if self.pending is None:
            raise ToolError("the user has not replied yet")
        return self.pending

    def record(self, text: str, reply: str) -> None:
        super().record(text, reply)
        self.pending = None


PERSONA = """\
You are role-playing a customer talking to an assistant. Stay in character, stay on the task and \
reply in one to three short sentences. Never say you are an AI.
What you want (hidden: reveal an item ONLY when the assistant asks about it, never volunteer it):
{requirements}
Your first message was: {opening}
If the assistant asks about something not in the list, say you have no preference. \
If it recommends something, accept only if it fits everything above; otherwise say why not."""


@dataclass
class LLMUser(RuleUser):
    """A simulated user played by a language model behind hiergym's agent backends."""

    backend: Any = None
    temperature: float = 0.0
    max_tokens: int = 200
    max_reply_chars: int = 600
    history: list[dict[str, str]] = field(default_factory=list)
    kind = "llm"

    def persona(self) -> str:
        lines = [f"- {s.name}: {s.answer}" for s in self.task.of_kind("need")]
        if self.task.change is not None:
            c = self.task.change
            lines.append(
                f"- at first you say about {c.slot}: {c.before!r}; in your next reply after that "
                f"you correct it: {c.after!r}"
            )
        return PERSONA.format(requirements="\n".join(lines), opening=self.task.opening)

    def scope(self) -> str:
        """The cache key's scope: the task, the persona's model and the conversation so far."""
        key = json.dumps(
            [self.task.task_id, getattr(self.backend, "name", "?"), self.temperature, self.history]
        )
        return hashlib.sha256(key.encode()).hexdigest()[:32]

    def answer(self, text: str, db: Any = None) -> str:
        fallback = super().answer(text, db)
        messages = [
            {"role": "system", "content": self.persona()},
            {"role": "user", "content": "(start the conversation)"},
            {"role": "assistant", "content": self.task.opening},
            *self.history,
            {"role": "user", "content": text},
        ]
        seed = int(hashlib.sha256(self.task.task_id.encode()).hexdigest()[:8], 16)
        try:
            completion = self.backend.complete(
                messages, None, seed=seed, temperature=self.temperature, max_tokens=self.max_tokens
            )
        except HiergymError as e:  # the user's model is down: infrastructure, not the agent's call
            raise SandboxError(f"the simulated user's model failed: {e}") from e
        reply = (completion.text or "").strip()
        if not reply or len(reply) > self.max_reply_chars or self._reveals(text, reply):
            return fallback
        return reply

    def _reveals(self, text: str, reply: str) -> bool:
        """The reply states a hidden requirement's value that no question so far asked about."""
        asked = set(self.told) | set(asked_slots(self.task, text))
        for slot in self.task.of_kind("need"):
            if slot.name in asked:
                continue
            for value in slot.values:
                if re.search(rf"(?<![\w.]){re.escape(value)}(?![\w]|\.\d)", reply, re.I):
                    return True
        return False

    def record(self, text: str, reply: str) -> None:
        super().record(text, reply)
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": reply}]


def make_user(kind: Any, task: ChatTask) -> RuleUser:
    """``"rule"``, ``"external"``, an agent spec of an LLM (``"openai:MODEL@URL"``, ``"hf:PATH"``,
    as :func:`hiergym.agents.load` reads it) or a Backend: a new user for each episode."""
    if kind in (None, "rule"):
        return RuleUser(task)
    if kind == "external":
        return ExternalUser(task)
    if isinstance(kind, str) and kind.startswith(("openai:", "hf:")):
        return LLMUser(task, backend=_backend(kind))
    if hasattr(kind, "complete"):
        return LLMUser(task, backend=kind)
    raise ValueError(
        "user must be 'rule', 'external', 'openai:MODEL@URL', 'hf:PATH' or an LLM backend with "
        f"complete(), got {kind!r}"
    )


_BACKENDS: dict[str, Any] = {}


def _backend(spec: str) -> Any:
    """One backend per spec and process (its client is reused across episodes)."""
    if spec not in _BACKENDS:
        from hiergym.agents import load

        _BACKENDS[spec] = load(spec).backend
    return _BACKENDS[spec]


def caches_replies(kind: Any) -> bool:
    """Whether a user of this kind gets its replies from a model (cached like tool results)."""
    return kind not in (None, "rule", "external")
