"""The flights store (issue 12) gives every flight query exactly the rows, order and values the
SQL flights table gave: the old importer's table and the old queries are the reference here, on
generated flights full of edge cases (duplicate keys, empty results, unusual city names, missing
fields, prices and times at the edges, quotes, CRLF, short and long rows, chunk boundaries), on
the benchmark's flights and on the flights of TravelPlanner's example plans."""

from __future__ import annotations

import csv
import hashlib
import itertools
import os
import random
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from hiergym.envs.sandbox import CONNECTIONS_KEPT
from hiergym.envs.travel.tools import answer
from hiergym.envs.travel.travelplanner import importer
from hiergym.envs.travel.travelplanner import tools as tp_tools
from hiergym.envs.travel.travelplanner.database import (
    FLIGHT_FIELDS,
    fare_order,
    field_hash,
    field_hashes,
    flight_store,
    open_database,
)
from hiergym.envs.travel.travelplanner.importer import FLIGHT_COLUMNS, _num

from . import tp_cases

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
shipped = pytest.mark.skipif(
    not (DATA / "distance.csv").is_file(), reason=f"TravelPlanner's data is not at {DATA}"
)

# ---- the reference: the flights table and queries before the store ------------------------

OLD_TABLE = """
CREATE TABLE flights (number TEXT NOT NULL, price REAL, dep_time TEXT, arr_time TEXT,
    elapsed TEXT, date TEXT NOT NULL, origin TEXT NOT NULL, destination TEXT NOT NULL, distance REAL);
CREATE INDEX flights_by_route ON flights (origin, destination, date);
CREATE INDEX flights_by_number ON flights (number);
"""
OLD_SEARCH = (
    "SELECT number, price, dep_time, arr_time, elapsed, distance, count(*) OVER () "
    "FROM flights WHERE origin = ? AND destination = ? AND date = ? "
    "ORDER BY price, dep_time, number"
)
OLD_CHEAPEST = (
    "SELECT number, price, dep_time, arr_time FROM flights WHERE origin = ? AND "
    "destination = ? AND date = ? AND price IS NOT NULL ORDER BY price, dep_time, number "
    "LIMIT 1"
)
OLD_BY_NUMBER = "SELECT * FROM flights WHERE number = ? ORDER BY rowid"
OLD_BY_NUMBER_ROUTE = (
    "SELECT * FROM flights WHERE number = ? AND origin = ? AND destination = ? ORDER BY rowid"
)


def reference(path: Path) -> sqlite3.Connection:
    """The importer's flights table before the store (csv.reader, rows_of, executemany)."""
    conn = sqlite3.connect(":memory:")
    conn.executescript(importer.SCHEMA + OLD_TABLE)
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        first = next((row for row in reader if row), None)
        if header is None or first is None:
            return conn
        missing = [c for c in FLIGHT_COLUMNS if c not in header]
        if missing:
            raise importer.SandboxError(f"{path.name} lacks the flight columns {missing}")
        rows = importer._Table(conn, "flights", path, "Flight Number", "OriginCityName")
        conn.executemany(
            "INSERT INTO flights VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (n, _num(p), d, a, e, t, o, to, _num(km))
                for n, p, d, a, e, t, o, to, km in rows.rows_of(
                    itertools.chain([first], reader), header, FLIGHT_COLUMNS
                )
            ),
        )
    return conn


