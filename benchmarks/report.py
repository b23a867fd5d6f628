"""Summaries of episode rows: rewards, success, pass@k / pass^k and per-level funnels, all with CIs.

Every rate carries a 95% CI (see :mod:`.stats`): Wilson intervals for rates, with the number of
tasks as the sample size when tasks have several trials, and a task-clustered bootstrap for mean
rewards. pass@k and pass^k follow τ-bench: with n trials of a task and c successes,
pass@k = 1 - C(n-c, k)/C(n, k) (at least one of k draws succeeds) and pass^k = C(c, k)/C(n, k) (all
k draws succeed), averaged over tasks; their CI resamples tasks. With several runs, a paired
comparison gives, per env and agent, the difference in mean reward and success over the tasks both
runs share, with a bootstrap CI over those tasks.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .stats import paired_difference, rate_ci

Row = dict[str, Any]


def _rate(values: Sequence[float], tasks: Sequence[Any] | None = None) -> dict[str, Any]:
    mean = sum(values) / len(values) if values else float("nan")
    lo, hi = rate_ci(values, tasks)
    return {"mean": mean, "ci95": [lo, hi], "n": len(values)}


def task_key(row: Row) -> tuple[Any, ...]:
    return (row["env_id"], row["split"], row["difficulty"], row["seed"])


def _level_names(rows: Sequence[Row]) -> list[str]:
    names: list[str] = []
    for r in rows:
        for lv in r["verdict"]["levels"]:
            if lv["name"] not in names:
                names.append(lv["name"])
    return names


def pass_k(n: int, c: int, k: int) -> tuple[float, float]:
    """(pass@k, pass^k) of one task with ``c`` successes in ``n`` trials."""
    if k > n:
        raise ValueError(f"k={k} exceeds the {n} trials")
    return 1.0 - math.comb(n - c, k) / math.comb(n, k), math.comb(c, k) / math.comb(n, k)


def _group_summary(rows: Sequence[Row]) -> dict[str, Any]:
    ok = [r for r in rows if r.get("error") is None]
    tasks = [task_key(r) for r in ok]
    names = _level_names(ok)
    passed = {
        n: [
            1.0 if any(lv["name"] == n and lv["passed"] for lv in r["verdict"]["levels"]) else 0.0
            for r in ok
        ]
        for n in names
    }
    funnel: dict[str, list[float]] = {}
    running = [1.0] * len(ok)
    for n in names:  # cumulative: cleared this level and every level before it
        running = [a * b for a, b in zip(running, passed[n], strict=True)]
        funnel[n] = running
    by_task: dict[tuple[Any, ...], list[float]] = defaultdict(list)
    for r in ok:
        by_task[task_key(r)].append(1.0 if r["success"] else 0.0)
    trials = min((len(v) for v in by_task.values()), default=0)
    pass_at, pass_hat = {}, {}
    for k in range(1, trials + 1):
        per_task = [pass_k(len(v), int(sum(v)), k) for v in by_task.values()]
        pass_at[str(k)] = _rate([p[0] for p in per_task])
        pass_hat[str(k)] = _rate([p[1] for p in per_task])
    env_time = sum(r.get("env_time_s", 0.0) for r in ok)
    calls = sum(r.get("tool_calls", 0) for r in ok)
    tokens = [r["agent_stats"] for r in ok if r.get("agent_stats")]
    return {
        "episodes": len(rows),
        "tasks": len(by_task),
        "errors": len(rows) - len(ok),
        "reward": _rate([r["reward"] for r in ok], tasks),
        "success": _rate([1.0 if r["success"] else 0.0 for r in ok], tasks),
        "pass_at_k": pass_at,
        "pass_hat_k": pass_hat,
        "level_pass": {n: _rate(v, tasks) for n, v in passed.items()},
        "beats_reference": _beats_reference(ok),
        "funnel": {n: _rate(v, tasks) for n, v in funnel.items()},
        "turns_mean": sum(r["turns"] for r in ok) / len(ok) if ok else float("nan"),
        "tool_calls": calls,
        "tool_calls_per_s": calls / env_time if env_time > 0 else float("nan"),
        "prompt_tokens": sum(t.get("prompt_tokens", 0) for t in tokens),
        "completion_tokens": sum(t.get("completion_tokens", 0) for t in tokens),
        "wall_s": sum(r.get("wall_s", 0.0) for r in rows),
    }


def paired_comparison(runs: Sequence[tuple[str, Sequence[Row]]]) -> list[dict[str, Any]]:
    """Run 0 against each later run: per env and agent, ``later - first`` in mean reward and
    success over the tasks both ran (trials of a task averaged), with a CI over those tasks."""
    if len(runs) < 2:
        return []

    def per_task(rows: Sequence[Row]) -> dict[tuple[str, str], dict[Any, list[Row]]]:
        out: dict[tuple[str, str], dict[Any, list[Row]]] = defaultdict(lambda: defaultdict(list))
        for r in rows:
            if r.get("error") is None:
                out[(r["env_id"], r["agent"])][task_key(r)].append(r)
        return out

    base_name, base_rows = runs[0]
    base = per_task(base_rows)
    comparisons = []
    for name, rows in runs[1:]:
        other = per_task(rows)
        pairs = [(k, k) for k in sorted(set(base) & set(other))]
        if not pairs:  # different agents: pair each env's only agent of each run
            for env in sorted({e for e, _ in base} & {e for e, _ in other}):
                a = [k for k in base if k[0] == env]
                b = [k for k in other if k[0] == env]
                if len(a) == 1 and len(b) == 1:
                    pairs.append((a[0], b[0]))
        for ka, kb in pairs:
            shared = sorted(set(base[ka]) & set(other[kb]), key=str)
            if not shared:
                continue

            def mean(rs: list[Row], field: str) -> float:
                return sum(float(r[field]) for r in rs) / len(rs)

            comparisons.append(
                {
                    "env_id": ka[0],
                    "agent": ka[1] if ka[1] == kb[1] else f"{ka[1]} vs {kb[1]}",
                    "runs": [base_name, name],
                    "tasks": len(shared),
                    "reward_diff": paired_difference(
                        [mean(base[ka][t], "reward") for t in shared],
                        [mean(other[kb][t], "reward") for t in shared],
                    ),
                    "success_diff": paired_difference(
                        [mean(base[ka][t], "success") for t in shared],
                        [mean(other[kb][t], "success") for t in shared],
                    ),
                }
            )
    return comparisons


def summarize(rows: Sequence[Row]) -> dict[str, Any]:
    """Per (env, agent) and per (env, agent, difficulty) summaries, plus a cross-env leaderboard."""
    by_agent: dict[tuple[str, str], list[Row]] = defaultdict(list)
    by_difficulty: dict[tuple[str, str, str], list[Row]] = defaultdict(list)
    for r in rows:
        by_agent[(r["env_id"], r["agent"])].append(r)
        by_difficulty[(r["env_id"], r["agent"], r["difficulty"])].append(r)
    groups = [
        {"env_id": e, "agent": a, **_group_summary(rs)} for (e, a), rs in sorted(by_agent.items())
    ]
    leaderboard: dict[str, list[float]] = defaultdict(list)
    for g in groups:
        if g["reward"]["n"]:
            leaderboard[g["agent"]].append(g["reward"]["mean"])
    return {
        "groups": groups,
        "by_difficulty": [
            {"env_id": e, "agent": a, "difficulty": d, **_group_summary(rs)}
            for (e, a, d), rs in sorted(by_difficulty.items())
        ],
        "leaderboard": sorted(
            (
                {"agent": a, "mean_reward_over_envs": sum(v) / len(v), "envs": len(v)}
                for a, v in leaderboard.items()
            ),
            key=lambda x: -x["mean_reward_over_envs"],
        ),
    }


def _fmt_rate(rate: dict[str, Any], pct: bool = True) -> str:
    lo, hi = rate["ci95"]
    if pct:
        return f"{rate['mean']:.0%} [{lo:.0%}, {hi:.0%}]"
    return f"{rate['mean']:.3f} [{lo:.3f}, {hi:.3f}]"


def _console(console: Any) -> Any:
    from rich.console import Console

    if console is None:
        console = Console()
        if not console.is_terminal:  # logs and CI: a fixed width, the tables are built for 80
            console = Console(width=100)
    return console


def _short(env_id: str) -> str:
    return env_id.removeprefix("hiergym/")


def _beats_reference(rows: Sequence[Row]) -> int | None:
    """Episodes whose verdict says the design beat the reference's PPA (a level metric
    ``beats_reference_ppa``, else ``beats_reference``: RTL's PPA level, ChipSeek-R1's headline
    count); ``None`` when no verdict reports either."""
    count, seen = 0, False
    for r in rows:
        for lv in r["verdict"]["levels"]:
            metrics = lv.get("metrics") or {}
            flag = metrics.get("beats_reference_ppa", metrics.get("beats_reference"))
            if flag is not None:
                seen = True
                count += bool(flag)
    return count if seen else None


def results_table(summary: dict[str, Any]) -> Any:
    """One row per (env, agent): episodes, reward and success with CIs, pass^k with several trials,
    errors; fits 80 columns (turns, pass@k and per-level rates are in report.md and the funnel
    tables; a long agent name folds)."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
    trials = max((len(g["pass_hat_k"]) for g in summary["groups"]), default=1)
    beats = any(g.get("beats_reference") is not None for g in summary["groups"])
    table.add_column("env", no_wrap=True)
    table.add_column("agent", max_width=14, overflow="fold")
    for col in (
        "n",
        "reward [CI]",
        "success [CI]",
        *([f"pass^{trials}"] if trials > 1 else []),
        *(["beats"] if beats else []),
        "err",
    ):
        table.add_column(col, justify="right", no_wrap=True)
    for g in summary["groups"]:
        row = [
            _short(g["env_id"]),
            g["agent"],
            str(g["episodes"]),
            _fmt_short(g["reward"], pct=False),
            _fmt_short(g["success"]),
        ]
        if trials > 1:
            k = str(trials)
            row += [f"{g['pass_hat_k'][k]['mean']:.0%}" if k in g["pass_hat_k"] else "-"]
        if beats:  # designs that beat the reference's PPA (RTL), per run
            row += ["-" if g.get("beats_reference") is None else str(g["beats_reference"])]
        row += [str(g["errors"])]
        table.add_row(*row)
    return table


