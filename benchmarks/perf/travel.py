"""Travel speed: tool calls/s per tool (cached and not), tool vs the raw SQL it wraps, verdicts/s
for a 5-day itinerary (the same trajectory again and again, and fresh copies of it, as new episodes
are), oracle planning time per task; the same for hiergym/TravelPlanner-v0 when TravelPlanner's
data folder is present.

Targets (issue 3): >= 10,000 search calls/s with the cache warm, a tool call <= 3x its raw SQL,
>= 5,000 verdicts/s for a 5-day itinerary.

Issue 12 (TravelPlanner data, when its data folder is here): importing a generated 1M-row flights
CSV (beside the shipped example's tables) in <= 2x the time of pandas ``read_csv`` of that file
and within its peak memory; each measured in a fresh process. pandas is the baseline when the
interpreter in ``HIERGYM_PERF_PANDAS_PYTHON`` (default: this one) has it; otherwise a plain
``csv.reader`` pass over the file is (the figures name which); ``..._store_only_...`` is the
flights CSV alone into its store (the import also reads the shipped tables, ~0.35 s CPU);
``..._pyarrow_read_...`` is pyarrow's CSV reader of that file (every column as text, pandas'
missing values; when pyarrow is here), the cost of a pyarrow reading before any store. And
``gym.make`` of the env, and ``import_travelplanner`` of an imported folder, no longer re-hash
the data folder.
"""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym

import hiergym  # noqa: F401
from hiergym.envs.core import Trajectory, Turn
from hiergym.envs.tools import ToolCall
from hiergym.envs.travel.oracle import plan
from hiergym.envs.travel.tools import hhmm_sql
from hiergym.testing import oracle_actions

from . import per_call_ms, rate

CALLS = {
    "search_flights": {"origin": "Boston", "destination": "Chicago", "date": "2024-03-12"},
    "search_trains": {"origin": "New York", "destination": "Philadelphia", "date": "2024-03-12"},
    "search_hotels": {"city": "Chicago", "room_type": "Private room", "sort": "price"},
    "search_attractions": {"city": "Chicago", "sort": "price"},
    "search_restaurants": {"city": "Chicago", "cuisine": "Italian"},
    "get_distance": {
        "origins": ["CENTER-ORD", "H-ORD-004"],
        "destinations": ["AIRPORT-ORD", "R-ORD-010", "A-ORD-003"],
    },
}
RAW_SQL = {  # the query each tool runs (its time formatting included), with the same page size
    "search_flights": (
        f"SELECT number, {hhmm_sql('dep_min')}, {hhmm_sql('arr_min')}, price, seats, "
        "count(*) OVER () FROM flights WHERE origin = ? AND destination = ? AND date = ? "
        "ORDER BY dep_min, number LIMIT 10 OFFSET 0",
        ("Boston", "Chicago", "2024-03-12"),
    ),
    "search_hotels": (
        "SELECT id, name, room_type, price, min_nights, max_occupancy, rating, "
        "coalesce(nullif(house_rules, ''), 'none'), count(*) OVER () FROM hotels "
        "WHERE city = ? AND room_type = ? ORDER BY price, id LIMIT 10 OFFSET 0",
        ("Chicago", "Private room"),
    ),
    "search_restaurants": (
        f"SELECT r.id, r.name, r.cuisines, r.cost, r.rating, {hhmm_sql('r.open_min')}, "
        f"{hhmm_sql('r.close_min')}, count(*) OVER () "
        "FROM restaurant_cuisines c JOIN restaurants r ON r.id = c.restaurant_id "
        "WHERE c.city = ? AND c.cuisine = ? ORDER BY r.cost, r.id LIMIT 10 OFFSET 0",
        ("Chicago", "Italian"),
    ),
}