def imported(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.executescript(importer.SCHEMA)
    importer._import_flights(conn, path)
    return conn


def assert_same_flights(path: Path, extra_cities: tuple[str, ...] = ()) -> int:
    """Every query the tools, the oracle and the evaluation make, on both stores; returns how
    many flights there are."""
    old, new = reference(path), imported(path)
    store = flight_store(new)
    table = old.execute("SELECT * FROM flights ORDER BY rowid").fetchall()
    assert (store.rows if store else 0) == len(table)
    assert (list(store.scan(new)) if store else []) == table
    dropped = "SELECT * FROM dropped ORDER BY rowid"
    assert new.execute(dropped).fetchall() == old.execute(dropped).fetchall()
    if store is None:
        return 0
    routes = {(o, d, t) for _, _, _, _, _, t, o, d, _ in table}
    cities = {c for _, _, _, _, _, _, o, d, _ in table for c in (o, d)} | set(extra_cities)
    dates = {t for *_, t, _, _, _ in table} | {"2099-01-01"}
    probes = (
        sorted(routes)
        + sorted((o, d, t) for o, d, t in itertools.product(sorted(cities)[:6], repeat=3))[:200]
        + [(o, d, t) for o, d, _ in sorted(routes)[:50] for t in sorted(dates)[:3]]
    )
    for o, d, t in probes:
        want = old.execute(OLD_SEARCH, (o, d, t)).fetchall()
        got = sorted(store.route(new, o, d, t), key=fare_order)
        assert [(*r[:5], r[8], len(got)) for r in got] == want, (o, d, t)
        cheapest = old.execute(OLD_CHEAPEST, (o, d, t)).fetchone()
        priced = [r for r in got if r[1] is not None]
        assert (min(priced, key=fare_order)[:4] if priced else None) == cheapest, (o, d, t)
    numbers = sorted({r[0] for r in table}) + ["", "F", "F0", "no such", "F1\x00", "\ud800x"]
    for n in numbers:
        if "\ud800" not in n:
            want = [tuple(r) for r in old.execute(OLD_BY_NUMBER, (n,))]
            assert store.by_number(new, n) == want, n
        else:  # SQLite cannot bind a lone surrogate; the store finds no such flight
            assert store.by_number(new, n) == []
    for r in table[:400]:
        for o, d in ((r[6], r[7]), (r[7], r[6]), (r[6], r[6])):
            want = [tuple(x) for x in old.execute(OLD_BY_NUMBER_ROUTE, (r[0], o, d))]
            assert store.by_number(new, r[0], o, d) == want
    return len(table)


# ---- generated flights ------------------------------------------------------------------

CITIES = (
    "Washington",
    "Myrtle Beach",
    "Abcdefgh-XYZ-12345678",  # same first and last 8 bytes and length as the next
    "Abcdefgh-QRS-12345678",
    "Zürich",
    "São Paulo del Norte Grande",
    "N",
    "Na",
    "NAB",
    "No Name",
    "Nashville",
    " Spaced ",
    "x" * 40,
    "ÉÉÉÉÉÉÉÉÉ",
    "Tab\tCity",
    "semi;colon",
    "12345678",
    "1.#INDIANA",
)
NUMBERS = ("F1", "F2", "F0000001", "FL-000000012", "Ñ12", "F2 ", "f1", "12345678", "N")
PRICES = (
    *("120", "120", "99", "0", "-0", "0.0", "1e308", "1e400", "inf", "-inf", "1_000", "abc"),
    *(" 12 ", "1.5", "nan ", "NaN", "NA", "", "7", "007", "1e-320", "-5", "null", "N/A"),
)
TIMES = ("00:00", "23:59", "24:00", "9:5", "08:00", "08:00", "08:00", "", "NA", "12:30")
DATES = ("2022-03-01", "2022-03-02", "2022-03-03", "2022-3-1", "", "None")


def flight_lines(seed: int, rows: int, quotes_from: int | None = None) -> list[str]:
    """CSV lines (no line break) of TravelPlanner's shape with an index column; lines from
    ``quotes_from`` on may quote a field with a comma in it."""
    rng = random.Random(seed)

    def pick(values: tuple[str, ...]) -> str:  # a missing value now and then
        if rng.random() < 0.03:
            return rng.choice(values)
        return rng.choice([v for v in values if v not in importer.PANDAS_NA])

    out = []
    for i in range(rows):
        fields = [
            pick((str(i), "")),
            pick(NUMBERS),
            pick(PRICES),
            pick(TIMES),
            pick(TIMES),
            pick(("2 hours", "45 minutes", "1 hours 5 minutes", "")),
            pick(DATES[:3]) if rng.random() > 0.05 else pick(DATES),
            pick(CITIES),
            pick(CITIES),
            pick(("400.0", "1,144", " 500 ", "nan", "1e3", "")),
        ]
        if quotes_from is None or i < quotes_from:
            fields = [f.replace(",", "") for f in fields]
        else:
            fields = [f'"{f}"' if "," in f or rng.random() < 0.1 else f for f in fields]
        line = ",".join(fields)
        r = rng.random()
        if r < 0.02:
            line = ",".join(fields[: rng.randrange(1, 10)])  # short
        elif r < 0.04:
            line += ",extra" * rng.randrange(1, 3)  # long: csv.reader keeps its fields
        elif r < 0.05:
            line = ""  # blank
        out.append(line)
    return out


HEADER = ",".join(("", *FLIGHT_COLUMNS))


@pytest.mark.parametrize("chunk", [64, 300, 4096, importer.CHUNK_BYTES])
@pytest.mark.parametrize(
    "variant", ["plain", "crlf", "quotes later", "no final newline", "no index column"]
)
def test_generated_flights_answer_as_the_sql_table_did(tmp_path, monkeypatch, chunk, variant):
    monkeypatch.setattr(importer, "CHUNK_BYTES", chunk)
    quotes_from = 900 if variant == "quotes later" else None
    lines = flight_lines(len(variant), 1500, quotes_from=quotes_from)
    header = HEADER
    if variant == "no index column":
        header = header[1:]
        lines = [line.split(",", 1)[1] if "," in line else line for line in lines]
    end = "\r\n" if variant == "crlf" else "\n"
    text = header + end + end.join(lines) + ("" if variant == "no final newline" else end)
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_bytes(text.encode("utf-8"))
    assert assert_same_flights(path) > 1000


ROW = "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n"
NEAR_NA = (
    *sorted(importer.PANDAS_NA),
    *(" NA", "NA ", "na", "Na", "nA", "NAN", "nan ", "NULL ", "Null", "none", "NONE", "N/a"),
    *("#N/A N/A ", "#N/AN/A", "-1.#IN", "1.#INDX", "<na>", "n/A", "-NAN", "+nan", "\u00a0"),
)
"""pandas' missing-value strings and strings one edit away from them (which are values)."""


@pytest.mark.parametrize(
    "text",
    [
        "",
        HEADER + "\n",
        HEADER + "\n\n\r\n\n",
        '"' + HEADER.replace(",", '","') + '"\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n',
        HEADER + ",Price\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400,77\n1,F2,100\n",
        HEADER + "\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\r\r\n1,F2,1,a,b,c,d,A,B,1\n",
        HEADER + "\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A\rB,B,400\n",
        HEADER + "\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\r",
        HEADER + "\n" + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n" * 300 + '1,"F,2",1,'
        "a,b,c,d,A,B,1\n" + "2,F3,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n" * 300,
        HEADER + "\n" + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n" * 3 + "x" * 5000,
        "\ufeff" + HEADER + "\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n",
        HEADER + "\n0,F1,100,08:00,10:30,2 hours,2022-03-13,A," + "B" * 200_000 + ",400\n",
        HEADER
        + "\n\ufeff0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n"
        + ROW * 30
        + "\ufeff1,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n",
        HEADER
        + "\n"
        + "".join(
            f"{i},F{i},{na},08:00,10:30,2 hours,2022-03-13,A,{na or 'B'},400\n"
            for i, na in enumerate(NEAR_NA * 3)
        ),
        HEADER + "\n" + ROW * 20 + ",,,,,,,,,\n" + " \n" + "\t\n" + ROW * 20,
        HEADER
        + "\r\n"
        + ROW.replace("\n", "\r\n") * 20
        + "\r\n\r\n"
        + ROW.replace("\n", "\r\n") * 20,
        HEADER + "\n" + ROW * 20 + "\r" + ROW * 20 + ROW.replace("\n", "\r\n") * 20,
    ],
    ids=[
        "empty",
        "header only",
        "blank lines",
        "quoted header",
        "repeated column",
        "cr cr lf",
        "cr in a field",
        "final lone cr",
        "one quoted row",
        "unterminated junk",
        "bom",
        "over-long field",
        "bom on later lines",
        "missing-value near misses",
        "only commas, spaces, a tab",
        "crlf with blank lines",
        "lone cr, lf and crlf mixed",
    ],  # fmt: skip
)
def test_odd_files_read_as_csv_reader_reads_them(tmp_path, monkeypatch, text):
    monkeypatch.setattr(importer, "CHUNK_BYTES", 256)
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_bytes(text.encode("utf-8"))
    try:
        reference(path)
    except Exception as e:  # the store refuses what the table refused, in the same words
        with pytest.raises(type(e), match=re.escape(str(e)[:40])):
            imported(path)
        return
    assert_same_flights(path)


def test_a_file_without_the_flight_columns_is_refused_only_when_it_has_rows(tmp_path):
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_text("Flight Number,Price\n\n\n")
    assert flight_store(imported(path)) is None  # no row: no flights, as before
    path.write_text("Flight Number,Price\n\nF1,100\n")
    with pytest.raises(importer.SandboxError, match=r"lacks the flight columns \['DepTime'"):
        imported(path)


def test_hashes_of_numpy_and_python_agree():
    rng = random.Random(3)
    values = [
        "".join(rng.choice("aZ09 é\t;") for _ in range(rng.randrange(0, 30))) for _ in range(300)
    ]
    data = b"".join(v.encode() + b"," for v in values)
    import numpy as np

    a = np.frombuffer(data + bytes(8), dtype=np.uint8)
    w8 = np.ndarray((len(a) - 7,), dtype="<u8", buffer=a, strides=(1,))
    ends = np.flatnonzero(a[: len(data)] == 44)
    begins = np.concatenate(([0], ends[:-1] + 1))
    got = field_hashes(w8, begins, ends).tolist()
    assert got == [field_hash(v.encode()) for v in values]


# ---- the benchmark's flights and TravelPlanner's example plans ---------------------------


@shipped
def test_the_benchmarks_flights_answer_as_the_sql_table_did(tmp_path):
    from hiergym.benchmarks.perf.travel import write_flights

    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "distance.csv").symlink_to(DATA / "distance.csv")
    path = write_flights(folder, rows=20_000)
    assert assert_same_flights(path) == 20_000 - 20


