"""Funnel PNGs: per env, the share of episodes that cleared each verifier level, one bar per agent."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def _slug(env_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", env_id).strip("_")


def funnel_pngs(
    summary: dict[str, Any], out: Path, env_ids: Iterable[str] | None = None
) -> dict[str, str]:
    """Write ``funnel_<env>.png`` per env (of ``env_ids`` only, when given: bench workers each
    draw a share); returns env id -> file name (empty without matplotlib). Figures are drawn on
    matplotlib's Agg canvas directly: no pyplot (its import and its global figure registry)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        import logging

        logging.getLogger("hiergym").warning(
            "funnel plots skipped: matplotlib is not installed (pip install 'hiergym[plots]')"
        )
        return {}
    written: dict[str, str] = {}
    wanted = None if env_ids is None else set(env_ids)
    for env_id in sorted({g["env_id"] for g in summary["groups"]}):
        if wanted is not None and env_id not in wanted:
            continue
        groups = [g for g in summary["groups"] if g["env_id"] == env_id and g["funnel"]]
        if not groups:
            continue
        levels = list(groups[0]["funnel"])
        width = 0.8 / len(groups)
        fig = Figure(figsize=(1.6 + 1.4 * len(levels), 3.6))
        FigureCanvasAgg(fig)
        ax = fig.add_subplot()
        for i, g in enumerate(groups):
            means = [g["funnel"][n]["mean"] for n in levels]
            # clamped: an interval's end may sit a rounding error on the wrong side of its mean
            lo = [
                max(0.0, m - g["funnel"][n]["ci95"][0]) for m, n in zip(means, levels, strict=True)
            ]
            hi = [
                max(0.0, g["funnel"][n]["ci95"][1] - m) for m, n in zip(means, levels, strict=True)
            ]
            xs = [j + (i - (len(groups) - 1) / 2) * width for j in range(len(levels))]
            ax.bar(
                xs,
                means,
                width,
                yerr=[lo, hi],
                capsize=3,
                edgecolor="black",  # a bar of height 0 still shows as a line at the axis
                linewidth=0.8,
                label=f"{g['agent']} (n={g['reward']['n']})",
            )
        ax.set_xticks(range(len(levels)), levels)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel("cleared this level and all before")
        ax.set_title(f"{env_id}: verifier funnel (95% CI)")
        ax.legend(fontsize=8, loc="upper right")
        fig.tight_layout()
        name = f"funnel_{_slug(env_id)}.png"
        fig.savefig(out / name, dpi=110)
        written[env_id] = name
    return written
