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
import json
import os
import sqlite3
import sys
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
CREATE INDEX accommodations_by_city ON accommodations (city);
CREATE TABLE attractions (name TEXT NOT NULL, latitude REAL, longitude REAL, address TEXT,
    phone TEXT, website TEXT, city TEXT NOT NULL);
CREATE INDEX attractions_by_city ON attractions (city);
CREATE TABLE restaurants (name TEXT NOT NULL, city TEXT NOT NULL, cuisines TEXT,
    average_cost REAL, rating REAL);
CREATE INDEX restaurants_by_city ON restaurants (city);
CREATE TABLE distances (origin TEXT NOT NULL, destination TEXT NOT NULL, duration TEXT,
    distance TEXT, PRIMARY KEY (origin, destination));
CREATE TABLE cities (city TEXT PRIMARY KEY, state TEXT NOT NULL);
CREATE TABLE flights (number TEXT NOT NULL, price REAL, dep_time TEXT, arr_time TEXT,
    elapsed TEXT, date TEXT NOT NULL, origin TEXT NOT NULL, destination TEXT NOT NULL, distance REAL);
CREATE INDEX flights_by_route ON flights (origin, destination, date);
CREATE INDEX flights_by_number ON flights (number);
CREATE TABLE dropped (tbl TEXT NOT NULL, name TEXT, city TEXT, empty TEXT NOT NULL);
"""
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


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        yield from csv.DictReader(f)


def _missing(row: dict[str, str | None]) -> list[str]:
    """The columns pandas reads as missing in a row (any makes ``dropna()`` drop it)."""
    return [
        k or "(index)"
        for k, v in row.items()
        if k is not None and (v is None or (isinstance(v, str) and v in PANDAS_NA))
    ]


class _Complete:
    """The rows of a CSV that ``dropna()`` keeps; the others go to the ``dropped`` table."""

    def __init__(self, conn: sqlite3.Connection, table: str, name: str, city: str):
        self.conn, self.table, self.name, self.city = conn, table, name, city

    def __call__(self, rows: Iterator[dict[str, str]]) -> Iterator[dict[str, str]]:
        for row in rows:
            missing = _missing(row)
            if not missing:
                yield row
                continue
            self.conn.execute(
                "INSERT INTO dropped VALUES (?,?,?,?)",
                (self.table, _name(row.get(self.name)), row.get(self.city), ", ".join(missing)),
            )


def _name(text: str | None) -> str | None:
    return text.strip() if text is not None else None


def _num(text: str | None) -> float | None:
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
        conn.executemany(
            "INSERT INTO accommodations VALUES (?,?,?,?,?,?,?,?)",
            (
                (
                    _name(r["NAME"]),
                    r["room type"],
                    _num(r["price"]),
                    _num(r["minimum nights"]),
                    _num(r["review rate number"]),
                    r["house_rules"],
                    int(_num(r["maximum occupancy"]) or 1),
                    r["city"],
                )
                for r in _Complete(conn, "accommodations", "NAME", "city")(
                    _rows(source / REQUIRED["accommodations"])
                )
            ),
        )
        advance(1)
        conn.executemany(
            "INSERT INTO attractions VALUES (?,?,?,?,?,?,?)",
            (
                (
                    _name(r["Name"]),
                    _num(r["Latitude"]),
                    _num(r["Longitude"]),
                    r["Address"],
                    r["Phone"],
                    r["Website"],
                    r["City"],
                )
                for r in _Complete(conn, "attractions", "Name", "City")(
                    _rows(source / REQUIRED["attractions"])
                )
            ),
        )
        advance(1)
        conn.executemany(
            "INSERT INTO restaurants VALUES (?,?,?,?,?)",
            (
                (
                    _name(r["Name"]),
                    r["City"],
                    r["Cuisines"],
                    _num(r["Average Cost"]),
                    _num(r["Aggregate Rating"]),
                )
                for r in _Complete(conn, "restaurants", "Name", "City")(
                    _rows(source / REQUIRED["restaurants"])
                )
            ),
        )
        advance(1)
        conn.executemany(
            "INSERT OR IGNORE INTO distances VALUES (?,?,?,?)",
            (
                (r["origin"], r["destination"], r["duration"], r["distance"])
                for r in _rows(source / REQUIRED["distances"])
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
            rows = _rows(flights)
            first = next(rows, None)
            if first is not None:
                missing = [c for c in FLIGHT_COLUMNS if c not in first]
                if missing:
                    raise SandboxError(f"{flights.name} lacks the flight columns {missing}")
                conn.executemany(
                    "INSERT INTO flights VALUES (?,?,?,?,?,?,?,?,?)",
                    (
                        (
                            r["Flight Number"],
                            _num(r["Price"]),
                            r["DepTime"],
                            r["ArrTime"],
                            r["ActualElapsedTime"],
                            r["FlightDate"],
                            r["OriginCityName"],
                            r["DestCityName"],
                            _num(r["Distance"]),
                        )
                        for r in _Complete(conn, "flights", "Flight Number", "OriginCityName")(
                            iter([first, *rows])
                        )
                    ),
                )
        conn.execute("CREATE TABLE source (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO source VALUES ('flights', ?)", (flights.name if flights else "",))
        advance(1)
        conn.commit()

    return build


def import_travelplanner(source: str | Path) -> Path:
    """The sandbox DB built from TravelPlanner's files in ``source`` (built once per file version)."""
    source = Path(source).expanduser().resolve()
    check_layout(source)
    return build_database("travelplanner", source, builder(source), IMPORTER_VERSION)


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