@shipped
def test_the_tools_answer_pages_as_the_sql_table_did(tmp_path):
    """search_flights' pages (the old SQL through ``answer``) on flights between the shipped
    cities, many on one route and day."""
    cities = [r.split("\t")[0] for r in (DATA / "citySet_with_states.txt").read_text().split("\n")]
    cities = [c for c in cities if c][:12]
    rng = random.Random(5)
    lines = [HEADER]
    for i in range(3000):
        o, d = rng.sample(cities[:3], 2) if i % 2 else rng.sample(cities, 2)
        lines.append(
            f"{i},F{rng.randrange(400)},{rng.choice(PRICES[:12])},{rng.choice(TIMES[:7])},10:30,"
            f"2 hours,2022-03-0{rng.randrange(1, 4)},{o},{d},{rng.randrange(100, 2000)}"
        )
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_text("\n".join(lines) + "\n")
    old, new = reference(path), imported(path)
    for conn in (old, new):
        conn.executemany("INSERT OR IGNORE INTO cities VALUES (?, 'S')", [(c,) for c in cities])
    old_state, new_state = SimpleNamespace(db=old), SimpleNamespace(db=new)
    checked = 0
    for o, d in itertools.permutations(cities[:5], 2):
        for day in ("2022-03-01", "2022-03-02", "2022-03-09"):
            for page in (1, 2, 3, 7):
                want = answer(
                    old_state, OLD_SEARCH, (o, d, day), page,
                    ("number", "price", "depart", "arrive", "duration", "miles"),
                    {"origin": o, "destination": d, "date": day}, tp_tools.PAGE_SIZE,
                )  # fmt: skip
                got = tp_tools.search_flights.fn(new_state, o, d, day, page)
                assert got == want
                checked += bool(want["results"])
    assert checked > 20


