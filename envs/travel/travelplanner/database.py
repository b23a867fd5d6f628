"""An imported TravelPlanner sandbox, read into memory, with the look-ups TravelPlanner's
evaluation performs (``data[(data['Name'].str.contains(re.escape(name))) & (data['City'] == city)]``).

TravelPlanner matches a planned name against the database by *containment* within the city; the
evaluator keeps that published definition so its numbers are TravelPlanner's. (hiergym's own travel
verifier grounds items by exact ids instead.)

Flights (a table of millions of rows) are not a SQL table: the importer stores them as a
:class:`FlightStore` inside the same SQLite file, written in one streaming pass (see
``importer.py``). Each kept row is stored as its text (the CSV line, or a JSON list of its nine
fields) in blocks of :data:`BLOCK_ROWS` rows, with three arrays: where each row's text starts, and
two sorted keys, a hash of (origin, destination, date) and one of the flight number, each packed
with the row number. A look-up finds its candidate rows with ``np.searchsorted`` (rows in file
order), reads only their blocks, and keeps the rows whose fields are equal to what was asked (a
hash collision costs a row read, never a wrong answer). The values are the ones the SQL table
held: prices and distances read by :func:`parse_number` as REAL (NaN as NULL, -0.0 as 0.0), the
other fields as text.
"""

from __future__ import annotations

import json
import math
import os
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np  # gymnasium's dependency: imported already

from hiergym.envs.sandbox import per_connection
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
        self.flight_store = flight_store(conn)
        self.has_flights = self.flight_store is not None
        self.dropped = dict(
            conn.execute("SELECT tbl, count(*) FROM dropped GROUP BY tbl ORDER BY tbl").fetchall()
        )

    def summary(self) -> str:
        n = lambda d: sum(len(v) for v in d.values())  # noqa: E731
        store = self.flight_store
        flights = f"{store.rows} flights" if store is not None else "no flight data"
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
        """The flights numbered ``number`` (from ``origin`` to ``dest`` when given), in the
        table's order, each as a dict of :data:`FLIGHT_FIELDS`."""
        if self.flight_store is None:
            return []
        rows = self.flight_store.by_number(self.conn, number, origin, dest)
        return [dict(zip(FLIGHT_FIELDS, r, strict=True)) for r in rows]

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


# --------------------------------------------------------------------------------------------
# Flights


FLIGHT_FIELDS = (
    "number",
    "price",
    "dep_time",
    "arr_time",
    "elapsed",
    "date",
    "origin",
    "destination",
    "distance",
)
"""A flight's fields, in the order of the SQL table they replace (and of TravelPlanner's CSV)."""
BLOCK_ROWS = 128
"""Rows per stored block of flight texts: a look-up reads the blocks of its rows only."""
SPECIAL = b"\x00"
"""First byte of a row stored as a JSON list of its fields (a CSV line never starts with it)."""
FLIGHT_TABLES = """
CREATE TABLE flight_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE flight_arrays (name TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE flight_blocks (block INTEGER PRIMARY KEY, data BLOB NOT NULL);
"""

M64 = (1 << 64) - 1
_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_K4, _K5, _K6 = 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53


def parse_number(text: str | None) -> float | None:
    """A price or distance as the importer reads it: ``float`` of the text, else of the text
    without "," and "$"; None when neither reads."""
    try:
        return float(text)  # type: ignore[arg-type]  # the common case; float() strips spaces
    except (TypeError, ValueError):
        pass
    try:
        return float(str(text).replace(",", "").replace("$", "").strip())
    except (TypeError, ValueError):
        return None


def sql_real(text: str) -> float | None:
    """:func:`parse_number` as a SQLite REAL column holds it: NaN is NULL, -0.0 is 0.0."""
    value = parse_number(text)
    if value is None or value != value:
        return None
    return value + 0.0


def field_hash(data: bytes) -> int:
    """A field's bytes to 64 bits: its first 8 bytes, its last 8 and its length (the importer
    computes the same with numpy over whole columns; equal fields always hash equal)."""
    n = len(data)
    first = int.from_bytes(data[:8], "little")
    last = int.from_bytes(data[-8:], "little") if n > 8 else 0
    return (first * _K1 + last * _K2 + n * _K3) & M64


def finish_hash(x: int) -> int:
    x ^= x >> 32
    x = (x * _K6) & M64
    return x ^ (x >> 29)


