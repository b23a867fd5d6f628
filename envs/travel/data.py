"""Deterministic travel sandbox generator: sandbox_data/travel/ sources -> SQLite.

From 38 real cities (cities.json) and word lists (vocabulary.json) it generates, with
``random.Random`` seeded by strings only:

* flights between every city pair more than 300 km apart, every day of a 61-day window, with
  departure/arrival times from the great-circle distance (one time zone), prices and free seats;
* trains between cities less than 550 km apart;
* per city: 42 hotels, 32 attractions, 54 restaurants with coordinates, hours, prices, ratings;
* hub places per city (airport, station, centre); travel between any two places is computed from
  coordinates by :mod:`.geo` (walk, taxi, drive), so no distance table is stored.

Tasks are generated last, by the ``add_tasks`` the env passes in (tasks.py's generator bound to the
oracle's prover), and each is proven feasible by the oracle.
"""

from __future__ import annotations

import json
import math
import random
import sqlite3
from collections.abc import Callable
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

from hiergym.envs.core import TASKS_TABLE_SQL
from hiergym.envs.sandbox import Progress, build_database
from hiergym.sandbox_data import source_dir

from .clock import all_dates, hhmm
from .geo import haversine_km

GENERATOR_VERSION = "travel-1"
HOTELS_PER_CITY = 42
ATTRACTIONS_PER_CITY = 32
RESTAURANTS_PER_CITY = 54
MIN_FLIGHT_KM = 300.0
MAX_TRAIN_KM = 550.0

SCHEMA = """
CREATE TABLE cities (name TEXT PRIMARY KEY, code TEXT NOT NULL UNIQUE, region TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, has_station INTEGER NOT NULL);
CREATE TABLE places (id TEXT PRIMARY KEY, kind TEXT NOT NULL, city TEXT NOT NULL, name TEXT NOT NULL,
    lat REAL NOT NULL, lon REAL NOT NULL, open_min INTEGER NOT NULL, close_min INTEGER NOT NULL);
CREATE TABLE hotels (id TEXT PRIMARY KEY, city TEXT NOT NULL, name TEXT NOT NULL,
    room_type TEXT NOT NULL, price REAL NOT NULL, min_nights INTEGER NOT NULL,
    max_occupancy INTEGER NOT NULL, rating REAL NOT NULL, house_rules TEXT NOT NULL);
CREATE INDEX hotels_by_city ON hotels (city, price, id);
CREATE TABLE restaurants (id TEXT PRIMARY KEY, city TEXT NOT NULL, name TEXT NOT NULL,
    cuisines TEXT NOT NULL, cost REAL NOT NULL, rating REAL NOT NULL,
    open_min INTEGER NOT NULL, close_min INTEGER NOT NULL);
CREATE INDEX restaurants_by_city ON restaurants (city, cost, id);
CREATE TABLE restaurant_cuisines (restaurant_id TEXT NOT NULL, city TEXT NOT NULL,
    cuisine TEXT NOT NULL, cost REAL NOT NULL);
CREATE INDEX cuisines_by_city ON restaurant_cuisines (city, cuisine, cost, restaurant_id);
CREATE TABLE attractions (id TEXT PRIMARY KEY, city TEXT NOT NULL, name TEXT NOT NULL,
    kind TEXT NOT NULL, price REAL NOT NULL, duration INTEGER NOT NULL, rating REAL NOT NULL,
    open_min INTEGER NOT NULL, close_min INTEGER NOT NULL);
CREATE INDEX attractions_by_city ON attractions (city, price, id);
"""
RIDES_SCHEMA = """
CREATE TABLE {table} (number TEXT NOT NULL, date TEXT NOT NULL, origin TEXT NOT NULL,
    destination TEXT NOT NULL, dep_min INTEGER NOT NULL, arr_min INTEGER NOT NULL,
    price REAL NOT NULL, seats INTEGER NOT NULL, km REAL NOT NULL,
    PRIMARY KEY (origin, destination, date, dep_min, number)) WITHOUT ROWID;
CREATE INDEX {table}_by_number ON {table} (number, date);
"""


@lru_cache(maxsize=1)
def load_sources() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    src = source_dir("travel")
    cities = json.loads((src / "cities.json").read_text())["cities"]
    vocab = json.loads((src / "vocabulary.json").read_text())
    return cities, vocab


def hub_id(kind: str, code: str) -> str:
    """The place id of a city's airport, station or centre: ``AIRPORT-BOS``."""
    return f"{kind.upper()}-{code}"


def _scatter(rng: random.Random, lat: float, lon: float, sigma_km: float) -> tuple[float, float]:
    """A point around (lat, lon), normally spread with ``sigma_km``."""
    dlat = rng.gauss(0, sigma_km) / 111.0
    dlon = rng.gauss(0, sigma_km) / (111.0 * math.cos(math.radians(lat)))
    return round(lat + dlat, 5), round(lon + dlon, 5)