@shipped
def test_the_example_plans_flights_answer_as_the_sql_table_did(tmp_path):
    path = tmp_path / "clean_Flights_2022.csv"
    path.write_text(tp_cases.example_flights(tp_cases.examples(DATA)))
    assert assert_same_flights(path) > 50


@shipped
def test_the_same_data_gives_the_same_sandbox_bytes_in_another_process(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for name in importer.REQUIRED.values():
        (folder / name).symlink_to(DATA / name)
    (folder / "clean_Flights_2022.csv").write_text(
        HEADER + "\n" + "\n".join(flight_lines(7, 3000)) + "\n"
    )
    script = (
        "import sqlite3, sys\n"
        "from pathlib import Path\n"
        "from hiergym.envs.travel.travelplanner.importer import builder\n"
        "conn = sqlite3.connect(sys.argv[2])\n"
        "builder(Path(sys.argv[1]))(conn, lambda d, total=None: lambda n=1: None)\n"
        "conn.close()\n"
    )
    digests = []
    for name in ("a.sqlite", "b.sqlite"):
        out = tmp_path / name
        subprocess.run([sys.executable, "-c", script, str(folder), str(out)], check=True)
        digests.append(hashlib.sha256(out.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    db = open_database(tmp_path / "a.sqlite")
    assert db.has_flights and f"{db.flight_store.rows} flights" in db.summary()
    row = db.flight_store.scan(db.conn).__next__()
    assert db.flights(row[0])[0] == dict(zip(FLIGHT_FIELDS, row, strict=True))


def _flight_threads() -> list[str]:
    import threading

    return [
        t.name
        for t in threading.enumerate()
        if t.name.startswith("hiergym-flights") or "_read" in t.name
    ]


def test_invalid_utf8_later_in_the_file_raises_as_csv_reader_does(tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_BYTES", 256)
    path = tmp_path / "clean_Flights_2022.csv"
    good = b"0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n" * 40
    path.write_bytes(HEADER.encode() + b"\n" + good + b"1,F\xff,1,a,b,c,d,A,B,1\n" + good)
    with pytest.raises(UnicodeDecodeError):
        reference(path)
    with pytest.raises(UnicodeDecodeError):
        imported(path)
    assert _flight_threads() == []


@shipped
def test_a_table_that_fails_while_flights_are_read_ahead_stops_the_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(importer, "CHUNK_BYTES", 256)
    folder = tmp_path / "data"
    folder.mkdir()
    for name in importer.REQUIRED.values():
        (folder / name).symlink_to(DATA / name)
    (folder / "attractions.csv").unlink()
    (folder / "attractions.csv").write_text("Name,City\nX,Y\n")  # lacks its columns
    (folder / "clean_Flights_2022.csv").write_text(
        HEADER + "\n" + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n" * 5000
    )
    conn = sqlite3.connect(":memory:")
    with pytest.raises(importer.SandboxError, match="attractions.csv lacks the columns"):
        importer.builder(folder)(conn, lambda description, total=None: lambda n=1: None)
    assert _flight_threads() == []


def test_a_sandbox_of_the_old_importer_asks_for_a_new_import(tmp_path):
    conn = sqlite3.connect(tmp_path / "old.sqlite")
    conn.executescript(importer.SCHEMA + OLD_TABLE)
    with pytest.raises(importer.SandboxError, match="data import travelplanner DIR"):
        flight_store(conn)


# ---- the connections the store keeps -------------------------------------------------------


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="counts open files in /proc")
def test_many_sandboxes_opened_in_turn_are_not_all_kept_open(tmp_path):
    """flight_store remembers a few connections (and their stores), not every one it served: a
    process that opens sandbox after sandbox keeps neither their connections nor their files
    open; a connection it has forgotten still gets its own file's flights."""
    import gc

    from hiergym.envs.travel.travelplanner import database

    def sandbox(i: int) -> Path:
        csv_path = tmp_path / f"flights{i}.csv"
        csv_path.write_text(HEADER + f"\n0,F{i},100,08:00,10:30,2 hours,2022-03-13,A,B,{400 + i}\n")
        out = tmp_path / f"s{i}.sqlite"
        conn = sqlite3.connect(out)
        conn.executescript(importer.SCHEMA)
        importer._import_flights(conn, csv_path)
        conn.commit()
        conn.close()
        return out

    def opened(path: Path) -> sqlite3.Connection:
        return sqlite3.connect(f"file:{path}?mode=ro", uri=True)

    paths = [sandbox(i) for i in range(60)]
    first = opened(paths[0])
    assert flight_store(first).by_number(first, "F0")[0][8] == 400.0
    gc.collect()
    fds, kept = _open_fds(), len(database._BY_CONNECTION)
    for i, path in enumerate(paths[1:], 1):
        conn = opened(path)
        assert flight_store(conn).by_number(conn, f"F{i}")[0][8] == 400.0 + i
        del conn
    gc.collect()
    limit = CONNECTIONS_KEPT
    assert limit < len(paths) and len(database._BY_CONNECTION) <= max(kept, limit)
    assert _open_fds() <= fds + limit
    ours = {str(p) for p in paths}
    assert sum(key[0] in ours for key in database._STORES) <= limit + 1
    # two connections to one file share its store
    a, b = opened(paths[5]), opened(paths[5])
    assert flight_store(a) is flight_store(b) is not None
    a.close()
    b.close()
    # the first connection, forgotten by now, still reads its own file's flights
    assert all(entry[0] is not first for entry in database._BY_CONNECTION.values())
    store = flight_store(first)
    assert store.by_number(first, "F0")[0][8] == 400.0 and store.by_number(first, "F1") == []
    first.close()
