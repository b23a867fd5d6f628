"""Summaries of episode rows: per (env, agent) rewards with CIs, success, per-level pass rates."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from .stats import bootstrap_ci


def _group_summary(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("error") is None]
    rewards = [r["reward"] for r in ok]
    successes = [1.0 if r["success"] else 0.0 for r in ok]
    level_names: list[str] = []
    for r in ok:
        for lv in r["verdict"]["levels"]:
            if lv["name"] not in level_names:
                level_names.append(lv["name"])
    levels = (
        {
            name: sum(
                any(lv["name"] == name and lv["passed"] for lv in r["verdict"]["levels"])
                for r in ok
            )
            / len(ok)
            for name in level_names
        }
        if ok
        else {}
    )
    env_time = sum(r.get("env_time_s", 0.0) for r in ok)
    calls = sum(r.get("tool_calls", 0) for r in ok)
    return {
        "episodes": len(rows),
        "errors": len(rows) - len(ok),
        "reward_mean": sum(rewards) / len(rewards) if rewards else float("nan"),
        "reward_ci95": list(bootstrap_ci(rewards)),
        "success_rate": sum(successes) / len(successes) if successes else float("nan"),
        "success_ci95": list(bootstrap_ci(successes)),
        "level_pass_rates": levels,
        "turns_mean": sum(r["turns"] for r in ok) / len(ok) if ok else float("nan"),
        "tool_calls": calls,
        "tool_calls_per_s": calls / env_time if env_time > 0 else float("nan"),
        "wall_s": sum(r.get("wall_s", 0.0) for r in rows),
    }


def summarize(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """``{"groups": [{env_id, agent, ...summary}], "by_difficulty": [...]}``."""
    by_agent: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    by_difficulty: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        by_agent[(r["env_id"], r["agent"])].append(r)
        by_difficulty[(r["env_id"], r["agent"], r["difficulty"])].append(r)
    return {
        "groups": [
            {"env_id": e, "agent": a, **_group_summary(rs)}
            for (e, a), rs in sorted(by_agent.items())
        ],
        "by_difficulty": [
            {"env_id": e, "agent": a, "difficulty": d, **_group_summary(rs)}
            for (e, a, d), rs in sorted(by_difficulty.items())
        ],
    }


def print_table(summary: dict[str, Any], console: Any = None) -> None:
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: wide enough that the table stays readable
            console = Console(width=200)
    table = Table(title="hiergym bench")
    for col in (
        "env",
        "agent",
        "episodes",
        "reward (95% CI)",
        "success (95% CI)",
        "levels passed",
        "turns",
        "tool calls/s",
        "errors",
    ):
        table.add_column(
            col, justify="left" if col in ("env", "agent", "levels passed") else "right"
        )
    for g in summary["groups"]:
        lo, hi = g["reward_ci95"]
        slo, shi = g["success_ci95"]
        levels = " ".join(f"{k}={v:.0%}" for k, v in g["level_pass_rates"].items())
        table.add_row(
            g["env_id"],
            g["agent"],
            str(g["episodes"]),
            f"{g['reward_mean']:.3f} [{lo:.3f}, {hi:.3f}]",
            f"{g['success_rate']:.0%} [{slo:.0%}, {shi:.0%}]",
            levels,
            f"{g['turns_mean']:.1f}",
            f"{g['tool_calls_per_s']:,.0f}",
            str(g["errors"]),
        )
    console.print(table)