def _weighted(rng: random.Random, pairs: list[list[Any]]) -> Any:
    return rng.choices([p[0] for p in pairs], weights=[p[1] for p in pairs])[0]


def _hotels(rng: random.Random, city: dict, vocab: dict) -> list[tuple]:
    hv = vocab["hotel"]
    rows = []
    for i in range(HOTELS_PER_CITY):
        room = vocab["room_types"][i % 3]
        lo, hi = hv["price"][room]
        occ_lo, occ_hi = hv["max_occupancy"][room]
        rules = sorted(r for r in vocab["house_rules"] if rng.random() < 0.3)
        name = f"{rng.choice(hv['adjectives'])} {rng.choice(hv['nouns'])} {city['name']} #{i + 1}"
        rows.append(
            (
                f"H-{city['code']}-{i + 1:03d}",
                name,
                room,
                float(round(rng.uniform(lo, hi))),
                _weighted(rng, hv["minimum_nights"]),
                rng.randint(occ_lo, occ_hi),
                round(rng.uniform(2.5, 5.0), 1),
                "; ".join(rules),
            )
        )
    return rows


def _restaurants(rng: random.Random, city: dict, vocab: dict) -> list[tuple]:
    rv = vocab["restaurant"]
    rows = []
    for i in range(RESTAURANTS_PER_CITY):
        cuisines = sorted(rng.sample(vocab["cuisines"], rng.randint(1, 3)))
        open_, close, _ = rv["hours"][i % len(rv["hours"])]
        lo, hi = rv["average_cost"]
        rows.append(
            (
                f"R-{city['code']}-{i + 1:03d}",
                f"{rng.choice(rv['first'])} {rng.choice(rv['second'])}",
                ", ".join(cuisines),
                float(rng.randint(lo, hi)),
                round(rng.uniform(2.5, 5.0), 1),
                open_,
                close,
            )
        )
    return rows


def _attractions(rng: random.Random, city: dict, vocab: dict) -> list[tuple]:
    av = vocab["attraction"]
    rows = []
    kinds = av["kinds"]
    for i in range(ATTRACTIONS_PER_CITY):
        kind = kinds[i % len(kinds)]
        lo, hi = kind["ticket"]
        dlo, dhi = kind["duration"]
        name = f"{rng.choice(av['prefixes'])} {rng.choice(kind['names'])}"
        rows.append(
            (
                f"A-{city['code']}-{i + 1:03d}",
                name,
                kind["kind"],
                float(rng.randint(lo, hi)) if hi else 0.0,
                rng.randrange(dlo, dhi + 1, 15),
                round(rng.uniform(3.0, 5.0), 1),
                kind["hours"][0],
                kind["hours"][1],
            )
        )
    return rows


def _minutes(text: str) -> int:
    h, m = text.split(":")
    return int(h) * 60 + int(m)


def insert_city_places(conn: sqlite3.Connection, cities: list[dict], vocab: dict) -> None:
    for city in cities:
        rng = random.Random(f"hiergym/travel/places/{city['name']}")
        lat, lon = city["lat"], city["lon"]
        has_station = any(
            0 < haversine_km(lat, lon, o["lat"], o["lon"]) < MAX_TRAIN_KM for o in cities
        )
        conn.execute(
            "INSERT INTO cities VALUES (?,?,?,?,?,?)",
            (city["name"], city["code"], city["region"], lat, lon, int(has_station)),
        )
        hubs = [("center", (lat, lon)), ("airport", _scatter(rng, lat, lon, 12.0))]
        if has_station:
            hubs.append(("station", _scatter(rng, lat, lon, 1.5)))
        for kind, (plat, plon) in hubs:
            conn.execute(
                "INSERT INTO places VALUES (?,?,?,?,?,?,?,?)",
                (
                    hub_id(kind, city["code"]),
                    kind,
                    city["name"],
                    f"{city['name']} {kind}",
                    plat,
                    plon,
                    0,
                    24 * 60 - 1,
                ),
            )
        for row in _hotels(rng, city, vocab):
            plat, plon = _scatter(rng, lat, lon, 3.0)
            conn.execute(
                "INSERT INTO hotels VALUES (?,?,?,?,?,?,?,?,?)", (row[0], city["name"], *row[1:])
            )
            conn.execute(
                "INSERT INTO places VALUES (?,?,?,?,?,?,?,?)",
                (row[0], "hotel", city["name"], row[1], plat, plon, 0, 24 * 60 - 1),
            )
        for row in _restaurants(rng, city, vocab):
            plat, plon = _scatter(rng, lat, lon, 2.5)
            open_min, close_min = _minutes(row[5]), _minutes(row[6])
            conn.execute(
                "INSERT INTO restaurants VALUES (?,?,?,?,?,?,?,?)",
                (row[0], city["name"], row[1], row[2], row[3], row[4], open_min, close_min),
            )
            conn.executemany(
                "INSERT INTO restaurant_cuisines VALUES (?,?,?,?)",
                [(row[0], city["name"], c, row[3]) for c in row[2].split(", ")],
            )
            conn.execute(
                "INSERT INTO places VALUES (?,?,?,?,?,?,?,?)",
                (row[0], "restaurant", city["name"], row[1], plat, plon, open_min, close_min),
            )
        for row in _attractions(rng, city, vocab):
            plat, plon = _scatter(rng, lat, lon, 3.5)
            open_min, close_min = _minutes(row[6]), _minutes(row[7])
            conn.execute(
                "INSERT INTO attractions VALUES (?,?,?,?,?,?,?,?,?)",
                (row[0], city["name"], row[1], row[2], row[3], row[4], row[5], open_min, close_min),
            )
            conn.execute(
                "INSERT INTO places VALUES (?,?,?,?,?,?,?,?)",
                (row[0], "attraction", city["name"], row[1], plat, plon, open_min, close_min),
            )