def run() -> dict[str, float]:
    env = gym.make("hiergym/Travel-v0", split="test", difficulty="hard")
    base = env.unwrapped
    db = base.sandbox.db
    state = SimpleNamespace(db=db, memory={})
    figures: dict[str, float] = {}
    for name, args in CALLS.items():
        tool = base.toolbox[name]
        call = ToolCall(name, args)
        figures[f"{name}_calls_per_s_uncached"] = rate(lambda t=tool, a=args: t.fn(state, **a))
        figures[f"{name}_calls_per_s_cached"] = rate(
            lambda t=tool, c=call: base.sandbox.call(t, c, lambda: t.fn(state, **c.arguments))
        )
    for name, (sql, params) in RAW_SQL.items():
        raw_ms = per_call_ms(lambda s=sql, p=params: db.execute(s, p).fetchall())
        tool_ms = 1000.0 / figures[f"{name}_calls_per_s_uncached"]
        cached_ms = 1000.0 / figures[f"{name}_calls_per_s_cached"]
        figures[f"{name}_raw_sql_ms"] = raw_ms
        figures[f"{name}_tool_over_raw_ratio"] = tool_ms / raw_ms
        figures[f"{name}_cached_over_raw_ratio"] = cached_ms / raw_ms

    base.reset(seed=0, options={"max_turns": 10**9})
    action = ToolCall("search_hotels", CALLS["search_hotels"])
    figures["env_steps_per_s"] = rate(lambda: base.step(action))

    # Verdicts on a 5-day itinerary (the first 5-day task of the set).
    task = next(t for t in base.tasks if t.days == 5)
    base.reset(seed=0, options={"task": task})
    for call in oracle_actions(base):
        base.step(call)
    assert base.verdict is not None and base.verdict.reward == 1.0
    trajectory = base.trajectory
    figures["verdicts_per_s_5_day"] = rate(lambda: base.verifier.verify(trajectory, task))
    figures["verdicts_per_s_5_day_fresh"] = fresh_rate(base.verifier, trajectory, task)

    tasks = list(base.tasks)
    start = time.perf_counter()
    for t in tasks:
        plan(base.sandbox, t)
    figures["oracle_plan_ms_per_task"] = (time.perf_counter() - start) * 1000 / len(tasks)
    env.close()
    figures.update(travelplanner())
    figures.update(travelplanner_import())
    return {k: round(v, 4) for k, v in figures.items()}


def fresh_copy(trajectory: Trajectory) -> Trajectory:
    """The trajectory with new call, result and submission objects (as a new episode has), so no
    per-object memo from an earlier verdict applies."""
    copy = Trajectory(trajectory.task, end=trajectory.end)
    for turn in trajectory.turns:
        calls = tuple(ToolCall(c.name, _clone(c.arguments), c.id) for c in turn.calls)
        results = tuple(replace(r, data=_clone(r.data)) for r in turn.results)
        copy.turns.append(Turn(turn.index, turn.action, calls, results))
    copy.submission = copy.turns[-1].calls[-1]
    return copy


def _clone(value: Any) -> Any:
    return json.loads(json.dumps(value))


def fresh_rate(verifier: Any, trajectory: Trajectory, task: Any, batches: int = 5) -> float:
    """Verdicts/s, each on a fresh copy of ``trajectory`` (copies made outside the timing, 200 at
    a time, so the heap stays the size of a few hundred episodes)."""
    done, elapsed = 0, 0.0
    for _ in range(batches):
        copies = [fresh_copy(trajectory) for _ in range(200)]
        start = time.perf_counter()
        for t in copies:
            verifier.verify(t, task)
        elapsed += time.perf_counter() - start
        done += len(copies)
    return done / elapsed


def travelplanner() -> dict[str, float]:
    """hiergym/TravelPlanner-v0 over TravelPlanner's database, when its data folder is here."""
    from hiergym.envs.travel.travelplanner.env import TravelPlannerEnv
    from hiergym.envs.travel.travelplanner.oracle import plan as tp_plan

    if TravelPlannerEnv.missing_data():
        return {}
    env = gym.make("hiergym/TravelPlanner-v0", split="train", difficulty="hard")
    base = env.unwrapped
    figures: dict[str, float] = {}
    for name, args in {
        "search_restaurants": {"city": "Myrtle Beach"},
        "search_accommodations": {"city": "Myrtle Beach"},
        "get_distance": {"origin": "Detroit", "destination": "Norfolk"},
    }.items():
        tool = base.toolbox[name]
        figures[f"travelplanner_{name}_calls_per_s_uncached"] = rate(
            lambda t=tool, a=args: t.fn(base.sandbox, **a)
        )
    task = next(t for t in base.tasks if t.days == 5)
    base.reset(seed=0, options={"task": task})
    for call in oracle_actions(base):
        base.step(call)
    assert base.verdict is not None and base.verdict.reward == 1.0
    trajectory = base.trajectory
    figures["travelplanner_verdicts_per_s_5_day"] = rate(
        lambda: base.verifier.verify(trajectory, task)
    )
    figures["travelplanner_verdicts_per_s_5_day_fresh"] = fresh_rate(
        base.verifier, trajectory, task
    )
    tasks = list(base.tasks)
    start = time.perf_counter()
    for t in tasks:
        tp_plan(base.sandbox, t)
    figures["travelplanner_oracle_plan_ms_per_query"] = (
        (time.perf_counter() - start) * 1000 / len(tasks)
    )
    env.close()
    return figures


