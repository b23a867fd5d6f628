"""The ``hiergym`` command: list, play, bench, data."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def _cmd_list(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from hiergym.envs.registry import broken_plugins, list_envs, missing_data

    table = Table(title="hiergym envs")
    for col in ("id", "source", "status", "entry"):
        table.add_column(col)
    for e in list_envs():
        try:  # the env class says what data it still needs ("needs data: ...")
            status = missing_data(e.env_id) or "ok"
        except Exception as err:  # noqa: BLE001 - one env's import error must not hide the list
            status = f"cannot load: {err}"
        table.add_row(e.env_id, e.source, escape(status), e.env_class)
    for b in broken_plugins():
        table.add_row(f"(plugin {b.name})", b.name, f"[red]broken[/red]: {b.error}", b.target)
    Console().print(table)
    return 0


def verdict_table(verdict: object) -> str:
    """A verdict as a few lines: one per level (pass/fail, score, its first finding)."""
    d = verdict.to_dict()  # type: ignore[attr-defined]
    lines = []
    for lv in d["levels"]:
        mark = "pass" if lv["passed"] else ("n/a " if lv.get("skipped") else "FAIL")
        finding = lv["findings"][0]["message"] if lv["findings"] else ""
        lines.append(f"  {lv['name']:<12} {mark} {lv['score']:.2f}  {finding[:90]}")
    lines.append(f"first failed: {d['first_failed'] or 'none'}; reward {d['reward']:.3f}")
    return "\n".join(lines)


def _read_action(prompt: str = "> ") -> str | None:
    """One action from the terminal; JSON may span several lines (until it parses, or a blank
    line ends it)."""
    try:
        line = input(prompt)
    except EOFError:
        return None
    text = line.strip()
    if not text.startswith(("{", "[")):
        return text
    while True:
        try:
            json.loads(text)
            return text
        except ValueError:
            pass
        try:
            more = input(". ")
        except EOFError:
            return text
        if not more.strip():
            return text
        text += "\n" + more


def _cmd_play(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from hiergym.envs.registry import resolve_env_id
    from hiergym.testing import oracle_actions

    env = gym.make(resolve_env_id(args.env), split=args.split, difficulty=args.difficulty)
    obs, info = env.reset(seed=args.seed)
    print(obs)
    print("\ntools:", ", ".join(t["function"]["name"] for t in info["tools"]))
    try:
        example = oracle_actions(env)[0].to_json()
    except Exception:  # an env without an oracle still plays
        first = info["tools"][0]["function"]["name"]
        example = json.dumps({"name": first, "arguments": {}})
    print(
        f"Type a tool call as JSON (it may span lines), e.g. {example}\n"
        '"help NAME" shows a tool\'s schema; Ctrl-D quits.'
    )
    schemas = {t["function"]["name"]: t["function"] for t in info["tools"]}
    while True:
        line = _read_action()
        if line is None:
            return 0
        if line.startswith("help"):
            name = line[4:].strip()
            print(json.dumps(schemas.get(name, list(schemas)), indent=2))
            continue
        if not line:
            continue
        obs, reward, terminated, truncated, info = env.step(line)
        print(obs)
        if terminated or truncated:
            print(verdict_table(info["verdict"]))
            return 0


def _preflight(
    env_ids: Sequence[str], agents: Sequence[str], args: argparse.Namespace
) -> str | None:
    """Why the run cannot work, found before any episode runs (None when it can)."""
    import gymnasium as gym

    from hiergym.agents import check
    from hiergym.envs.registry import load_class
    from hiergym.errors import HiergymError, did_you_mean

    if not agents:
        return "no agents given (--agents random,oracle, say)"
    for spec in agents:
        try:
            check(spec)
        except HiergymError as e:
            return str(e)
    for env_id in env_ids:
        cls = load_class(gym.spec(env_id).kwargs["env_class"])
        split = args.split
        if split and split not in cls.splits:
            return f"{env_id} has no split {split!r}{did_you_mean(split, cls.splits)}; splits: {list(cls.splits)}"
        for d in args.difficulties.split(",") if args.difficulties else ():
            if d not in cls.difficulties:
                return (
                    f"{env_id} has no difficulty {d!r}{did_you_mean(d, cls.difficulties)}; "
                    f"difficulties: {list(cls.difficulties)}"
                )
    return None


def _cmd_bench(args: argparse.Namespace) -> int:
    import os

    from hiergym.benchmarks.bench import bench, start_workers_early

    if (args.workers > 1 or args.ray is not None) and Path("hiergym").is_dir():
        own = Path(__file__).resolve().parent
        if Path("hiergym").resolve() != own and not Path("hiergym/__init__.py").exists():
            print(
                f"hiergym: the folder {os.getcwd()}/hiergym would shadow the installed package in "
                "worker processes (they start in this directory); run from another directory",
                file=sys.stderr,
            )
            return 2
    from hiergym.benchmarks.report import print_table
    from hiergym.benchmarks.runner import SUITES
    from hiergym.envs.registry import list_envs, missing_data, resolve_env_id

    suite = SUITES[args.suite]
    named = [resolve_env_id(e.strip()) for e in args.envs.split(",")] if args.envs else []
    if args.workers > 1 and args.ray is None:  # its imports overlap the checks below
        start_workers_early(named or [e.env_id for e in list_envs()])
    env_ids = named
    # no --envs: every registered env that can be made here; one over absent user data is skipped
    if not named:
        for entry in list_envs():
            reason = missing_data(entry.env_id)
            if reason:
                print(f"skipping {entry.env_id}: {reason}", file=sys.stderr)
            else:
                env_ids.append(entry.env_id)
    agents = [a.strip() for a in args.agents.split(",") if a.strip()]
    problem = _preflight(env_ids, agents, args)
    if problem:
        print(f"hiergym: {problem}", file=sys.stderr)
        return 2
    difficulties = args.difficulties.split(",") if args.difficulties else suite["difficulties"]
    agent_options = {"temperature": args.temperature, "max_tokens": args.max_tokens}
    summary = bench(
        env_ids,
        agents,
        episodes=args.episodes or suite["episodes"],
        out=Path(args.out),
        split=args.split or suite["split"],
        difficulties=difficulties,
        seed=args.seed,
        trials=args.trials,
        workers=args.workers,
        ray_address=args.ray,
        resume=args.resume,
        show_progress=not args.quiet and sys.stderr.isatty(),
        agent_options=agent_options,
        env_kwargs=_env_args(args.env_arg),
    )
    print_table(summary)
    out = Path(args.out)
    print(
        f"wrote {out / 'episodes.jsonl'}, {out / 'transcripts.jsonl'}, {out / 'summary.json'}, "
        f"{out / 'report.md'}"
        + (f", {out / 'report.html'}" if summary.get("report_html") else "")
        + "".join(f", {out / p}" for p in summary["funnel_pngs"].values())
    )
    errors = [g for g in summary["groups"] if g["errors"]]
    if errors:
        from hiergym.benchmarks.runner import read_rows

        failed = [r for r in read_rows(out / "episodes.jsonl") if r.get("error")]
        print(f"{len(failed)} episodes failed; the first reasons:", file=sys.stderr)
        for r in failed[:3]:
            print(f"  {r['env_id']} {r['agent']} seed {r['seed']}: {r['error']}", file=sys.stderr)
        if not args.keep_going:
            print("exit 1 (--keep-going exits 0 despite failed episodes)", file=sys.stderr)
            return 1
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from hiergym.benchmarks.report import paired_comparison, print_table, write_outputs
    from hiergym.benchmarks.runner import read_rows

    dirs = [Path(d) for d in args.dirs]
    rows = []
    runs = []
    for d in dirs:
        found = read_rows(d / "episodes.jsonl")
        if not found:
            print(f"hiergym: no episodes in {d / 'episodes.jsonl'}", file=sys.stderr)
            return 2
        runs.append((d.name, found))
        for r in found:
            if len(dirs) > 1:  # comparing runs: the same agent in two runs is two entries
                r = {**r, "agent": f"{r['agent']} ({d.name})", "run": d.name}
            rows.append(r)
    out = (
        Path(args.out) if args.out else dirs[0] if len(dirs) == 1 else dirs[0].parent / "comparison"
    )
    out.mkdir(parents=True, exist_ok=True)
    config: dict[str, object] = {"runs": [str(d) for d in dirs]}
    if len(dirs) == 1 and (dirs[0] / "summary.json").exists():
        # rebuilding one run's report keeps the configuration it was run with
        with contextlib.suppress(ValueError, KeyError):
            config = json.loads((dirs[0] / "summary.json").read_text())["config"]
    summary = write_outputs(
        rows,
        out,
        config,
        paired_comparison(runs),
        html=args.html,
        runs=[(d.name, d) for d in dirs],
    )
    print_table(summary)
    print(f"wrote {out / 'summary.json'} and {out / 'report.md'}")
    if args.html:
        from hiergym.benchmarks.html_report import human_size

        size = summary["report_html"]["bytes"]
        print(f"wrote {out / 'report.html'} ({human_size(size)}, {len(rows)} episodes)")
    return 0


def _cmd_reverify(args: argparse.Namespace) -> int:
    from hiergym.benchmarks.reverify import reverify, write_reverify

    run = Path(args.dir)
    if not (run / "episodes.jsonl").exists():
        print(f"hiergym: no episodes in {run / 'episodes.jsonl'}", file=sys.stderr)
        return 2
    report = reverify(run, aggregate=args.aggregate)
    path = write_reverify(report, run)
    rows, changed = report["rows"], report["changed"]
    print(f"re-scored {len(rows)} episodes of {run} with the current verifier")
    if report["without_transcript"]:
        print(f"{report['without_transcript']} episodes have no stored trajectory (older runs)")
    for r in changed[:50]:
        then, now = r["versions_then"] or {}, r["versions_now"]
        note = " (verifier changed)" if then.get("verifier") != now["verifier"] else ""
        print(
            f"  {r['env_id']} {r['task_id']} {r['agent']}: reward {r['old_reward']} -> "
            f"{r['new_reward']:.3f}, first failed {r['old_first_failed']} -> "
            f"{r['new_first_failed']}{note}"
        )
    if len(changed) > 50:
        print(f"  ... and {len(changed) - 50} more")
    print(f"{len(changed)} of {len(rows)} verdicts changed; wrote {path}")
    return 0


def _cmd_init(args: argparse.Namespace) -> int:
    from hiergym.scaffold import init_domain, names

    try:
        values = names(args.name)
        target = Path(args.dir or f"hiergym-{args.name}")
        written = init_domain(args.name, target)
    except (ValueError, FileExistsError) as e:
        print(f"hiergym: {e}", file=sys.stderr)
        return 2
    print(f"wrote {len(written)} files into {target}: {values['env_id']} in {values['package']}/")
    print(f"next: cd {target} && pip install -e . && pytest -q && hiergym audit {args.name}")
    return 0


def _cmd_data(args: argparse.Namespace) -> int:
    import gymnasium as gym

    from hiergym.envs.registry import resolve_env_id

    for name in args.domains:
        env = gym.make(resolve_env_id(name))
        base = env.unwrapped
        print(f"{base.domain}: {base.sandbox.db_path} (data version {base.sandbox.data_version})")
    return 0


IMPORTERS = {
    # format -> "module:function" taking argv (the folder) and returning an exit code
    "travelplanner": "hiergym.envs.travel.travelplanner.importer:main",
    "verilog-eval": "hiergym.envs.rtl.importer:main",
    "rtllm": "hiergym.envs.rtl.rtllm:main",
}


def _cmd_data_import(args: argparse.Namespace) -> int:
    from hiergym.envs.registry import load_class

    return int(load_class(IMPORTERS[args.format])([args.dir]))


def _env_args(pairs: Sequence[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"hiergym: --env-arg expects KEY=VALUE, got {pair!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def _cmd_audit(args: argparse.Namespace) -> int:
    from hiergym.envs.registry import missing_data, resolve_env_id
    from hiergym.testing import AGGREGATE_NAMES, PROCESS_ALLOWANCE, run_hack_matrix

    env_id = resolve_env_id(args.env)
    reason = missing_data(env_id)
    if reason and not args.env_arg:
        print(f"hiergym: {env_id} cannot be audited here: {reason}", file=sys.stderr)
        return 2
    aggregates = [args.aggregate] if args.aggregate else list(AGGREGATE_NAMES)
    seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    only = [x for x in (args.only or "").split(",") if x] or None
    kwargs = _env_args(args.env_arg)
    kwargs.update({k: v for k, v in (("split", args.split), ("difficulty", args.difficulty)) if v})
    rows = run_hack_matrix(env_id, seeds=seeds, aggregates=aggregates, only=only, **kwargs)
    process = bool(args.process_reward)
    if args.json:
        print(json.dumps([r.to_dict() for r in rows], indent=1))
    else:
        print(
            f"hack matrix of {env_id}: seeds {seeds}, aggregators {', '.join(aggregates)}"
            f"{', with and without process rewards' if process else ''}"
        )
        print(
            "reward: the worst case over the aggregators (attacks: highest; twins: lowest), normalised"
        )
        print(
            f"{'kind':<6} {'name':<22} {'task':<26} {'reward':>6} {'ceil':>5} {'first failed':<13} result"
        )
        for r in rows:
            tables = [r.rewards] + ([r.process_rewards] if process else [])
            values = [(v, agg) for table in tables for agg, v in table.items()]
            if r.error:
                worst = "  -   "
            else:
                v, _ = max(values) if r.kind == "attack" else min(values)
                worst = f"{v:6.3f}"
            allowance = PROCESS_ALLOWANCE if process and r.ceiling > 0 else 0.0
            ceiling = f"{r.ceiling + allowance:5.2f}" if r.kind == "attack" else " full"
            breaches = r.breaches(None if process else False)
            shown = ",".join(breaches[:2]) + (f" +{len(breaches) - 2}" if len(breaches) > 2 else "")
            verdict = "ok" if not breaches else f"BREACH {shown}"
            if r.error:
                verdict += f" ({r.error[:80]})"
            print(
                f"{r.kind:<6} {r.name[:22]:<22} {r.task_id[:26]:<26} {worst} {ceiling} "
                f"{str(r.first_failed)[:13]:<13} {verdict}"
            )
    breached = [r for r in rows if r.breaches(None if process else False)]
    if not args.json:
        print(f"{len(rows)} rows, {len(breached)} breached")
    return 1 if breached else 0


def build_parser() -> argparse.ArgumentParser:
    from hiergym import __version__

    p = argparse.ArgumentParser(
        prog="hiergym",
        description="Gymnasium envs for tool-using LLM agents, with hierarchical verifiers.",
    )
    p.add_argument("--version", action="version", version=f"hiergym {__version__}")
    p.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (-vv: debug)"
    )
    p.add_argument("-q", "--quiet-logs", action="store_true", help="only errors in the log")
    sub = p.add_subparsers(dest="command", required=True)

    sub.add_parser("list", help="registered envs and plugins").set_defaults(fn=_cmd_list)

    play = sub.add_parser("play", help="play an env in the terminal")
    play.add_argument("env", help="env id or domain name, e.g. hiergym/Shopping-v0 or shopping")
    play.add_argument("--split", default="test")
    play.add_argument("--difficulty", default="easy")
    play.add_argument("--seed", type=int, default=0)
    play.set_defaults(fn=_cmd_play)

    b = sub.add_parser("bench", help="benchmark agents on envs")
    b.add_argument(
        "--agents",
        default="random,oracle",
        help="comma-separated agent specs: random, random:SEED, oracle, openai:MODEL@URL "
        "(an OpenAI-compatible endpoint), hf:PATH (a local transformers model folder)",
    )
    b.add_argument(
        "--envs",
        default=None,
        help="comma-separated env ids or domain names (default: every registered env)",
    )
    b.add_argument("--suite", default="smoke", choices=["smoke", "standard", "full"])
    b.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="episodes per (env, difficulty, agent); overrides the suite",
    )
    b.add_argument("--split", default=None, help="train, dev or test (default: the suite's, test)")
    b.add_argument("--difficulties", default=None, help="comma-separated, default easy,medium,hard")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--trials", type=int, default=1, help="runs per task, for pass@k and pass^k")
    b.add_argument("--workers", type=int, default=1, help="parallel worker processes")
    b.add_argument(
        "--ray",
        nargs="?",
        const="",
        default=None,
        metavar="ADDRESS",
        help="run episodes as Ray tasks (a local cluster without ADDRESS)",
    )
    b.add_argument(
        "--temperature", type=float, default=0.0, help="sampling temperature of LLM agents"
    )
    b.add_argument(
        "--max-tokens", type=int, default=1024, help="completion budget per step of LLM agents"
    )
    b.add_argument(
        "--resume", action="store_true", help="keep finished episodes of an existing episodes.jsonl"
    )
    b.add_argument("--out", default="runs/bench")
    b.add_argument("--quiet", action="store_true", help="no live progress table")
    b.add_argument(
        "--keep-going",
        action="store_true",
        help="exit 0 even when episodes failed (by default a failed episode makes the exit code 1)",
    )
    b.add_argument("--strict", action="store_true", help=argparse.SUPPRESS)  # the default now
    b.add_argument(
        "--env-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an env kwarg for every env, e.g. tasks=verilog-eval:DIR (repeatable; VALUE as JSON "
        "when it parses)",
    )
    b.set_defaults(fn=_cmd_bench)

    r = sub.add_parser("report", help="rebuild or compare reports from bench output folders")
    r.add_argument("dirs", nargs="+", help="bench output folders (with episodes.jsonl)")
    r.add_argument(
        "--out",
        default=None,
        help="where to write (default: the folder itself, or DIR/../comparison)",
    )
    r.add_argument(
        "--html",
        action="store_true",
        help="also write report.html: one self-contained page (tables, funnels, every episode's "
        "transcript and verdict tree) that opens offline",
    )
    r.set_defaults(fn=_cmd_report)

    a = sub.add_parser(
        "audit",
        help="run the hack matrix of an env: attacks under their ceilings, twins at full reward",
    )
    a.add_argument("env", help="env id or domain name")
    a.add_argument("--aggregate", default=None, help="one aggregator (default: every one)")
    a.add_argument(
        "--process-reward", action="store_true", help="also check returns with process rewards"
    )
    a.add_argument("--seeds", default="0,1", help="comma-separated seeds (tasks) to attack")
    a.add_argument("--split", default=None, help="the split to draw tasks from (env default)")
    a.add_argument("--difficulty", default=None, help="the difficulty (env default)")
    a.add_argument("--only", default=None, help="comma-separated attack/twin names")
    a.add_argument("--env-arg", action="append", default=[], metavar="KEY=VALUE", help="env kwargs")
    a.add_argument("--json", action="store_true", help="print the rows as JSON")
    a.set_defaults(fn=_cmd_audit)

    rv = sub.add_parser(
        "reverify", help="re-score a bench run's stored trajectories with the current verifier"
    )
    rv.add_argument("dir", help="a bench output folder (episodes.jsonl and transcripts.jsonl)")
    rv.add_argument("--aggregate", default=None, help="score with this aggregator instead")
    rv.set_defaults(fn=_cmd_reverify)

    ini = sub.add_parser("init", help="write a new domain plugin package that passes check_domain")
    ini.add_argument("name", help="the domain name (lower case: it names the package and env id)")
    ini.add_argument("--dir", default=None, help="where to write it (default: ./hiergym-NAME)")
    ini.set_defaults(fn=_cmd_init)

    d = sub.add_parser("data", help="sandbox data")
    dsub = d.add_subparsers(dest="data_command", required=True)
    build = dsub.add_parser("build", help="build (or find) the sandbox DB of domains")
    build.add_argument("domains", nargs="+")
    build.set_defaults(fn=_cmd_data)
    imp = dsub.add_parser("import", help="build a sandbox from a public benchmark's data layout")
    imp.add_argument("format", choices=sorted(IMPORTERS), help="the layout of DIR")
    imp.add_argument("dir", help="the folder to import")
    imp.set_defaults(fn=_cmd_data_import)

    from hiergym.commands import add_commands

    add_commands(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    import logging

    import hiergym  # noqa: F401 - registers built-ins and plugins
    from hiergym.errors import HiergymError

    args = build_parser().parse_args(argv)
    level = (
        logging.ERROR
        if args.quiet_logs
        else (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("hiergym").setLevel(level)
    try:
        return int(args.fn(args) or 0)
    except HiergymError as e:
        print(f"hiergym: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