def _schedule(
    rng: random.Random, km: float, kmh: float, overhead: int, earliest: int, latest: int
) -> tuple[int, int]:
    """A departure (on a 5-minute grid) and arrival for a ride of ``km`` at ``kmh`` on one day."""
    minutes = overhead + math.ceil(km / kmh * 60 / 5) * 5
    dep = rng.randrange(earliest, max(earliest + 5, latest - minutes), 5)
    return dep, dep + minutes


def _number(rng: random.Random, prefixes: list[str], lo: int, hi: int, taken: set[str]) -> str:
    """A flight or train number no other route uses."""
    while True:
        number = f"{rng.choice(prefixes)}{rng.randint(lo, hi)}"
        if number not in taken:
            taken.add(number)
            return number


def transport_rows(cities: list[dict], kind: str) -> list[tuple]:
    """Every flight (``kind="flight"``) or train of the window, as table rows."""
    dates = all_dates()
    rows: list[tuple] = []
    taken: set[str] = set()
    for a in cities:
        for b in cities:
            if a is b:
                continue
            km = haversine_km(a["lat"], a["lon"], b["lat"], b["lon"])
            if kind == "flight" and km < MIN_FLIGHT_KM:
                continue
            if kind == "train" and km >= MAX_TRAIN_KM:
                continue
            rng = random.Random(f"hiergym/travel/{kind}/{a['code']}-{b['code']}")
            if kind == "flight":
                slots = [
                    (_number(rng, ["HA", "GY", "TR"], 100, 9999, taken),)
                    + _schedule(rng, km, 750.0, 35, 6 * 60, 23 * 60 + 30)
                    for _ in range(rng.randint(1, 3))
                ]
                base = 45 + 0.09 * km
            else:
                slots = [
                    (_number(rng, ["T"], 1000, 9999, taken),)
                    + _schedule(rng, km * 1.2, 100.0, 10, 6 * 60, 23 * 60)
                    for _ in range(rng.randint(3, 5))
                ]
                base = 12 + 0.11 * km
            for date in dates:
                for number, dep, arr in slots:
                    if rng.random() < 0.08:  # no service that day
                        continue
                    price = float(round(base * rng.uniform(0.75, 1.6)))
                    seats = 0 if rng.random() < 0.05 else rng.randint(1, 120)
                    rows.append(
                        (number, date, a["name"], b["name"], dep, arr, price, seats, round(km, 1))
                    )
    return rows


#: ``add_tasks(conn, progress)`` writes the tasks table: env.py passes ``tasks.generate_tasks``
#: bound to the oracle's prover (see hiergym.envs.building).
AddTasks = Callable[[sqlite3.Connection, Progress], None]


def build(conn: sqlite3.Connection, progress: Progress, *, add_tasks: AddTasks) -> None:
    """The whole travel sandbox: cities, places, transport, then the tasks ``add_tasks`` writes
    (the env passes the task generator bound to the oracle's prover)."""
    rides = "".join(RIDES_SCHEMA.format(table=t) for t in ("flights", "trains"))
    conn.executescript(SCHEMA + rides + TASKS_TABLE_SQL)
    cities, vocab = load_sources()
    advance = progress("travel: places and transport", total=3)
    insert_city_places(conn, cities, vocab)
    advance(1)
    conn.executemany(
        "INSERT INTO flights VALUES (?,?,?,?,?,?,?,?,?)", transport_rows(cities, "flight")
    )
    advance(1)
    conn.executemany(
        "INSERT INTO trains VALUES (?,?,?,?,?,?,?,?,?)", transport_rows(cities, "train")
    )
    advance(1)
    conn.commit()
    conn.execute("ANALYZE")
    add_tasks(conn, progress)
    conn.commit()


def database_path(*, add_tasks: AddTasks) -> Path:
    """The sandbox DB, built first (with ``add_tasks`` writing its tasks) if this data version is
    new."""
    return build_database(
        "travel",
        source_dir("travel"),
        partial(build, add_tasks=add_tasks),
        GENERATOR_VERSION,
        Path(__file__).parent,
    )


__all__ = ["build", "database_path", "hhmm", "hub_id", "load_sources"]