FLIGHT_ROWS = 1_000_000
PANDAS_PYTHON = "HIERGYM_PERF_PANDAS_PYTHON"


def write_flights(folder: Path, rows: int = FLIGHT_ROWS) -> Path:
    """A flights CSV in TravelPlanner's clean_Flights_2022.csv shape (an unnamed index column
    first), ``rows`` flights between the city pairs of ``folder``'s distance matrix; one row in a
    thousand lacks its price (the import drops it, as pandas ``dropna()`` does)."""
    with (folder / "distance.csv").open(newline="", encoding="utf-8") as f:
        pairs = [
            (r["origin"], r["destination"], r["distance"].replace(",", "").replace(" km", ""))
            for r in csv.DictReader(f)
            if r["distance"] and "day" not in r["duration"]
        ]
    rng = random.Random(12)
    path = folder / "clean_Flights_2022.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["", "Flight Number", "Price", "DepTime", "ArrTime", "ActualElapsedTime",
                      "FlightDate", "OriginCityName", "DestCityName", "Distance"])  # fmt: skip
        for i in range(rows):
            origin, dest, km = pairs[rng.randrange(len(pairs))]
            dep, minutes = rng.randrange(24 * 60), 45 + rng.randrange(300)
            arr = (dep + minutes) % (24 * 60)
            out.writerow((
                i, f"F{3_000_000 + i}", "" if i % 1000 == 999 else 50 + rng.randrange(900),
                f"{dep // 60:02d}:{dep % 60:02d}", f"{arr // 60:02d}:{arr % 60:02d}",
                f"{minutes // 60} hours {minutes % 60} minutes", f"2022-03-{1 + i % 28:02d}",
                origin, dest, f"{float(km):.1f}",
            ))  # fmt: skip
    return path


_MEASURE = """
import json, resource, sys, time
from pathlib import Path
mode, source, out = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
if mode == "import":
    import sqlite3
    from hiergym.envs.travel.travelplanner.importer import builder
elif mode == "make":
    import gymnasium as gym
    import hiergym
elif mode == "pandas":
    import pandas
elif mode == "pyarrow":  # its CSV reader (threads), every column as text, pandas' missing values
    import pyarrow
    import pyarrow.csv
    from hiergym.envs.travel.travelplanner.importer import PANDAS_NA
elif mode == "flights":  # the flights CSV alone, into its store (no shipped table)
    import sqlite3
    from hiergym.envs.travel.travelplanner.importer import SCHEMA, _import_flights
else:
    import csv
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
wall, cpu = time.perf_counter(), time.process_time()
result = {}
if mode == "import":
    conn = sqlite3.connect(out)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    builder(source)(conn, lambda description, total=None: lambda n=1: None)
    from hiergym.envs.travel.travelplanner.database import flight_store
    result["flights"] = flight_store(conn).rows
    conn.close()
elif mode == "flights":
    conn = sqlite3.connect(out)
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.executescript(SCHEMA)
    _import_flights(conn, source / "clean_Flights_2022.csv")
    conn.commit()
    from hiergym.envs.travel.travelplanner.database import flight_store
    result["flights"] = flight_store(conn).rows
    conn.close()
elif mode == "make":
    times = []
    for _ in range(10):
        start = time.perf_counter()
        gym.make("hiergym/TravelPlanner-v0", data_dir=source).close()
        times.append(time.perf_counter() - start)
    result["make_ms"] = min(times[1:]) * 1000
    from hiergym.envs.travel.travelplanner.importer import import_travelplanner
    times = []
    for _ in range(10):
        start = time.perf_counter()
        import_travelplanner(source)
        times.append(time.perf_counter() - start)
    result["import_again_ms"] = min(times) * 1000
elif mode == "pandas":
    result["flights"] = len(pandas.read_csv(source / "clean_Flights_2022.csv"))
elif mode == "pyarrow":
    flights = source / "clean_Flights_2022.csv"
    with flights.open(encoding="utf-8", newline="") as f:
        names = f.readline().splitlines()[0].split(",")
    table = pyarrow.csv.read_csv(
        flights,
        read_options=pyarrow.csv.ReadOptions(column_names=names, skip_rows=1),
        convert_options=pyarrow.csv.ConvertOptions(
            column_types={n: pyarrow.string() for n in names},
            strings_can_be_null=True,
            null_values=sorted(PANDAS_NA),
        ),
    )
    result["flights"] = table.num_rows
else:
    with (source / "clean_Flights_2022.csv").open(newline="", encoding="utf-8") as f:
        result["flights"] = sum(1 for _ in csv.reader(f)) - 1
result["wall_s"] = time.perf_counter() - wall
result["cpu_s"] = time.process_time() - cpu
result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
result["peak_over_start_mb"] = result["peak_mb"] - rss0 / 1024
print(json.dumps(result))
"""