def funnel_tables(summary: dict[str, Any]) -> list[Any]:
    """Per env, one row per agent: the share of episodes that cleared each level and every level
    before it, a column per level."""
    from rich import box
    from rich.table import Table

    tables = []
    for env_id in sorted({g["env_id"] for g in summary["groups"]}):
        groups = [g for g in summary["groups"] if g["env_id"] == env_id and g["funnel"]]
        if not groups:
            continue
        levels = list(groups[0]["funnel"])
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column(f"{_short(env_id)} funnel")
        for n in levels:
            table.add_column(n, justify="right")
        for g in groups:
            table.add_row(
                g["agent"],
                *(f"{g['funnel'][n]['mean']:.0%}" if n in g["funnel"] else "-" for n in levels),
            )
        tables.append(table)
    return tables


def _fmt_short(rate: dict[str, Any], pct: bool = True) -> str:
    """A rate and its CI in few characters: ``100% [34,100]`` or ``0.52 [0.31,0.70]``."""
    lo, hi = rate["ci95"]
    if pct:
        return f"{rate['mean']:.0%} [{lo * 100:.0f},{hi * 100:.0f}]"
    return f"{rate['mean']:.2f} [{lo:.2f},{hi:.2f}]"


def print_table(summary: dict[str, Any], console: Any = None) -> None:
    """The results table, then one funnel table per env; fits 80 columns, no blank lines."""
    console = _console(console)
    console.print("hiergym bench: mean reward and success with 95% CIs", highlight=False)
    console.print(results_table(summary))
    for table in funnel_tables(summary):
        console.print(table)


