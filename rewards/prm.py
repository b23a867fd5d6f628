"""A learned process reward model (PRM) trained on hiergym's step labels, in the manner of HRM.

Step labels come from exact verdicts (:func:`hiergym.benchmarks.rmbench.build.step_labels`): a turn
is *bad* when an error came back to it, a finding of a failed level names it, or it submitted an
answer that failed a level. The model (a transformers sequence classifier, torch) reads a step in
its context (the task's opening, the previous step, the step) and returns the probability that
the step is good.

As HRM (Hierarchical Reward Model) does, it is trained on single steps **and** on merged
consecutive steps (a merged node is good only when both of its steps are), and with HRM's
*node-compression* augmentation: chains of steps in which random runs of adjacent nodes are merged
into one node, so the model learns to judge coarse and fine steps alike.

It plugs in twice:

* into :class:`~hiergym.rewards.wrappers.ProcessReward` as a turn check,
  ``ProcessReward(env, checks={**DEFAULT_CHECKS, "prm": (prm.as_check(env), 0.02)})`` (the
  wrapper's budget and settlement still bound what it can pay);
* into ``hiergym rm-bench eval --judge prm:PATH`` (an episode scores its weakest step; the judge
  is :class:`hiergym.benchmarks.rmbench.judges.PRMJudge`).

Needs the ``llm`` extra (torch, transformers, tokenizers).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_STEP_CHARS = 400
MAX_TASK_CHARS = 200


def _render_turn(turn: dict[str, Any]) -> str:
    """One turn of a trajectory record as text: its calls (or raw action) and its results."""
    if turn["calls"]:
        action = json.dumps([{c["name"]: c["arguments"]} for c in turn["calls"]], sort_keys=True)
    else:
        action = turn["action"] if isinstance(turn["action"], str) else json.dumps(turn["action"])
    results = " | ".join(
        ("ok " if r["ok"] else "error ") + str(r["content"])[:MAX_STEP_CHARS]
        for r in turn["results"]
    )
    return f"call {action[:MAX_STEP_CHARS]} result {results}"


def _turn_record(turn: Any) -> dict[str, Any]:
    """A live :class:`~hiergym.envs.core.Turn` in the shape of a stored trajectory's turn."""
    return {
        "action": turn.action,
        "calls": [{"name": c.name, "arguments": c.arguments} for c in turn.calls],
        "results": [{"ok": r.ok, "content": r.content} for r in turn.results],
    }


def step_text(task: str, previous: str, step: str) -> str:
    return (
        f"task {task[:MAX_TASK_CHARS]} [SEP] before {previous[-MAX_STEP_CHARS:]} [SEP] step {step}"
    )


@dataclass(frozen=True)
class StepExample:
    text: str
    good: bool
    task: str
    """Which task it comes from (to keep splits disjoint and for grouping)."""


def _task_text(row: dict[str, Any]) -> str:
    users = [m["content"] for m in row["messages"] if m["role"] == "user"]
    return users[0] if users else ""


def examples_from_row(
    row: dict[str, Any], rng: np.random.Generator | None = None, compress: float = 0.3
) -> list[StepExample]:
    """HRM training examples of one rm-bench row: each step; each pair of consecutive steps
    merged into one node; and, with ``rng``, one node-compressed chain (adjacent nodes merged with
    probability ``compress``). A node is good only when every step in it is."""
    task = _task_text(row)
    turns = [_render_turn(t) for t in row["trajectory"]["turns"]]
    good = [not s["bad"] for s in row["step_labels"]]
    key = f"{row['env_id']}|{row['task_id']}"
    out = []
    for i, text in enumerate(turns):
        out.append(StepExample(step_text(task, turns[i - 1] if i else "", text), good[i], key))
    for i in range(len(turns) - 1):  # merged consecutive steps
        merged = turns[i] + " ; " + turns[i + 1]
        prev = turns[i - 1] if i else ""
        out.append(StepExample(step_text(task, prev, merged), good[i] and good[i + 1], key))
    if rng is not None and len(turns) > 2:  # node compression
        nodes: list[tuple[str, bool]] = [(turns[0], good[0])]
        for text, g in zip(turns[1:], good[1:], strict=True):
            if rng.random() < compress:
                t0, g0 = nodes[-1]
                nodes[-1] = (t0 + " ; " + text, g0 and g)
            else:
                nodes.append((text, g))
        for i, (text, g) in enumerate(nodes):
            out.append(StepExample(step_text(task, nodes[i - 1][0] if i else "", text), g, key))
    return out


def training_examples(
    rows: Sequence[dict[str, Any]], rng: np.random.Generator, compress: float = 0.3
) -> list[StepExample]:
    """The HRM examples :func:`train_prm` trains on (``rng`` seeded with its seed gives the same
    ones, e.g. to build an untrained baseline on the same vocabulary)."""
    return [e for r in rows for e in examples_from_row(r, rng, compress)]


