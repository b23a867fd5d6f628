"""``hiergym data import travelplanner DIR``: TravelPlanner's database CSVs -> a SQLite sandbox.

DIR holds TravelPlanner's layout (see shared/data/travelplanner/SOURCE.md):
clean_accommodations_2022.csv, attractions.csv, clean_restaurant_2022.csv, distance.csv,
citySet_with_states.txt and, optionally, a flights CSV (any ``*flight*.csv``, e.g. TravelPlanner's
clean_Flights_2022.csv) with Flight Number, Price, DepTime, ArrTime, ActualElapsedTime, FlightDate,
OriginCityName, DestCityName, Distance. The sandbox lands in ``HIERGYM_HOME`` as
``travelplanner-<hash of DIR's files>.sqlite`` and is reused until the files change.

The sandbox holds TravelPlanner's view of its data: its tools and its evaluation read each table
with pandas ``read_csv(...).dropna()``, so a row with an empty field (or one pandas reads as
missing: "NA", "null", ...) is not in its database. The accommodations lose 762 of their 5,047
rows that way (most have an empty house_rules); the restaurants, attractions and flights lose
rows the same way when they have such fields; the distance matrix and the city list are read
whole, as TravelPlanner reads them. The dropped rows are kept apart (table ``dropped``) so a
finding can say why a name is unknown. Names are stored without the spaces around them (a few
have a trailing one): TravelPlanner strips a planned name before it looks it up, so the
look-up finds the same rows either way.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import itertools
import json
import operator
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from hiergym.envs.sandbox import Progress, build_database
from hiergym.errors import SandboxError

IMPORTER_VERSION = "travelplanner-import-2"
REQUIRED = {
    "accommodations": "clean_accommodations_2022.csv",
    "attractions": "attractions.csv",
    "restaurants": "clean_restaurant_2022.csv",
    "distances": "distance.csv",
    "cities": "citySet_with_states.txt",
}
FLIGHT_COLUMNS = (
    "Flight Number",
    "Price",
    "DepTime",
    "ArrTime",
    "ActualElapsedTime",
    "FlightDate",
    "OriginCityName",
    "DestCityName",
    "Distance",
)

SCHEMA = """
CREATE TABLE accommodations (name TEXT NOT NULL, room_type TEXT NOT NULL, price REAL,
    minimum_nights REAL, review_rate REAL, house_rules TEXT, max_occupancy INTEGER, city TEXT NOT NULL);
CREATE TABLE attractions (name TEXT NOT NULL, latitude REAL, longitude REAL, address TEXT,
    phone TEXT, website TEXT, city TEXT NOT NULL);
CREATE TABLE restaurants (name TEXT NOT NULL, city TEXT NOT NULL, cuisines TEXT,
    average_cost REAL, rating REAL);
CREATE TABLE distances (origin TEXT NOT NULL, destination TEXT NOT NULL, duration TEXT,
    distance TEXT, PRIMARY KEY (origin, destination));
