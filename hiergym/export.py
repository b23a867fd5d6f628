"""Training data from runs: SFT conversations, preference pairs, per-level labels.

A run folder is either a ``hiergym bench`` output (``episodes.jsonl`` + ``transcripts.jsonl``)
or a :func:`hiergym.rollouts.collect` output (``rollouts.jsonl``). :func:`export` writes
``OUT/<format>.jsonl`` and a Hugging Face ``datasets`` dataset at ``OUT/<format>/``
(``datasets.load_from_disk``).

* ``sft``: ``{"messages", "tools", ...}`` from every successful episode (``verdict.passed``: the
  oracle's, or an agent's), in the chat format TRL's SFTTrainer reads (tool calls as OpenAI
  ``tool_calls`` with parsed arguments, tool results as ``tool`` messages);
* ``preference``: ``{"prompt", "chosen", "rejected", "tools", ...}`` pairs within a group (the same
  task and seed: a rollout group, or a bench episode's trials and agents), the higher reward chosen,
  when the rewards differ by more than ``margin``;
* ``levels``: one row per episode: the conversation, the reward, and per level its score, passed
  and skipped flags (labels for reward-model work).

In the ``datasets`` copy, ``tools`` is a JSON string (Arrow would merge the differing schemas into
one struct with null-filled fields); in the JSONL it is the list itself.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

FORMATS = ("sft", "preference", "levels")


def load_episodes(run_dir: str | Path) -> list[dict[str, Any]]:
    """The run's episodes as rows with ``messages``, ``tools``, ``verdict``, ``reward`` and a
    ``group_key`` (episodes of the same task and seed share it)."""
    run = Path(run_dir)
    if (run / "rollouts.jsonl").exists():
        from hiergym.rollouts import read_rollouts

        rows = read_rollouts(run)
        for r in rows:
            r["group_key"] = f"{r['env_id']}|{r['split']}|{r['difficulty']}|{r['group']}"
        return rows
    if not (run / "episodes.jsonl").exists():
        from hiergym.errors import HiergymError

        raise HiergymError(
            f"{run} holds neither rollouts.jsonl (hiergym.rollouts.collect) nor episodes.jsonl "
            "(hiergym bench): expected a run folder"
        )
    from hiergym.benchmarks.runner import read_rows

    transcripts = {t["key"]: t for t in read_rows(run / "transcripts.jsonl")}
    schemas: dict[str, list[dict[str, Any]]] = {}
    rows = []
    for row in read_rows(run / "episodes.jsonl"):
        transcript = transcripts.get(row.get("key"))
        if row.get("error") or row.get("verdict") is None or transcript is None:
            continue  # an episode that crashed or was run without transcripts has no data
        env_id = row["env_id"]
        if env_id not in schemas:
            schemas[env_id] = _tool_schemas(env_id, row["split"], row["difficulty"])
        rows.append(
            {
                **row,
                "messages": transcript["messages"],
                "trajectory": transcript.get("trajectory"),
                "tools": schemas[env_id],
                "levels": {lv["name"]: lv["score"] for lv in row["verdict"]["levels"]},
                "group_key": f"{env_id}|{row['split']}|{row['difficulty']}|{row['seed']}",
            }
        )
    return rows


def _tool_schemas(env_id: str, split: str, difficulty: str) -> list[dict[str, Any]]:
    import gymnasium as gym

    import hiergym  # noqa: F401

    env = gym.make(env_id, split=split, difficulty=difficulty)
    try:
        return env.unwrapped.toolbox.schemas()
    finally:
        env.close()


def chat_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The env's chat as a training conversation: tool-call arguments parsed into objects (chat
    templates render them as JSON) and only the keys chat templates read."""
    out = []
    for m in messages:
        msg: dict[str, Any] = {"role": m["role"], "content": m.get("content") or ""}
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                fn = c.get("function", {})
                args = fn.get("arguments", {})
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except json.JSONDecodeError:
                        args = {"_raw": args}
                calls.append(
                    {
                        "type": "function",
                        "id": c.get("id", ""),
                        "function": {"name": fn.get("name", ""), "arguments": args},
                    }
                )
            msg["tool_calls"] = calls
        if m["role"] == "tool":
            msg["name"] = m.get("name", "")
            msg["tool_call_id"] = m.get("tool_call_id", "")
        out.append(msg)
    return out


def _meta(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "env_id": row["env_id"],
        "task_id": row.get("task_id"),
        "seed": row.get("seed"),
        "agent": row.get("agent"),
        "reward": float(row["reward"]),
    }


