"""``hiergym reverify RUN_DIR``: re-score stored trajectories with the current verifier.

A bench run saves every episode's trajectory (``transcripts.jsonl``: actions, parsed calls, tool
results with the data verifiers read) beside its rows, and each row records the env, data and
verifier versions it was scored with. Re-verifying replays no agent and no tool: it rebuilds each
trajectory, runs today's verifier on it, and reports every episode whose reward or first failed
level changed, with the versions then and now.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gymnasium as gym

from .runner import read_rows, trajectory_from_record, versions


def reverify(run_dir: Path, aggregate: str | None = None) -> dict[str, Any]:
    """Re-score every episode of ``run_dir`` that has a stored trajectory; returns a report with
    ``rows`` (one per episode: old and new reward and first failed level) and ``changed``."""
    rows = {r["key"]: r for r in read_rows(run_dir / "episodes.jsonl") if r.get("error") is None}
    transcripts = {t["key"]: t for t in read_rows(run_dir / "transcripts.jsonl")}
    envs: dict[tuple[str, str, str], gym.Env] = {}
    out: list[dict[str, Any]] = []
    missing = 0
    for key, row in rows.items():
        transcript = transcripts.get(key)
        if transcript is None:
            missing += 1
            continue
        cell = (row["env_id"], row["split"], row["difficulty"])
        if cell not in envs:
            kwargs = {"split": row["split"], "difficulty": row["difficulty"]}
            if aggregate:
                kwargs["aggregate"] = aggregate
            envs[cell] = gym.make(row["env_id"], **kwargs)
        env = envs[cell]
        base = env.unwrapped
        task = base.tasks.get(row["task_id"])
        trajectory = trajectory_from_record(transcript["trajectory"], task, base.toolbox)
        verdict = base.verifier.verify(trajectory, task)
        old = row.get("verdict") or {}
        now = versions(env, row["env_id"])
        out.append(
            {
                "key": key,
                "env_id": row["env_id"],
                "task_id": row["task_id"],
                "agent": row["agent"],
                "old_reward": row.get("reward"),
                "new_reward": verdict.reward,
                "old_first_failed": old.get("first_failed"),
                "new_first_failed": verdict.first_failed,
                "versions_then": row.get("versions"),
                "versions_now": now,
                "verdict": verdict.to_dict(),
            }
        )
    for env in envs.values():
        env.close()
    changed = [
        r
        for r in out
        if r["old_first_failed"] != r["new_first_failed"]
        or abs((r["old_reward"] or 0.0) - r["new_reward"]) > 1e-9
    ]
    return {"rows": out, "changed": changed, "without_transcript": missing}


def write_reverify(report: dict[str, Any], out: Path) -> Path:
    path = out / "reverify.jsonl"
    path.write_text("".join(json.dumps(r, default=str) + "\n" for r in report["rows"]))
    return path