CREATE TABLE cities (city TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE flights (number TEXT NOT NULL, price REAL, dep_time TEXT, arr_time TEXT,
    elapsed TEXT, date TEXT NOT NULL, origin TEXT NOT NULL, destination TEXT NOT NULL, distance REAL);
CREATE TABLE dropped (tbl TEXT NOT NULL, name TEXT, city TEXT, empty TEXT NOT NULL);
"""
INDEXES = """
CREATE INDEX accommodations_by_city ON accommodations (city);
CREATE INDEX attractions_by_city ON attractions (city);
CREATE INDEX restaurants_by_city ON restaurants (city);
CREATE INDEX flights_by_route ON flights (origin, destination, date);
CREATE INDEX flights_by_number ON flights (number);
"""
"""Built once the rows are in (one sort each instead of an index update per row)."""
# pandas.read_csv's default missing-value strings (its ``na_values``): a field equal to one of
# these is NaN, and dropna() drops the row.
PANDAS_NA = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
     "<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)  # fmt: skip


REGISTRY_FILE = "travelplanner-import.json"
IMPORT_HINT = "hiergym data import travelplanner DIR"


def registry_path() -> Path:
    """Where ``hiergym data import travelplanner DIR`` records its import (under HIERGYM_HOME)."""
    from hiergym.envs.sandbox import hiergym_home

    return hiergym_home() / REGISTRY_FILE


def register_import(source: Path, database: Path) -> None:
    """Record an import, so ``gym.make("hiergym/TravelPlanner-v0")`` finds it with no argument."""
    path = registry_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"source": str(Path(source).resolve()), "database": str(Path(database).resolve())}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def registered_import() -> dict[str, str] | None:
    """The recorded import (``source`` folder and built ``database``), if any."""
    try:
        record = json.loads(registry_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict) or not all(
        isinstance(record.get(k), str) for k in ("source", "database")
    ):
        return None
    return record


class _Table:
    """A CSV table streamed as tuples of the wanted columns, keeping the rows pandas
    ``read_csv(...).dropna()`` keeps (csv.DictReader's view of each row: blank lines skipped, a
    short row's absent fields missing, a long row's extra fields ignored, a repeated column name
    read from its last column); the other rows go to the ``dropped`` table as they come."""

    def __init__(self, conn: sqlite3.Connection, table: str, path: Path, name: str, city: str):
        self.conn, self.table, self.path, self.name, self.city = conn, table, path, name, city

    def rows(self, columns: Sequence[str]) -> Iterator[tuple[str, ...]]:
        with self.path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None:
                return
            yield from self.rows_of(reader, header, columns)

    def rows_of(
        self, reader: Iterator[list[str]], header: list[str], columns: Sequence[str]
    ) -> Iterator[tuple[str, ...]]:
        where = {k: i for i, k in enumerate(header)}  # a repeated name: its last column
        absent = [c for c in columns if c not in where]
        if absent:
            raise SandboxError(f"{self.path.name} lacks the columns {absent}; its header: {header}")
        width, distinct = len(header), len(where) == len(header)
        pick = operator.itemgetter(*(where[c] for c in columns))
        keys = list(where)
        na, drop = PANDAS_NA, self.conn.execute
        for row in reader:
            if len(row) == width and distinct and na.isdisjoint(row):
                yield pick(row)  # the common case, checked in C
                continue
            if not row:
                continue
            missing = [k or "(index)" for k in keys if where[k] >= len(row) or row[where[k]] in na]
            if not missing:
                yield pick(row)
                continue
            drop(
                "INSERT INTO dropped VALUES (?,?,?,?)",
                (
                    self.table,
                    _name(_field(row, where, self.name)),
                    _field(row, where, self.city),
                    ", ".join(missing),
                ),
            )


def _field(row: list[str], where: dict[str, int], key: str) -> str | None:
    i = where.get(key)
    return row[i] if i is not None and i < len(row) else None


def _name(text: str | None) -> str | None:
    return text.strip() if text is not None else None


def _num(text: str | None) -> float | None:
    try:
        return float(text)  # type: ignore[arg-type]  # the common case; float() strips spaces
    except (TypeError, ValueError):
        pass
    try:
        return float(str(text).replace(",", "").replace("$", "").strip())
    except (TypeError, ValueError):
        return None


def flights_file(source: Path) -> Path | None:
    """The flights CSV in ``source``, if the user has one."""
    found = sorted(p for p in source.glob("*.csv") if "flight" in p.name.lower())
    return found[0] if found else None


def check_layout(source: Path) -> None:
    if not source.is_dir():
        raise SandboxError(f"no TravelPlanner data directory at {source}")
    missing = [name for name in REQUIRED.values() if not (source / name).is_file()]
    if missing:
        raise SandboxError(
            f"{source} lacks {', '.join(missing)}; expected TravelPlanner's database layout "
            f"({', '.join(REQUIRED.values())}, optionally a flights CSV)"
        )


def builder(source: Path):  # noqa: ANN201 - returns a Builder
    def build(conn: sqlite3.Connection, progress: Progress) -> None:
        conn.executescript(SCHEMA)
        advance = progress("travelplanner: import", total=6)
        table = functools.partial(_Table, conn)
        accommodations = table(
            "accommodations", source / REQUIRED["accommodations"], "NAME", "city"
        )
        conn.executemany(
            "INSERT INTO accommodations VALUES (?,?,?,?,?,?,?,?)",
            (
                (_name(n), t, _num(p), _num(m), _num(r), h, int(_num(o) or 1), c)
                for n, t, p, m, r, h, o, c in accommodations.rows(
                    (
                        "NAME",
                        "room type",
                        "price",
                        "minimum nights",
                        "review rate number",
                        "house_rules",
                        "maximum occupancy",
                        "city",
                    )
                )  # fmt: skip
            ),
        )
        advance(1)
        attractions = table("attractions", source / REQUIRED["attractions"], "Name", "City")
        conn.executemany(
            "INSERT INTO attractions VALUES (?,?,?,?,?,?,?)",
            (
                (_name(n), _num(lat), _num(lon), a, p, w, c)
                for n, lat, lon, a, p, w, c in attractions.rows(
                    ("Name", "Latitude", "Longitude", "Address", "Phone", "Website", "City")
                )
            ),
        )
        advance(1)
        restaurants = table("restaurants", source / REQUIRED["restaurants"], "Name", "City")
        conn.executemany(
            "INSERT INTO restaurants VALUES (?,?,?,?,?)",
            (
                (_name(n), c, k, _num(a), _num(r))
                for n, c, k, a, r in restaurants.rows(
                    ("Name", "City", "Cuisines", "Average Cost", "Aggregate Rating")
                )
            ),
        )
        advance(1)
        # read whole, as TravelPlanner reads them: no row is dropped for an empty field
        with (source / REQUIRED["distances"]).open(newline="", encoding="utf-8") as f:
            conn.executemany(
                "INSERT OR IGNORE INTO distances VALUES (?,?,?,?)",
                (
                    (r["origin"], r["destination"], r["duration"], r["distance"])
                    for r in csv.DictReader(f)
                ),
            )
        advance(1)
        lines = (source / REQUIRED["cities"]).read_text(encoding="utf-8").splitlines()
        conn.executemany(
            "INSERT OR IGNORE INTO cities VALUES (?,?)",
            (tuple(line.split("\t", 1)) for line in lines if "\t" in line),
        )
        advance(1)
        flights = flights_file(source)
        if flights is not None:
            _import_flights(conn, flights)
        conn.execute("CREATE TABLE source (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO source VALUES ('flights', ?)", (flights.name if flights else "",))
        conn.executescript(INDEXES)
        advance(1)
        conn.commit()

    return build


def _import_flights(conn: sqlite3.Connection, path: Path) -> None:
    """The flights CSV, streamed row by row (a 1M-row table never sits in memory)."""
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        first = next((row for row in reader if row), None)
        if header is None or first is None:
            return  # no flights: the sandbox says so
        missing = [c for c in FLIGHT_COLUMNS if c not in header]
        if missing:
            raise SandboxError(f"{path.name} lacks the flight columns {missing}")
        rows = _Table(conn, "flights", path, "Flight Number", "OriginCityName")
        conn.executemany(
            "INSERT INTO flights VALUES (?,?,?,?,?,?,?,?,?)",
            (
                (n, _num(p), d, a, e, t, o, to, _num(km))
                for n, p, d, a, e, t, o, to, km in rows.rows_of(
                    itertools.chain([first], reader), header, FLIGHT_COLUMNS
                )
            ),
        )


_IMPORTED: dict[Path, tuple[tuple, Path]] = {}
"""This process's imports: source folder -> (its manifest, the sandbox built from it)."""
RACY_NS = 2 * 10**9
"""A file modified this recently may change again within its mtime's granularity: a manifest
holding it is not trusted (git's "racy" rule), so the folder is hashed again next time."""


def _manifest(source: Path) -> tuple:
    """What identifies ``source``'s files without reading them: each file's relative path, size,
    mtime, ctime and inode (the files :func:`hiergym.envs.sandbox.sources_hash` reads)."""
    entries = []
    for p in source.rglob("*"):
        if "__pycache__" in p.parts or not p.is_file():
            continue
        st = p.stat()
        rel = str(p.relative_to(source))
        entries.append((rel, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
    return (IMPORTER_VERSION, *sorted(entries))


def _trusted(manifest: tuple) -> bool:
    """No file's mtime is recent enough that a further write could leave its stat unchanged
    (such a write sets mtime and ctime to now, so an older mtime always shows it)."""
    now = time.time_ns()
    return all(now - e[2] > RACY_NS for e in manifest[1:])


def _manifest_file(source: Path) -> Path:
    from hiergym.envs.sandbox import hiergym_home

    key = hashlib.sha256(str(source).encode()).hexdigest()[:16]
    return hiergym_home() / f"travelplanner-manifest-{key}.json"


def _stored(source: Path, manifest: tuple) -> Path | None:
    """The sandbox recorded for ``source`` under exactly this manifest, if it is still there."""
    try:
        record = json.loads(_manifest_file(source).read_text(encoding="utf-8"))
        if record["source"] != str(source) or record["manifest"] != json.loads(
            json.dumps(manifest)
        ):
            return None
        database = Path(record["database"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return database if database.is_file() else None


def _store(source: Path, manifest: tuple, database: Path) -> None:
    path = _manifest_file(source)
    record = {"source": str(source), "manifest": manifest, "database": str(database)}
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    try:
        tmp.write_text(json.dumps(record) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # a read-only home: the folder is hashed again next time, nothing worse
        tmp.unlink(missing_ok=True)


def import_travelplanner(source: str | Path) -> Path:
    """The sandbox DB built from TravelPlanner's files in ``source`` (built once per file version).

    The folder's bytes are hashed once per version: the files' sizes, mtimes, ctimes and inodes
    (a manifest, stored beside the sandbox and kept in memory) recognise it again, so
    ``gym.make`` reads no data file; any change to them hashes it again."""
    source = Path(source).expanduser().resolve()
    check_layout(source)
    manifest = _manifest(source)
    known = _IMPORTED.get(source)
    if known is not None and known[0] == manifest and known[1].is_file():
        return known[1]
    database = _stored(source, manifest)
    if database is None:
        database = build_database("travelplanner", source, builder(source), IMPORTER_VERSION)
        if _trusted(manifest) and _manifest(source) == manifest:  # unchanged while hashed
            _store(source, manifest, database)
    if _trusted(manifest):
        _IMPORTED[source] = (manifest, database)
    return database


def main(argv: Sequence[str] | None = None) -> int:
    """``hiergym data import travelplanner DIR`` (the lead wires it into hiergym.cli)."""
    parser = argparse.ArgumentParser(prog="hiergym data import travelplanner")
    parser.add_argument("dir", help="a folder in TravelPlanner's database layout")
    args = parser.parse_args(argv)
    try:
        path = import_travelplanner(args.dir)
    except SandboxError as e:
        print(f"hiergym: {e}", file=sys.stderr)
        return 2
    from .database import open_database

    register_import(Path(args.dir).expanduser(), path)
    db = open_database(path)
    print(f"travelplanner: {path} ({db.summary()})")
    print('registered: gym.make("hiergym/TravelPlanner-v0") now uses it with no data_dir')
    return 0


if __name__ == "__main__":
    sys.exit(main())