def sft_rows(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"messages": chat_messages(r["messages"]), "tools": r["tools"], **_meta(r)}
        for r in episodes
        if bool(r.get("success", False))  # the oracle's episodes pass; a failed one is no example
    ]


def _prompt_length(messages: list[dict[str, Any]]) -> int:
    """The shared prefix of an episode: everything before the first assistant message."""
    for i, m in enumerate(messages):
        if m["role"] == "assistant":
            return i
    return len(messages)


def preference_rows(episodes: list[dict[str, Any]], margin: float = 0.0) -> list[dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in episodes:
        groups[r["group_key"]].append(r)
    out = []
    for key, members in groups.items():
        members = sorted(members, key=lambda r: -float(r["reward"]))
        for i, better in enumerate(members):
            for worse in members[i + 1 :]:
                if float(better["reward"]) - float(worse["reward"]) <= margin:
                    continue
                chosen = chat_messages(better["messages"])
                rejected = chat_messages(worse["messages"])
                n = _prompt_length(chosen)
                out.append(
                    {
                        "prompt": chosen[:n],
                        "chosen": chosen[n:],
                        "rejected": rejected[_prompt_length(rejected) :],
                        "tools": better["tools"],
                        "group": key,
                        "env_id": better["env_id"],
                        "task_id": better.get("task_id"),
                        "chosen_reward": float(better["reward"]),
                        "rejected_reward": float(worse["reward"]),
                    }
                )
    return out


def level_rows(episodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for r in episodes:
        levels = r["verdict"]["levels"]
        out.append(
            {
                "messages": chat_messages(r["messages"]),
                "tools": r["tools"],
                **_meta(r),
                "passed": r["verdict"].get("first_failed") is None,
                "first_failed": r["verdict"].get("first_failed"),
                "levels": [
                    {
                        "name": lv["name"],
                        "score": float(lv["score"]),
                        "passed": bool(lv["passed"]),
                        "skipped": bool(lv.get("skipped", False)),
                    }
                    for lv in levels
                ],
            }
        )
    return out


def build(format: str, episodes: list[dict[str, Any]], margin: float = 0.0) -> list[dict[str, Any]]:
    if format == "sft":
        return sft_rows(episodes)
    if format == "preference":
        return preference_rows(episodes, margin)
    if format == "levels":
        return level_rows(episodes)
    from hiergym.errors import HiergymError, did_you_mean

    raise HiergymError(
        f"unknown export format {format!r}{did_you_mean(format, FORMATS)}; expected one of {list(FORMATS)}"
    )


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """The rows as a ``datasets.Dataset`` (``tools`` and tool-call arguments as JSON strings)."""
    from datasets import Dataset

    def arrow_safe(row: dict[str, Any]) -> dict[str, Any]:
        row = dict(row)
        row["tools"] = json.dumps(row["tools"])
        for col in ("messages", "prompt", "chosen", "rejected"):
            if col in row:
                row[col] = [_arrow_message(m) for m in row[col]]
        return row

    return Dataset.from_list([arrow_safe(r) for r in rows])


def _arrow_message(m: dict[str, Any]) -> dict[str, Any]:
    msg = {
        "role": m["role"],
        "content": m.get("content") or "",
        "name": m.get("name"),
        "tool_call_id": m.get("tool_call_id"),
        "tool_calls": [
            {
                "type": "function",
                "id": c.get("id", ""),
                "function": {
                    "name": c["function"]["name"],
                    "arguments": json.dumps(c["function"]["arguments"]),
                },
            }
            for c in m.get("tool_calls") or []
        ]
        or None,
    }
    return msg


def export(
    run_dir: str | Path, format: str, out: str | Path | None = None, margin: float = 0.0
) -> tuple[Path, int]:
    """Write ``OUT/<format>.jsonl`` and the dataset ``OUT/<format>/``; returns (out, rows).
    ``out`` defaults to ``RUN_DIR/export``."""
    episodes = load_episodes(run_dir)
    rows = build(format, episodes, margin)
    target = Path(out) if out is not None else Path(run_dir) / "export"
    target.mkdir(parents=True, exist_ok=True)
    with (target / f"{format}.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r, default=str) + "\n")
    if rows:
        to_dataset(rows).save_to_disk(str(target / format))
    return target, len(rows)


__all__ = ["FORMATS", "build", "chat_messages", "export", "load_episodes", "to_dataset"]
