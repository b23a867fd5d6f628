"""An imported TravelPlanner sandbox, read into memory, with the look-ups TravelPlanner's
evaluation performs (``data[(data['Name'].str.contains(re.escape(name))) & (data['City'] == city)]``).

TravelPlanner matches a planned name against the database by *containment* within the city; the
evaluator keeps that published definition so its numbers are TravelPlanner's. (hiergym's own travel
verifier grounds items by exact ids instead.)
"""

from __future__ import annotations

import math
import re
import sqlite3
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hiergym.errors import SandboxError


@dataclass(frozen=True)
class Route:
    duration: str
    distance_text: str  # as the database writes it, e.g. "1,144 km"
    distance_km: float


def route_cost(route: Route, mode: str) -> int:
    """TravelPlanner's GoogleDistanceMatrix cost: int(km x 0.05) self-driving, int(km) by taxi."""
    return int(route.distance_km * 0.05) if "driving" in mode else int(route.distance_km)


class TravelPlannerDB:
    """Accommodations, restaurants, attractions, distances, cities and (optional) flights."""

    def __init__(self, conn: sqlite3.Connection):
        conn.row_factory = sqlite3.Row
        self.conn = conn
        self.accommodations = _by_city(conn, "SELECT * FROM accommodations ORDER BY rowid")
        self.restaurants = _by_city(conn, "SELECT * FROM restaurants ORDER BY rowid")
        self.attractions = _by_city(conn, "SELECT * FROM attractions ORDER BY rowid")
        self.city_state = {r["city"]: r["state"] for r in conn.execute("SELECT * FROM cities")}
        self.routes: dict[tuple[str, str], Route | None] = {}
        for r in conn.execute("SELECT * FROM distances"):
            self.routes[(r["origin"], r["destination"])] = parse_route(r["duration"], r["distance"])
        self.has_flights = conn.execute("SELECT count(*) FROM flights").fetchone()[0] > 0
        self.dropped = dict(
            conn.execute("SELECT tbl, count(*) FROM dropped GROUP BY tbl ORDER BY tbl").fetchall()
        )

    def summary(self) -> str:
        n = lambda d: sum(len(v) for v in d.values())  # noqa: E731
        flights = (
            f"{self.conn.execute('SELECT count(*) FROM flights').fetchone()[0]} flights"
            if self.has_flights
            else "no flight data"
        )
        text = (
            f"{n(self.accommodations)} accommodations, {n(self.restaurants)} restaurants, "
            f"{n(self.attractions)} attractions, {len(self.routes)} routes, "
            f"{len(self.city_state)} cities, {flights}"
        )
        if self.dropped:
            text += "; " + ", ".join(f"{c} {t} dropped" for t, c in sorted(self.dropped.items()))
            text += " (rows with an empty field, which TravelPlanner's tools drop)"
        return text

    @staticmethod
    def _match(rows: dict[str, list[dict]], name: str, city: str) -> list[dict[str, Any]]:
        return [r for r in rows.get(city, ()) if name in r["name"]]

    def accommodation(self, name: str, city: str) -> list[dict[str, Any]]:
        return self._match(self.accommodations, name, city)

    def restaurant(self, name: str, city: str) -> list[dict[str, Any]]:
        return self._match(self.restaurants, name, city)

    def attraction(self, name: str, city: str) -> list[dict[str, Any]]:
        return self._match(self.attractions, name, city)

    def flights(
        self, number: str, origin: str | None = None, dest: str | None = None
    ) -> list[dict]:
        if origin is None:
            rows = self.conn.execute(
                "SELECT * FROM flights WHERE number = ? ORDER BY rowid", (number,)
            )
        else:
            rows = self.conn.execute(
                "SELECT * FROM flights WHERE number = ? AND origin = ? AND destination = ? "
                "ORDER BY rowid",
                (number, origin, dest),
            )
        return [dict(r) for r in rows]

    def route_cost(self, origin: str, destination: str, mode: str) -> int | None:
        """TravelPlanner's GoogleDistanceMatrix.run_for_evaluation cost: int(km x 0.05) driving,
        int(km) by taxi; None without a route (or one that takes days). Like it, the cities are
        read without a "(State)" suffix: "Dallas(Texas)" is Dallas."""
        origin, destination = _before_parenthesis(origin), _before_parenthesis(destination)
        route = self.routes.get((origin, destination))
        return None if route is None else route_cost(route, mode)


_PAREN = re.compile(r"^(.*?)\([^)]*\)")


def _before_parenthesis(text: str) -> str:
    """TravelPlanner's extract_before_parenthesis (evaluate.py re-exports it)."""
    m = _PAREN.search(text)
    return m.group(1) if m else text


def _by_city(conn: sqlite3.Connection, sql: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in conn.execute(sql):
        out.setdefault(r["city"], []).append(dict(r))
    return out


def parse_route(duration: str | None, distance: str | None) -> Route | None:
    """A distance-matrix row as a route; None when there is none (a duration of days, as in
    TravelPlanner, or a missing or unreadable distance)."""
    if not duration or not distance or "day" in duration:
        return None
    try:
        km = float(distance.replace("km", "").replace(",", "").strip())
    except ValueError:
        return None
    return Route(duration, distance.strip(), km) if math.isfinite(km) else None


@lru_cache(maxsize=8)
def open_database(path: str | Path) -> TravelPlannerDB:
    """The imported sandbox at ``path`` (read-only), loaded once per process."""
    path = Path(path)
    if not path.is_file():
        raise SandboxError(f"no imported TravelPlanner sandbox at {path}; run the importer first")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    return TravelPlannerDB(conn)
