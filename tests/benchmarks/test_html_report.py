"""report.html: a real bench run rendered to one offline page, then read as a person would, in
headless Chromium (Debian's ``chromium``; the browser tests skip, saying why, when none can be had).

The run: Geometry, Shopping and RTL, easy, one episode each of the oracle and of a scripted agent (``constant``) that first makes a bad call, then submits a wrong answer: on RTL a
design with every output tied to 0 (it compiles, so ``function`` is the first failed level and the
simulation's mismatches are shown), elsewhere an empty answer (``format`` fails).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from hiergym.benchmarks import html_report
from hiergym.benchmarks.bench import bench
from hiergym.benchmarks.html_report import unpack
from hiergym.benchmarks.runner import read_rows
from hiergym.cli import main
from hiergym.envs.tools import ToolCall

ENVS = ("hiergym/Geometry-v0", "hiergym/Shopping-v0", "hiergym/RTL-v0")
AGENTS = ("oracle", "constant")


class ConstantAgent:
    """One call to a tool that does not exist, then a wrong submission."""

    name = "constant"

    def bind(self, env):
        self.env = env.unwrapped
        self.step = 0

    def act(self, observation, info):
        self.step += 1
        if self.step == 1:
            return '{"name": "serch", "arguments": {}}'
        if "RTL" in type(self.env).__name__:
            from hiergym.envs.rtl.attacks import constant_output

            return ToolCall("submit", {"code": constant_output(self.env.task)})
        return ToolCall("submit", {})


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A bench run (bench writes report.html by default)."""
    import hiergym.agents

    out = tmp_path_factory.mktemp("html") / "run"
    real = hiergym.agents.load
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(
            hiergym.agents,
            "load",
            lambda name, **kw: ConstantAgent() if name == "constant" else real(name, **kw),
        )
        bench(
            ENVS,
            AGENTS,
            episodes=1,
            out=out,
            difficulties=("easy",),
            show_progress=False,
            env_kwargs={"max_turns": 8},  # the scripted agent's failed submits end there
        )
    return out


def payload_of(page: Path) -> dict:
    text = page.read_text()
    literal = re.search(r"const PAYLOAD = (\{.*?\});\n", text, re.S)
    assert literal, "the page has no embedded payload"
    return json.loads(literal.group(1))


def strict_json(blob: str):
    def refuse(name):
        raise AssertionError(f"{name} in the embedded JSON: a browser's JSON.parse rejects it")

    import base64
    import gzip

    return json.loads(gzip.decompress(base64.b64decode(blob)), parse_constant=refuse)


def index_of(run: Path, env: str, agent: str) -> int:
    rows = read_rows(run / "episodes.jsonl")
    return next(i for i, r in enumerate(rows) if r["env_id"] == env and r["agent"] == agent)


# --------------------------------------------------------------------------------------------
# The file itself


def test_bench_writes_a_self_contained_report_with_every_episode(run):
    page = run / "report.html"
    assert page.is_file()
    text = page.read_text()
    # nothing fetched from anywhere: no external script, stylesheet, image, font or URL import
    assert not re.search(r"""<(script|img|link|iframe)[^>]+(src|href)\s*=""", text, re.I)
    assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text)
    assert "@import" not in text
    summary = json.loads((run / "summary.json").read_text())
    assert summary["report_html"] == {"file": "report.html", "bytes": page.stat().st_size}

    rows = read_rows(run / "episodes.jsonl")
    transcripts = html_report.read_transcripts(run)
    payload = payload_of(page)
    index = strict_json(payload["index"])
    assert len(index) == len(payload["episodes"]) == len(rows) == len(ENVS) * len(AGENTS)
    strict_json(payload["summary"])
    for entry, blob, row in zip(index, payload["episodes"], rows, strict=True):
        ep = strict_json(blob)
        assert entry["env_id"] == row["env_id"] and entry["agent"] == row["agent"]
        assert entry["first_failed"] == row["verdict"]["first_failed"]
        assert ep["row"]["verdict"] == row["verdict"]
        stored = transcripts[row["key"]]["trajectory"]["turns"]
        assert [t["action"] for t in ep["turns"]] == [t["action"] for t in stored]
        assert [len(t["results"]) for t in ep["turns"]] == [len(t["results"]) for t in stored]
        assert ep["prompt"][-1]["role"] == "user" and ep["prompt"][-1]["content"]
        turns = {t["index"] for t in ep["turns"]}
        for lv in row["verdict"]["levels"]:  # every cited turn is on the page
            assert set(lv.get("evidence", ())) <= turns


