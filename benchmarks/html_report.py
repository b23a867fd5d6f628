"""``report.html``: one self-contained file to look at a benchmark run (or several) in a browser.

No server, no network: the page is the template ``hiergym/templates/report/report.html`` (inline
CSS and JS, charts drawn as inline SVG) with the run's data embedded in it, so it opens from
``file://`` and can be mailed or archived with the run.

What is embedded:

* the summary (leaderboard, per-env tables with their CIs, funnels, paired comparison), gzip +
  base64, decoded when the page opens;
* an index of every episode (the fields the episode list filters on), gzip + base64;
* every episode's page data (the row's verdict, the task prompt, each turn's action, parsed calls,
  tool results, the default process checks of that turn, and a domain panel), each episode its own
  gzip + base64 string, decoded only when that episode is opened. A run of thousands of episodes
  therefore opens as fast as its index decodes; an episode page is rendered on demand.

The browser decodes with ``DecompressionStream('gzip')`` (Chromium 80, Firefox 113, Safari 16.4).
Everything is compressed with ``mtime=0``, so the same run gives the same bytes.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

Row = dict[str, Any]

TEMPLATE = ("templates", "report", "report.html")
"""The page template inside the ``hiergym`` package."""
PAYLOAD_MARK = "/*HIERGYM_PAYLOAD*/"
"""Where the template takes the data: it is replaced by a JS object literal."""
INDEX_FIELDS = (
    "run",
    "env_id",
    "agent",
    "difficulty",
    "split",
    "seed",
    "trial",
    "task_id",
    "reward",
    "success",
    "end",
    "turns",
    "tool_calls",
    "invalid_calls",
    "error",
)


def _finite(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None`` (JSON has neither)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def pack(value: Any) -> str:
    """``value`` as JSON, gzip-compressed (deterministically) and base64-encoded."""
    try:
        raw = json.dumps(value, separators=(",", ":"), default=str, allow_nan=False)
    except ValueError:  # a NaN or an infinity somewhere (a mean of nothing): null instead
        raw = json.dumps(_finite(value), separators=(",", ":"), default=str, allow_nan=False)
    return base64.b64encode(gzip.compress(raw.encode(), compresslevel=9, mtime=0)).decode("ascii")


def unpack(blob: str) -> Any:
    """The inverse of :func:`pack`."""
    return json.loads(gzip.decompress(base64.b64decode(blob)))


def read_transcripts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """``transcripts.jsonl`` of a run, by episode key (the last line of a key wins, as in a
    resumed run); empty when the run has none."""
    path = run_dir / "transcripts.jsonl"
    out: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return out
    with path.open() as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run
            if isinstance(record, dict) and "key" in record:
                out[record["key"]] = record
    return out


def process_checks(turns: Sequence[Mapping[str, Any]]) -> list[dict[str, float]]:
    """Per turn, the raw values of ProcessReward's default checks (what ``info["process"]`` holds
    on that step, before weights, budget and settlement), computed on the stored trajectory."""
    from hiergym.envs.core import Trajectory
    from hiergym.rewards.wrappers import DEFAULT_CHECKS

    from .runner import trajectory_from_record

    full = trajectory_from_record({"turns": list(turns), "end": None}, None, {})
    out = []
    for i, turn in enumerate(full.turns):
        so_far = Trajectory(None, full.turns[: i + 1], None, None)
        out.append({name: float(fn(turn, so_far)) for name, (fn, _) in DEFAULT_CHECKS.items()})
    return out


def _prompt(messages: Sequence[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The messages before the agent's first reply: the system prompt and the task."""
    out = []
    for m in messages:
        if m.get("role") == "assistant":
            break
        out.append({"role": str(m.get("role")), "content": str(m.get("content") or "")})
    return out