def _measure(mode: str, source: Path, out: Path, python: str = sys.executable) -> dict:
    env = {**os.environ, "HIERGYM_HOME": str(out.parent)}
    done = subprocess.run(
        [python, "-c", _MEASURE, mode, str(source), str(out)],
        env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"{mode} measurement failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _has(python: str, module: str) -> bool:
    probe = [python, "-c", f"import {module}"]
    return subprocess.run(probe, capture_output=True, check=False).returncode == 0


def travelplanner_import() -> dict[str, float]:
    """The import of a 1M-row flights table (with the shipped example's tables) against pandas
    ``read_csv`` (or ``csv.reader``) of the same file, each in a fresh process; then ``gym.make``
    and a repeated ``import_travelplanner`` over that 100 MB folder (no re-hash of its bytes)."""
    from hiergym.envs.sandbox import sources_hash
    from hiergym.envs.travel.travelplanner import importer, tasks

    shipped = tasks.default_data_dir()
    if shipped is None or not (shipped / "distance.csv").is_file():
        return {}
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "data"
        source.mkdir()
        for name in importer.REQUIRED.values():
            (source / name).symlink_to((shipped / name).resolve())
        write_flights(source)
        python = os.environ.get(PANDAS_PYTHON, sys.executable)
        baseline = "pandas" if _has(python, "pandas") else "csv_reader"
        figures[f"tp_import_baseline_is_{baseline}"] = 1.0
        base = _measure(baseline, source, Path(tmp) / "none", python)
        ours = _measure("import", source, Path(tmp) / "import.sqlite")
        assert ours["flights"] == base["flights"] - base["flights"] // 1000, (ours, base)
        for key in ("wall_s", "cpu_s", "peak_mb", "peak_over_start_mb"):
            figures[f"tp_import_1m_flights_{key}"] = ours[key]
            figures[f"tp_import_1m_flights_{baseline}_{key}"] = base[key]
        for key in ("wall_s", "cpu_s", "peak_mb"):
            figures[f"tp_import_1m_flights_over_{baseline}_{key}_ratio"] = ours[key] / base[key]
        # The flights CSV alone into its store (the import above also reads the shipped tables).
        alone = _measure("flights", source, Path(tmp) / "flights.sqlite")
        for key in ("wall_s", "cpu_s"):
            figures[f"tp_import_1m_flights_store_only_{key}"] = alone[key]
            figures[f"tp_import_1m_flights_store_only_over_{baseline}_{key}_ratio"] = (
                alone[key] / base[key]
            )
        # pyarrow's CSV reader of the file as text (its import not counted, as pandas' is not):
        # what a pyarrow reading would cost before any store is written (the store's own
        # reader is numpy: the pyarrow one tried, issue 12, was no cheaper).
        if _has(sys.executable, "pyarrow.csv"):
            arrow = _measure("pyarrow", source, Path(tmp) / "none")
            assert arrow["flights"] == base["flights"], (arrow, base)
            for key in ("wall_s", "cpu_s", "peak_mb"):
                figures[f"tp_import_1m_flights_pyarrow_read_{key}"] = arrow[key]
            figures["tp_import_1m_flights_store_only_over_pyarrow_read_cpu_s_ratio"] = (
                alone["cpu_s"] / arrow["cpu_s"]
            )

        home = Path(tmp) / "home"
        home.mkdir()
        start = time.perf_counter()
        sources_hash(source, importer.IMPORTER_VERSION)
        figures["tp_data_folder_mb"] = sum(p.stat().st_size for p in source.iterdir()) / 2**20
        figures["tp_data_folder_hash_ms"] = (time.perf_counter() - start) * 1000
        made = _measure("make", source, home / "unused")
        figures["tp_make_ms"] = made["make_ms"]
        figures["tp_import_again_ms"] = made["import_again_ms"]
        figures["tp_import_again_over_hash_ratio"] = (
            made["import_again_ms"] / figures["tp_data_folder_hash_ms"]
        )
    return figures