def test_the_page_carries_the_process_checks_and_domain_panels(run):
    payload = payload_of(run / "report.html")
    pages = [unpack(b) for b in payload["episodes"]]
    constant = [p for p in pages if p["row"]["agent"] == "constant"]
    for p in constant:  # the unknown tool is an invalid call, charged by ProcessReward's check
        assert p["turns"][0]["process"]["invalid_call"] == -1.0
        assert p["turns"][0]["results"][0]["ok"] is False
    rtl = next(p for p in constant if "RTL" in p["row"]["env_id"])
    assert rtl["row"]["verdict"]["first_failed"] == "function"
    assert rtl["domain"]["kind"] == "rtl" and "assign" in rtl["domain"]["design"]
    assert rtl["domain"]["mismatches"] and rtl["domain"]["mismatches"][0]["code"] == "mismatch"
    geo = next(
        p for p in pages if p["row"]["agent"] == "oracle" and "Geometry" in p["row"]["env_id"]
    )
    precision = next(lv for lv in geo["row"]["verdict"]["levels"] if lv["name"] == "precision")
    assert geo["domain"]["kind"] == "geometry" and geo["domain"]["passed"] is precision["passed"]
    assert geo["domain"]["tolerance"].startswith("Tolerance:")
    assert geo["domain"]["metrics"]  # the errors that were compared with the tolerance


def test_the_page_is_deterministic(run, tmp_path):
    rows = read_rows(run / "episodes.jsonl")
    summary = json.loads((run / "summary.json").read_text())
    a = html_report.write_html(summary, rows, tmp_path, [("run", run)]).read_bytes()
    b = html_report.write_html(summary, rows, tmp_path, [("run", run)]).read_bytes()
    assert a == b


def test_a_run_without_transcripts_or_with_a_torn_line_still_renders(run, tmp_path):
    rows = read_rows(run / "episodes.jsonl")
    lines = (run / "transcripts.jsonl").read_text().splitlines()
    (tmp_path / "transcripts.jsonl").write_text("\n".join(lines[1:]) + '\n{"key": "to')
    summary = json.loads((run / "summary.json").read_text())
    payload = payload_of(html_report.write_html(summary, rows, tmp_path))
    pages = [unpack(b) for b in payload["episodes"]]
    assert [p["has_transcript"] for p in pages] == [False] + [True] * (len(rows) - 1)
    assert pages[0]["turns"] == [] and pages[0]["row"]["verdict"] == rows[0]["verdict"]


def test_report_html_flag_and_comparison_of_two_runs(run, tmp_path, capsys):
    single = tmp_path / "single"
    assert main(["report", str(run), "--out", str(single)]) == 0
    assert not (single / "report.html").exists()  # only with --html
    assert main(["report", str(run), "--html", "--out", str(single)]) == 0
    assert re.search(r"report\.html \(\d+(\.\d)? [kM]?B, 6 episodes\)", capsys.readouterr().out)
    assert all(unpack(b)["has_transcript"] for b in payload_of(single / "report.html")["episodes"])

    other = tmp_path / "again"
    shutil.copytree(run, other)
    both = tmp_path / "both"
    assert main(["report", str(run), str(other), "--html", "--out", str(both)]) == 0
    payload = payload_of(both / "report.html")
    assert payload["runs"] == ["run", "again"]
    index = unpack(payload["index"])
    assert [e["run"] for e in index] == ["run"] * 6 + ["again"] * 6
    assert all(unpack(b)["has_transcript"] for b in payload["episodes"])
    assert unpack(payload["summary"])["comparison"]