def write_report(summary: dict[str, Any], out: Path, pngs: dict[str, str]) -> Path:
    """``report.md``: the leaderboard, per-env tables with CIs, funnels and their PNGs."""
    lines = ["# hiergym benchmark report", ""]
    cfg = summary.get("config")
    if cfg:
        lines += [f"Config: `{json.dumps(cfg)}`", ""]
    lines += [
        "## Leaderboard (mean reward over envs)",
        "",
        "| rank | agent | mean reward | envs |",
        "|---|---|---|---|",
    ]
    for i, e in enumerate(summary["leaderboard"], 1):
        lines.append(f"| {i} | {e['agent']} | {e['mean_reward_over_envs']:.3f} | {e['envs']} |")
    for env_id in sorted({g["env_id"] for g in summary["groups"]}):
        groups = [g for g in summary["groups"] if g["env_id"] == env_id]
        trials = max(len(g["pass_hat_k"]) for g in groups)
        lines += ["", f"## {env_id}", ""]
        head = "| agent | episodes | reward (95% CI) | success (95% CI) |"
        if trials > 1:
            head += f" pass@{trials} | pass^{trials} |"
        lines += [head + " turns | errors |", "|" + "---|" * (head.count("|") + 1)]
        for g in groups:
            row = f"| {g['agent']} | {g['episodes']} | {_fmt_rate(g['reward'], False)} | {_fmt_rate(g['success'])} |"
            if trials > 1:
                k = str(trials)
                row += f" {_fmt_rate(g['pass_at_k'][k])} | {_fmt_rate(g['pass_hat_k'][k])} |"
            lines.append(row + f" {g['turns_mean']:.1f} | {g['errors']} |")
        levels = list(groups[0]["funnel"]) if groups else []
        if levels:
            lines += ["", "Funnel (cleared the level and every level before it):", ""]
            lines += ["| agent | " + " | ".join(levels) + " |", "|---|" + "---|" * len(levels)]
            for g in groups:
                lines.append(
                    f"| {g['agent']} | "
                    + " | ".join(_fmt_rate(g["funnel"][n]) for n in levels if n in g["funnel"])
                    + " |"
                )
        if env_id in pngs:
            lines += ["", f"![funnel]({pngs[env_id]})"]
        by_diff = [d for d in summary["by_difficulty"] if d["env_id"] == env_id]
        if by_diff:
            lines += ["", "| agent | difficulty | reward (95% CI) | success |", "|---|---|---|---|"]
            lines += [
                f"| {d['agent']} | {d['difficulty']} | {_fmt_rate(d['reward'], False)} | {_fmt_rate(d['success'])} |"
                for d in by_diff
            ]
    comparisons = summary.get("comparison") or []
    if comparisons:
        lines += [
            "",
            "## Paired comparison (later run minus first, over the tasks both ran)",
            "",
            "| env | agent | runs | tasks | reward diff (95% CI) | success diff (95% CI) |",
            "|---|---|---|---|---|---|",
        ]
        for c in comparisons:
            r, s_ = c["reward_diff"], c["success_diff"]
            lines.append(
                f"| {c['env_id']} | {c['agent']} | {c['runs'][1]} - {c['runs'][0]} | {c['tasks']} | "
                f"{r['mean']:+.3f} [{r['ci95'][0]:+.3f}, {r['ci95'][1]:+.3f}] | "
                f"{s_['mean']:+.0%} [{s_['ci95'][0]:+.0%}, {s_['ci95'][1]:+.0%}] |"
            )
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def write_outputs(
    rows: Sequence[Row],
    out: Path,
    config: dict[str, Any] | None = None,
    comparison: list[dict[str, Any]] | None = None,
    html: bool = True,
    runs: Sequence[tuple[str, Path]] | None = None,
    pages: Mapping[str, str] | None = None,
    draw_pngs: Callable[[dict[str, Any], Path], Callable[[], dict[str, str]]] | None = None,
) -> dict[str, Any]:
    """summary.json, report.md, the funnel PNGs and (``html``) report.html of ``rows`` into
    ``out``; ``runs`` (name, folder) are where report.html reads the transcripts (default
    ``out``), a row's ``run`` field naming its run when there are several. ``pages``: episode
    pages made where the episodes ran (see :func:`.html_report.build_payload`). ``draw_pngs``
    starts drawing the funnel PNGs elsewhere (bench workers) and returns what waits for their
    names; the page is built meanwhile. Default: drawn here."""
    from .html_report import write_html
    from .plots import funnel_pngs

    summary = summarize(rows)
    if config is not None:
        summary["config"] = config
    if comparison:
        summary["comparison"] = comparison
    drawn = draw_pngs(summary, out) if draw_pngs is not None else None
    summary["funnel_pngs"] = {}  # its place in summary.json; the page does not show it
    if drawn is None:
        summary["funnel_pngs"] = funnel_pngs(summary, out)
    if html:
        page = write_html(summary, rows, out, runs, pages)
        summary["report_html"] = {"file": page.name, "bytes": page.stat().st_size}
    if drawn is not None:
        summary["funnel_pngs"] = drawn()
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_report(summary, out, summary["funnel_pngs"])
    return summary
