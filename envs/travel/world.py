"""An in-memory, read-only view of the sandbox's places and cities, loaded once per database.

The verifier checks hundreds of places per second; a dict lookup is what makes that affordable.
Flights and trains stay in SQL (there are ~150,000) and are looked up by number and date.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

from hiergym.envs.sandbox import per_connection

from .geo import Leg, leg, road_km


@dataclass(frozen=True)
class Place:
    id: str
    kind: str  # center | airport | station | hotel | restaurant | attraction
    city: str
    name: str
    lat: float
    lon: float
    open_min: int
    close_min: int


@dataclass(frozen=True)
class City:
    name: str
    code: str
    region: str
    lat: float
    lon: float
    has_station: bool


@dataclass(frozen=True)
class Ride:
    """A scheduled flight or train on one date."""

    kind: str  # flight | train
    number: str
    date: str
    origin: str
    destination: str
    dep_min: int
    arr_min: int
    price: float
    seats: int


class World:
    """Places, cities, hotels, restaurants and attractions of one sandbox DB, as dicts."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db
        self.places = {
            r[0]: Place(*r)
            for r in db.execute(
                "SELECT id, kind, city, name, lat, lon, open_min, close_min FROM places"
            )
        }
        self.cities = {
            r[0]: City(r[0], r[1], r[2], r[3], r[4], bool(r[5]))
            for r in db.execute("SELECT name, code, region, lat, lon, has_station FROM cities")
        }
        self.by_code = {c.code: c for c in self.cities.values()}
        self.regions: dict[str, list[str]] = {}
        for c in sorted(self.cities.values(), key=lambda c: c.name):
            self.regions.setdefault(c.region, []).append(c.name)
        self.hotels = {r["id"]: dict(r) for r in _rows(db, "SELECT * FROM hotels")}
        self.restaurants = {r["id"]: dict(r) for r in _rows(db, "SELECT * FROM restaurants")}
        self.attractions = {r["id"]: dict(r) for r in _rows(db, "SELECT * FROM attractions")}
        self.occupancy = {h: d["max_occupancy"] for h, d in self.hotels.items()}
        self.by_lower = {name.lower(): name for name in self.cities}
        self._legs: dict[tuple[str, str, str], Leg | None] = {}
        self._rides: dict[tuple[str, str, str], Ride | None] = {}

    def hub(self, kind: str, city: str) -> str | None:
        """The place id of ``city``'s airport, station or centre, if it has one."""
        c = self.cities.get(city)
        if c is None or (kind == "station" and not c.has_station):
            return None
        return f"{kind.upper()}-{c.code}"

    def km(self, a: str, b: str) -> float:
        pa, pb = self.places[a], self.places[b]
        return road_km(pa.lat, pa.lon, pb.lat, pb.lon)

    def leg(self, mode: str, a: str, b: str) -> Leg | None:
        """The leg from place ``a`` to ``b`` by ``mode`` (symmetric), ``None`` if no route."""
        key = (mode, a, b) if a <= b else (mode, b, a)
        if key not in self._legs:
            self._legs[key] = leg(mode, self.km(a, b))
        return self._legs[key]

    def ride(self, kind: str, number: str, date: str) -> Ride | None:
        # The timetable is read-only: a verifier checks the same rides episode after episode.
        key = (kind, number, date)
        if key not in self._rides:
            if len(self._rides) > 100_000:
                self._rides.clear()
            table = "flights" if kind == "flight" else "trains"
            row = self.db.execute(
                f"SELECT number, date, origin, destination, dep_min, arr_min, price, seats FROM {table} "
                "WHERE number = ? AND date = ?",
                (number, date),
            ).fetchone()
            self._rides[key] = None if row is None else Ride(kind, *row)
        return self._rides[key]


def _rows(db: sqlite3.Connection, sql: str) -> list[Any]:
    cur = db.cursor()
    cur.row_factory = sqlite3.Row
    return cur.execute(sql).fetchall()


world_of = per_connection(World)
"""The World of a connection, built once (for the latest-used connections)."""