# --------------------------------------------------------------------------------------------
# In a browser

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _chromium() -> str | None:
    found = os.environ.get("HIERGYM_CHROMIUM")
    if found:
        return found
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture
def browser(tmp_path):
    """A page in headless Chromium that records console errors and uncaught exceptions."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="the browser test needs playwright (pip install -e .[dev])"
    )
    executable = _chromium()
    if executable is None:
        pytest.skip(
            "no chromium on this machine (apt-get install chromium, or make install, which "
            "installs it; HIERGYM_CHROMIUM=/path/to/chrome to use another)"
        )
    with sync_api.sync_playwright() as p:
        try:
            context = p.chromium.launch_persistent_context(
                str(tmp_path / "profile"),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 900},
            )
        except Exception as e:  # e.g. a snap-wrapped chromium that cannot start in a container
            pytest.skip(f"{executable} could not be started headless: {e}")
        page = context.new_page()
        page.errors = []
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: page.errors.append(f"uncaught: {e}"))
        page.set_default_timeout(15_000)
        yield page
        context.close()


def ready(page, view: str) -> None:
    page.wait_for_selector(f"body[data-view='{view}'][data-ready='1']")


def test_a_person_reads_the_report_in_chromium(run, browser, tmp_path):
    page = browser
    page.goto((run / "report.html").as_uri())
    ready(page, "overview")
    assert page.locator("#leaderboard tbody tr").count() == len(AGENTS)
    assert page.locator("svg.funnel").count() == len(ENVS)
    assert page.locator("svg.funnel rect.bar").count() > 0

    # the episode list, filtered to the scripted agent's failures
    page.click("#nav-episodes")
    ready(page, "episodes")
    assert page.inner_text("#ep-count") == "6 of 6 episodes"
    page.select_option("#f-agent", "constant")
    assert page.inner_text("#ep-count") == "3 of 6 episodes"
    page.select_option("#f-failed", "function")
    assert page.inner_text("#ep-count") == "1 of 6 episodes"

    # into the RTL episode: the failing level is shown with its mismatches, and the design
    page.click("tr.ep-row")
    ready(page, "episode")
    assert page.inner_text("#first-failed") == "function"
    failed = page.locator(".level.failed[data-level='function']")
    assert failed.is_visible() and "mismatch" in failed.inner_text()
    assert page.locator(".level.passed[data-level='syntax']").count() == 1
    assert page.locator(".first-failed").inner_text() == "first failed level"
    assert "assign" in page.inner_text("#domain-panel pre.design")
    assert page.locator("#domain-panel .mismatches li").count() >= 1
    bad = page.locator("#turn-0 .result.error")  # the unknown tool: highlighted
    assert bad.is_visible() and "serch" in bad.inner_text()
    page.screenshot(path=str(tmp_path / "rtl-episode.png"), full_page=True)

    # the oracle's Geometry episode: a cited turn is one click from its level
    i = index_of(run, ENVS[0], "oracle")
    verdict = read_rows(run / "episodes.jsonl")[i]["verdict"]
    page.goto((run / "report.html").as_uri() + f"#ep={i}")
    ready(page, "episode")
    # (on a loaded machine the python tool may time out once: the row says what the page must)
    assert page.inner_text("#first-failed") == (verdict["first_failed"] or "every level passed")
    precision = next(lv for lv in verdict["levels"] if lv["name"] == "precision")
    assert page.inner_text("#precision-status") == (
        "within tolerance" if precision["passed"] else "not within tolerance"
    )
    link = page.locator(".level[data-level='grounding'] .evidence a.turn-link").first
    cited = link.get_attribute("data-turn")
    link.click()
    target = page.locator(f"#turn-{cited}")
    target.wait_for(state="visible")
    page.wait_for_function(f"document.getElementById('turn-{cited}').classList.contains('target')")
    assert target.is_visible() and "cited by grounding" in target.inner_text()
    box = target.bounding_box()
    assert box is not None and 0 <= box["y"] < 900  # scrolled to it
    page.screenshot(path=str(tmp_path / "cited-turn.png"))
    assert (tmp_path / "cited-turn.png").stat().st_size > 0
    assert page.errors == []


def test_thousands_of_episodes_load_lazily(run, browser, tmp_path):
    """3,000 episodes: the list opens without decoding a single episode page, pages through, and
    decodes exactly the episode that is opened."""
    rows = read_rows(run / "episodes.jsonl")
    transcripts = html_report.read_transcripts(run)
    big = tmp_path / "big"
    big.mkdir()
    many, lines = [], []
    for copy in range(3000 // len(rows) + 1):
        for r in rows:
            key = f"{r['key']}#{copy}"
            many.append({**r, "seed": r["seed"] + 1000 * copy, "key": key})
            lines.append(json.dumps({**transcripts[r["key"]], "key": key}))
    many = many[:3000]
    broken = {"reward": None, "success": False, "verdict": None, "error": "RuntimeError: boom"}
    many[7] = {**many[7], **broken, "traceback": "Traceback ...\nRuntimeError: boom"}
    (big / "transcripts.jsonl").write_text("\n".join(lines) + "\n")
    summary = json.loads((run / "summary.json").read_text())
    page_file = html_report.write_html(summary, many, big)

    page = browser
    page.goto(page_file.as_uri() + "#episodes")
    ready(page, "episodes")
    assert page.inner_text("#ep-count") == "3000 of 3000 episodes"
    assert page.locator("#episodes tbody tr").count() == 100
    assert page.evaluate("window.hgStats.decoded") == 0
    page.locator("button.next-page").first.click()
    assert page.inner_text(".page-info >> nth=0") == "page 2 of 30"
    page.locator("tr.ep-row").nth(5).click()
    ready(page, "episode")
    assert page.inner_text("#ep-title").startswith("Episode 105:")
    assert page.evaluate("window.hgStats.decoded") == 1

    # an episode that raised: found by the errors filter, its page shows why
    page.click("#nav-episodes")
    ready(page, "episodes")
    page.select_option("#f-errors", "yes")
    assert page.inner_text("#ep-count") == "1 of 3000 episodes"
    page.click("tr.ep-row")
    ready(page, "episode")
    assert "RuntimeError: boom" in page.inner_text("#ep-error")
    assert page.locator("#verdict").count() == 0
    assert page.errors == []


def test_the_process_rewards_paid_per_step_reach_the_episode_page() -> None:
    from hiergym.benchmarks.html_report import episode_page
    from hiergym.benchmarks.runner import EpisodeRunner, EpisodeSpec

    runner = EpisodeRunner(env_kwargs={"process_reward": True})
    row = runner.run(EpisodeSpec("hiergym/Shopping-v0", "test", "easy", "oracle", 0, 0))
    runner.close()
    assert row["error"] is None, row.get("traceback")
    paid = row["transcript"]["process_rewards"]
    assert len(paid) == row["turns"] and all(isinstance(p, float) for p in paid)
    assert any(p != 0.0 for p in paid)  # the oracle's searches are new information
    page = episode_page(row, row["transcript"])
    assert [t["paid"] for t in page["turns"]] == paid
    # without ProcessReward there is nothing to show, and nothing is made up
    plain = EpisodeRunner()
    row = plain.run(EpisodeSpec("hiergym/Shopping-v0", "test", "easy", "oracle", 0, 0))
    plain.close()
    assert "process_rewards" not in row["transcript"]
    assert all(t["paid"] is None for t in episode_page(row, row["transcript"])["turns"])