def _submission(turns: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The last call that the env accepted as the submission (a ``submit`` call answered ok)."""
    found = None
    for t in turns:
        for call, result in zip(t.get("calls", ()), t.get("results", ()), strict=False):
            if call.get("name") == "submit" and result.get("ok"):
                found = {"turn": t.get("index"), "arguments": call.get("arguments")}
    return found


def _domain_panel(row: Row, turns: Sequence[Mapping[str, Any]], prompt: list[dict[str, str]]):
    """What a reader of this domain looks at first: RTL's submitted design and its first
    mismatches; Geometry's compared numbers and the task's tolerance."""
    levels = (row.get("verdict") or {}).get("levels") or []
    sub = _submission(turns)
    env = row.get("env_id", "")
    if "RTL" in env:
        args = (sub or {}).get("arguments") or {}
        code = args.get("code") if isinstance(args, Mapping) else None
        mismatches = [
            {"level": lv["name"], **f}
            for lv in levels
            for f in lv.get("findings", ())
            if f.get("code") in ("mismatch", "counterexample", "netlist_counterexample")
        ]
        return {
            "kind": "rtl",
            "design": code if isinstance(code, str) else None,
            "submitted_turn": (sub or {}).get("turn"),
            "mismatches": mismatches,
        }
    if "Geometry" in env:
        task = next((m["content"] for m in prompt if m["role"] == "user"), "")
        tolerance = next((line.strip() for line in task.splitlines() if "Tolerance" in line), None)
        if tolerance and "Tolerance:" in tolerance:
            tolerance = tolerance[tolerance.index("Tolerance:") :]
        precision = next((lv for lv in levels if lv["name"] == "precision"), None)
        return {
            "kind": "geometry",
            "answer": (sub or {}).get("arguments"),
            "submitted_turn": (sub or {}).get("turn"),
            "tolerance": tolerance,
            "metrics": (precision or {}).get("metrics") or {},
            "findings": (precision or {}).get("findings") or [],
            "passed": (precision or {}).get("passed"),
            "skipped": bool((precision or {}).get("skipped")),
        }
    return None


def episode_page(row: Row, transcript: Mapping[str, Any] | None) -> dict[str, Any]:
    """Everything an episode page shows, from its row and its transcript (``None``: an older run
    without transcripts, or an episode that raised)."""
    record = (transcript or {}).get("trajectory") or {}
    turns = record.get("turns") or []
    messages = (transcript or {}).get("messages") or []
    prompt = _prompt(messages)
    checks = process_checks(turns) if turns else []
    paid = (transcript or {}).get("process_rewards") or []
    page_turns = []
    for i, t in enumerate(turns):
        page_turns.append(
            {
                "index": t.get("index", i),
                "action": t.get("action"),
                "calls": t.get("calls") or [],
                # ``data`` (what the verifiers read) is left out: ``content`` is what the agent saw
                "results": [
                    {k: r.get(k) for k in ("name", "ok", "content", "error", "call_id")}
                    for r in t.get("results") or []
                ],
                "process": checks[i] if i < len(checks) else {},
                # what ProcessReward paid on this step (settlement included), when the run had it
                "paid": paid[i] if i < len(paid) else None,
            }
        )
    return {
        "row": {k: v for k, v in row.items() if k != "transcript"},
        "has_transcript": transcript is not None,
        "prompt": prompt,
        "end": record.get("end", row.get("end")),
        "submitted": record.get("submitted"),
        "turns": page_turns,
        "domain": _domain_panel(row, turns, prompt),
    }


def build_payload(
    summary: Mapping[str, Any],
    rows: Sequence[Row],
    runs: Sequence[tuple[str, Path]],
    pages: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The page's data: ``rows`` (each tagged with its run's name in ``row["run"]`` when there are
    several runs) and the transcripts of ``runs`` (name, folder). ``pages``: episode key -> the
    packed page of a row of the first run, already made where the episode ran (a bench worker
    makes it from the row's and the transcript's lines, as this function would); a run's
    transcripts are read only when one of its rows has no page there."""
    default = runs[0][0] if runs else ""
    folders = dict(runs)
    transcripts: dict[str, dict[str, dict[str, Any]]] = {}
    index, packed = [], []
    for row in rows:
        run = row.get("run") or default
        levels = (row.get("verdict") or {}).get("levels") or []
        entry = {k: row.get(k) for k in INDEX_FIELDS}
        entry["run"] = run
        entry["first_failed"] = (row.get("verdict") or {}).get("first_failed")
        entry["levels"] = [[lv["name"], bool(lv["passed"])] for lv in levels]
        index.append(entry)
        ready = pages.get(row.get("key", "")) if pages and run == default else None
        if ready is None:
            if run not in transcripts:
                transcripts[run] = read_transcripts(folders[run]) if run in folders else {}
            transcript = transcripts[run].get(row.get("key", ""))
            if transcript is None:
                transcript = row.get("transcript")
            ready = pack(episode_page({**row, "run": run}, transcript))
        packed.append(ready)
    shown = {k: v for k, v in summary.items() if k != "funnel_pngs"}
    return {
        "version": 1,
        "runs": [name for name, _ in runs],
        "summary": pack(shown),
        "index": pack(index),
        "episodes": packed,
    }


def render(payload: Mapping[str, Any]) -> str:
    """The page: the template with ``payload`` in it."""
    template = resources.files("hiergym").joinpath(*TEMPLATE).read_text(encoding="utf-8")
    if PAYLOAD_MARK not in template:
        raise RuntimeError(f"the report template has no {PAYLOAD_MARK} mark")
    # base64 strings and plain names only: nothing in it can close the <script> element
    literal = json.dumps(payload, separators=(",", ":"))
    if "</" in literal:
        raise RuntimeError("the report payload would close its <script> element")
    return template.replace(PAYLOAD_MARK, literal)


def default_run(out: Path) -> str:
    """The name report.html gives the run in ``out`` when it is the only one."""
    return out.name or "run"


def write_html(
    summary: Mapping[str, Any],
    rows: Sequence[Row],
    out: Path,
    runs: Sequence[tuple[str, Path]] | None = None,
    pages: Mapping[str, str] | None = None,
) -> Path:
    """Write ``out/report.html`` for ``rows`` (transcripts read from ``runs``: (name, folder),
    default the folder ``out`` itself; ``pages``: see :func:`build_payload`); returns its path."""
    runs = list(runs) if runs else [(default_run(out), out)]
    path = out / "report.html"
    path.write_text(render(build_payload(summary, rows, runs, pages)), encoding="utf-8")
    return path


def human_size(n: int) -> str:
    """``1234567`` -> ``'1.2 MB'``."""
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"