def _tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A WordPiece tokenizer whose vocabulary is built here, deterministically: the special
    tokens, every character seen (alone and as a ``##`` continuation, so no word is unknown),
    then the most frequent words, ties broken alphabetically. (The tokenizers library's own
    WordPiece trainer breaks ties by hash order, so it gave a different vocabulary, hence a
    different model, in each process for the same seed.)"""
    from collections import Counter

    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", *chars, *(f"##{c}" for c in chars)]
    known = set(vocab)
    ranked = sorted((w for w in words if w not in known), key=lambda w: (-words[w], w))
    vocab += ranked[: max(0, vocab_size - len(vocab))]
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


class ProcessRewardModel:
    """A step scorer: ``score_steps(row)`` -> P(good) per turn of a trajectory record."""

    def __init__(self, model: Any, tokenizer: Any, max_length: int = 128):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.max_length = max_length

    @classmethod
    def untrained(cls, texts: Sequence[str], *, seed: int = 0, **config: Any) -> ProcessRewardModel:
        """A freshly initialised model (the baseline a trained one must beat)."""
        import torch
        from transformers import BertConfig, BertForSequenceClassification

        torch.manual_seed(seed)
        tokenizer = _tokenizer(texts, config.pop("vocab_size", 2000))
        cfg = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.pop("hidden_size", 64),
            num_hidden_layers=config.pop("num_hidden_layers", 1),
            num_attention_heads=config.pop("num_attention_heads", 2),
            intermediate_size=config.pop("intermediate_size", 128),
            max_position_embeddings=config.pop("max_position_embeddings", 256),
            num_labels=2,
            pad_token_id=tokenizer.pad_token_id,
            **config,
        )
        return cls(BertForSequenceClassification(cfg), tokenizer)

    def _probs(self, texts: Sequence[str]) -> list[float]:
        import torch

        if not texts:
            return []
        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            padding=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            logits = self.model(**enc).logits
        return [float(p) for p in torch.softmax(logits, -1)[:, 1]]

    def score_texts(self, texts: Sequence[str], batch: int = 64) -> list[float]:
        out: list[float] = []
        for i in range(0, len(texts), batch):
            out += self._probs(texts[i : i + batch])
        return out

    def score_steps(self, row: dict[str, Any]) -> list[float]:
        """P(good) for each turn of an rm-bench row (or any dict with ``messages`` and a
        ``trajectory`` record)."""
        task = _task_text(row)
        turns = [_render_turn(t) for t in row["trajectory"]["turns"]]
        return self.score_texts(
            [step_text(task, turns[i - 1] if i else "", t) for i, t in enumerate(turns)]
        )

    def as_check(self, env: Any) -> Any:
        """A :class:`~hiergym.rewards.wrappers.ProcessReward` turn check for ``env``:
        ``2 P(good) - 1`` for the turn just played, read from the live trajectory (the task text
        is the env's prompt, as in training)."""
        base = env.unwrapped

        def prm(turn: Any, trajectory: Any) -> float:
            users = [m["content"] for m in base.messages if m["role"] == "user"]
            task = users[0] if users else ""
            i = trajectory.turns.index(turn)
            previous = _render_turn(_turn_record(trajectory.turns[i - 1])) if i else ""
            p = self.score_texts([step_text(task, previous, _render_turn(_turn_record(turn)))])[0]
            return 2.0 * p - 1.0

        return prm

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(path)
        self.tokenizer.save_pretrained(path)
        (path / "hiergym_prm.json").write_text(json.dumps({"max_length": self.max_length}) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ProcessRewardModel:
        from transformers import AutoModelForSequenceClassification, PreTrainedTokenizerFast

        path = Path(path)
        meta = json.loads((path / "hiergym_prm.json").read_text())
        model = AutoModelForSequenceClassification.from_pretrained(path)
        return cls(model, PreTrainedTokenizerFast.from_pretrained(path), meta["max_length"])


def train_prm(
    rows: Sequence[dict[str, Any]],
    *,
    epochs: int = 4,
    lr: float = 1e-3,
    batch_size: int = 32,
    seed: int = 0,
    compress: float = 0.3,
    model: ProcessRewardModel | None = None,
    **config: Any,
) -> ProcessRewardModel:
    """Train a PRM on the step labels of ``rows`` (rm-bench rows); seeded and deterministic on
    one machine. Classes are weighted by inverse frequency (bad steps are the rarer ones)."""
    import torch

    rng = np.random.default_rng(seed)
    examples = training_examples(rows, rng, compress)
    if not examples:
        raise ValueError("no steps to train on")
    prm = model or ProcessRewardModel.untrained([e.text for e in examples], seed=seed, **config)
    torch.manual_seed(seed)
    labels = torch.tensor([int(e.good) for e in examples])
    counts = torch.bincount(labels, minlength=2).float().clamp(min=1)
    loss_fn = torch.nn.CrossEntropyLoss(weight=counts.sum() / (2 * counts))
    optimiser = torch.optim.AdamW(prm.model.parameters(), lr=lr)
    prm.model.train()
    texts = [e.text for e in examples]
    for _ in range(epochs):
        order = rng.permutation(len(examples))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = prm.tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=prm.max_length,
                padding=True,
                return_tensors="pt",
            )
            loss = loss_fn(prm.model(**enc).logits, labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    prm.model.eval()
    return prm


def step_auroc(prm: ProcessRewardModel, rows: Sequence[dict[str, Any]]) -> float:
    """How well ``prm`` ranks good steps above bad ones on ``rows`` (area under the ROC curve;
    0.5 is chance)."""
    from scipy.stats import mannwhitneyu

    good, bad = [], []
    for row in rows:
        for p, label in zip(prm.score_steps(row), row["step_labels"], strict=True):
            (bad if label["bad"] else good).append(p)
    if not good or not bad:
        raise ValueError("AUROC needs good and bad steps")
    u = mannwhitneyu(good, bad, alternative="two-sided").statistic
    return float(u) / (len(good) * len(bad))