def combine_route(origin: int, destination: int, date: int) -> int:
    return finish_hash((((origin * _K4 + destination) & M64) * _K5 + date) & M64)


BYTE_MASKS = np.array([(1 << (8 * k)) - 1 for k in range(9)], dtype=np.uint64)
"""``BYTE_MASKS[n]``: the mask of a word's low ``n`` bytes, n = 0..8."""


def field_hashes(w8: np.ndarray, begins: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """:func:`field_hash` of every field of a text, for numpy: ``w8[i]`` is the little-endian
    word of the text's bytes ``i .. i+7`` (a strided view, the text padded with 8 bytes), the
    fields are the bytes ``begins[k] .. ends[k] - 1``."""
    u = np.uint64
    n = ends - begins
    h = w8[begins]
    if int(n.min(initial=8)) < 8:
        h &= BYTE_MASKS[np.minimum(n, 8)]
    h *= u(_K1)
    if int(n.max(initial=0)) > 8:
        last = w8[ends - 8]  # a short field's wraps around or reads its left: zeroed below
        last *= n > 8
        last *= u(_K2)
        h += last
    n = n.astype(np.uint64)
    n *= u(_K3)
    h += n
    return h


def finish_hashes(x: np.ndarray) -> np.ndarray:
    """:func:`finish_hash` of each of ``x`` (in place)."""
    x ^= x >> np.uint64(32)
    x *= np.uint64(_K6)
    x ^= x >> np.uint64(29)
    return x


def route_hashes(origin: np.ndarray, destination: np.ndarray, date: np.ndarray) -> np.ndarray:
    """:func:`combine_route` of field hashes, for numpy."""
    return finish_hashes((origin * np.uint64(_K4) + destination) * np.uint64(_K5) + date)


def _utf8(text: str) -> bytes:
    # a lone surrogate (which no stored field holds) matches nothing instead of raising
    return text.encode("utf-8", "surrogatepass")


def route_hash(origin: str, destination: str, date: str) -> int:
    return combine_route(
        field_hash(_utf8(origin)), field_hash(_utf8(destination)), field_hash(_utf8(date))
    )


def number_hash(number: str) -> int:
    return finish_hash(field_hash(_utf8(number)))


class FlightStore:
    """The imported flights of one sandbox file (see the module's docstring); its arrays are
    read on the first look-up and shared by every connection to that file in this process."""

    def __init__(self, conn: sqlite3.Connection):
        meta = {k: v for k, v in conn.execute("SELECT key, value FROM flight_meta")}
        self.rows = int(meta["rows"])
        self.bits = int(meta["bits"])
        self.columns: tuple[int, ...] = tuple(json.loads(meta["columns"]))
        self._arrays: dict[str, np.ndarray] | None = None
        self._lock = threading.Lock()

    def arrays(self, conn: sqlite3.Connection) -> dict[str, np.ndarray]:
        if self._arrays is None:
            with self._lock:
                if self._arrays is None:
                    self._arrays = {
                        name: np.frombuffer(data, dtype="<u8")
                        for name, data in conn.execute("SELECT name, data FROM flight_arrays")
                    }
        return self._arrays

    def _candidates(self, conn: sqlite3.Connection, name: str, h: int) -> list[int]:
        """Row numbers (ascending) whose key ``name`` has the hash prefix of ``h``."""
        keys = self.arrays(conn)[name]
        prefix = h >> self.bits
        lo = int(np.searchsorted(keys, np.uint64(prefix << self.bits)))
        if prefix + 1 < 1 << (64 - self.bits):
            hi = int(np.searchsorted(keys, np.uint64((prefix + 1) << self.bits)))
        else:
            hi = len(keys)
        mask = (1 << self.bits) - 1
        return [int(k) & mask for k in keys[lo:hi]]

    def texts(self, conn: sqlite3.Connection, rows: Iterable[int]) -> list[tuple[str, ...]]:
        """The nine fields (as text) of each row in ``rows``, in that order."""
        rows = list(rows)
        if not rows:
            return []
        offsets = self.arrays(conn)["offsets"]
        wanted = sorted({r // BLOCK_ROWS for r in rows})
        marks = ",".join("?" * len(wanted))
        blocks = dict(
            conn.execute(f"SELECT block, data FROM flight_blocks WHERE block IN ({marks})", wanted)
        )
        columns = self.columns
        out = []
        for r in rows:
            b = r // BLOCK_ROWS
            base = int(offsets[b * BLOCK_ROWS])
            raw = blocks[b][int(offsets[r]) - base : int(offsets[r + 1]) - base - 1]
            if raw[:1] == SPECIAL:
                out.append(tuple(json.loads(raw[1:])))
            else:
                if raw[-1:] == b"\r":  # a "\r\n" line break (a plain line holds no other)
                    raw = raw[:-1]
                fields = raw.decode("utf-8").split(",")
                out.append(tuple(fields[i] for i in columns))
        return out

    def scan(self, conn: sqlite3.Connection) -> Iterator[tuple[Any, ...]]:
        """Every flight, in the table's order."""
        for first in range(0, self.rows, BLOCK_ROWS):
            rows = range(first, min(first + BLOCK_ROWS, self.rows))
            yield from map(self.typed, self.texts(conn, rows))

    @staticmethod
    def typed(fields: tuple[str, ...]) -> tuple[Any, ...]:
        """A row's fields as the SQL table held them (prices and distances as REAL)."""
        n, p, d, a, e, t, o, to, km = fields
        return (n, sql_real(p), d, a, e, t, o, to, sql_real(km))

    def route(
        self, conn: sqlite3.Connection, origin: str, destination: str, date: str
    ) -> list[tuple[Any, ...]]:
        """Every flight from ``origin`` to ``destination`` on ``date``, in the table's order."""
        found = self.texts(
            conn, self._candidates(conn, "route", route_hash(origin, destination, date))
        )
        return [
            self.typed(f) for f in found if f[6] == origin and f[7] == destination and f[5] == date
        ]

    def by_number(
        self,
        conn: sqlite3.Connection,
        number: str,
        origin: str | None = None,
        destination: str | None = None,
    ) -> list[tuple[Any, ...]]:
        """Every flight numbered ``number`` (and from ``origin`` to ``destination`` when
        ``origin`` is given), in the table's order."""
        found = self.texts(conn, self._candidates(conn, "number", number_hash(number)))
        rows = [f for f in found if f[0] == number]
        if origin is not None:
            rows = [f for f in rows if f[6] == origin and f[7] == destination]
        return [self.typed(f) for f in rows]


def fare_order(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """The order of ``ORDER BY price, dep_time, number`` (a NULL price first), for a stable
    sort of rows in the table's order (SQLite's order for rows equal in all three)."""
    return (row[1] is not None, row[1] or 0.0, row[2], row[0])


class _NoFlights:
    """What :data:`_STORES` holds for a file without flights (None cannot be held weakly)."""


_NO_FLIGHTS = _NoFlights()
_STORES: weakref.WeakValueDictionary[tuple[Any, ...], FlightStore | _NoFlights] = (
    weakref.WeakValueDictionary()
)
"""By file identity: every live connection to one sandbox file shares its store (and arrays);
a store nothing uses any more (its sandboxes closed) is let go."""
_STORES_LOCK = threading.Lock()


def _store_of(conn: sqlite3.Connection) -> FlightStore | None:
    row = next((r for r in conn.execute("PRAGMA database_list") if r[1] == "main"), None)
    path = row[2] if row is not None else ""
    with _STORES_LOCK:
        if not path:  # an in-memory database: its connection is its identity
            return _read_store(conn)
        st = os.stat(path)
        file = (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        shared = _STORES.get(file)
        if shared is None:
            shared = _read_store(conn) or _NO_FLIGHTS
            _STORES[file] = shared
        return shared if isinstance(shared, FlightStore) else None


flight_store = per_connection(_store_of)
"""The flights of the sandbox a connection reads (None when it has none), one per file in this
process whatever connection asks (a file rewritten since is another file). Remembered per
connection (:func:`~hiergym.envs.sandbox.per_connection`: the latest used ones): an open
connection keeps reading the file it opened, so its store never changes; this spares a stat per
look-up."""
_BY_CONNECTION = flight_store.memo  # type: ignore[attr-defined]


def _read_store(conn: sqlite3.Connection) -> FlightStore | None:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if "flight_meta" not in tables:
        if "flights" in tables:  # an importer before travelplanner-import-3 built it
            raise SandboxError(
                "this TravelPlanner sandbox was built by an older importer (its flights are a "
                "SQL table); import the data folder again: hiergym data import travelplanner DIR"
            )
        return None
    store = FlightStore(conn)
    return store if store.rows > 0 else None
