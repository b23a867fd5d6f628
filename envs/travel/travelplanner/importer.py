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

Flights are not a SQL table: a 1M-row CSV is read in one streaming pass (numpy over plain
chunks, parsed in a worker thread while the other tables are read; csv.reader for the rest) into
a :class:`~.database.FlightStore` in the same file, which answers the tools' and the
evaluation's look-ups with the rows the SQL table gave.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import functools
import hashlib
import io
import itertools
import json
import operator
import os
import sqlite3
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np  # gymnasium's dependency: imported already

from hiergym.envs.sandbox import Progress, build_database, source_files
from hiergym.errors import SandboxError

from .database import (
    BLOCK_ROWS,
    BYTE_MASKS,
    FLIGHT_TABLES,
    SPECIAL,
    field_hashes,
    finish_hashes,
    number_hash,
    parse_number,
    route_hash,
    route_hashes,
)

IMPORTER_VERSION = "travelplanner-import-3"
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
CREATE TABLE dropped (tbl TEXT NOT NULL, name TEXT, city TEXT, empty TEXT NOT NULL);
"""
INDEXES = """
CREATE INDEX accommodations_by_city ON accommodations (city);
CREATE INDEX attractions_by_city ON attractions (city);
CREATE INDEX restaurants_by_city ON restaurants (city);
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


_num = parse_number


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
        flights = flights_file(source)
        pending = _FlightImport(flights) if flights is not None else None
        try:
            _build(conn, progress, pending, flights)
        finally:
            if pending is not None:
                pending.close()

    def _build(
        conn: sqlite3.Connection,
        progress: Progress,
        pending: _FlightImport | None,
        flights: Path | None,
    ) -> None:
        # before the first table: large pages make the flights' blocks a few page writes each
        conn.execute(f"PRAGMA page_size = {PAGE_BYTES}")
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
        if pending is not None:  # its chunks were parsed while the tables above were read
            pending.into(conn)
        conn.execute("CREATE TABLE source (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute("INSERT INTO source VALUES ('flights', ?)", (flights.name if flights else "",))
        conn.executescript(INDEXES)
        advance(1)
        conn.commit()

    return build


PAGE_BYTES = 65536
"""The sandbox's SQLite page size: a block of flight texts is a few page writes."""
CHUNK_BYTES = 1 << 19
"""The flights CSV is read this many bytes at a time (then cut after its last complete line)."""


def _import_flights(conn: sqlite3.Connection, path: Path) -> None:
    """The flights CSV into a :class:`~.database.FlightStore`, in one streaming pass."""
    flights = _FlightImport(path)
    try:
        flights.into(conn)
    finally:
        flights.close()


class _FlightImport:
    """The import of a flights CSV, started before the other tables are read: its plain chunks
    are parsed in worker threads meanwhile (numpy releases the GIL), :meth:`into` writes them.

    Rows are read as ``csv.reader`` and :meth:`_Table.rows_of` read them (pandas ``dropna()``'s
    view). A chunk of lines with no quote, NUL, lone carriage return or over-long field (the
    usual case) is read with numpy: its delimiters, the missing-value test of every field and
    the two keys' hashes, per column; a line that is not a plain row of the header's width is
    read by Python. From the first chunk that is not plain on, the rest of the file goes
    through ``csv.reader`` itself. Memory holds a few chunks and 24 bytes per row."""

    def __init__(self, path: Path):
        self.path = path
        self.f = path.open("rb")
        self.header: list[str] | None = None
        self.mode = "none"  # no flights | "csv" (all through csv.reader) | "plain"
        self.ahead: _Ahead | None = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    def _start(self) -> None:
        f = self.f
        head = f.readline()
        if not head:
            return  # an empty file: no flights
        plain = not any(c in head for c in (b'"', b"\x00")) and b"\r" not in head.rstrip(b"\r\n")
        if not plain:
            f.seek(0)
            self.mode = "csv"
            return
        text = head.decode("utf-8").rstrip("\r\n").rstrip("\r")
        header = text.split(",") if text else []
        missing = [c for c in FLIGHT_COLUMNS if c not in header]
        if missing:
            if _has_row(f):
                raise SandboxError(f"{self.path.name} lacks the flight columns {missing}")
            return  # no flights: the sandbox says so
        self.header = header
        if len(set(header)) != len(header):  # a repeated column name: csv.reader's rows
            self.mode = "csv"
            return
        self.mode = "plain"
        self.reader = _PlainFlights(self.path, header)
        self.ahead = _Ahead(f, self.reader)

    def into(self, conn: sqlite3.Connection) -> None:
        if self.mode == "csv":
            return _python_flights(conn, self.path, self.f, self.header)
        if self.mode == "none":
            return None
        assert self.header is not None and self.ahead is not None
        where = {k: i for i, k in enumerate(self.header)}
        writer = _FlightWriter(conn, [where[c] for c in FLIGHT_COLUMNS])
        for offset, done in self.ahead:
            if done is None:  # not plain: the rest of the file through csv.reader
                self.ahead.close()
                self.f.seek(offset)
                _python_rows(conn, self.path, self.f, self.header, writer)
                break
            *rows, dropped = done
            conn.executemany("INSERT INTO dropped VALUES (?,?,?,?)", dropped)
            writer.add(*rows)
        writer.finish()
        return None

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
        self.f.close()


def _chunks(f: Any) -> Iterator[tuple[int, bytes]]:
    """(offset, chunk) of the rest of ``f``: CHUNK_BYTES at a time, cut after the last line
    break (a line longer than a chunk: read on); an unterminated last line gets one."""
    carry, offset = b"", f.tell()
    while True:
        data = f.read(CHUNK_BYTES)
        block = carry + data
        if not data:
            if not block:
                return
            block += b"\n"
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            carry = block
            continue
        chunk, carry = block[:cut], block[cut:]
        yield offset, chunk
        offset += len(chunk)
        if not data:
            return


WORKERS = max(1, min(4, (os.cpu_count() or 2) - 1))
"""Threads that parse plain chunks (numpy releases the GIL); their results are used in order."""


class _Ahead:
    """The plain chunks of ``f`` parsed by WORKERS threads ahead of their use, in file order
    (a few chunks in flight at most), as ``(offset, result)``; :meth:`close` stops it."""

    def __init__(self, f: Any, reader: _PlainFlights):
        import queue
        import threading
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="hiergym-flights")
        self.queue: queue.Queue = queue.Queue(maxsize=WORKERS + 1)
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=self._read, args=(f, reader), name="hiergym-flights-reader", daemon=True
        )
        self.thread.start()

    def _read(self, f: Any, reader: _PlainFlights) -> None:
        try:
            for offset, chunk in _chunks(f):
                if self.stop.is_set():
                    return
                self.queue.put((offset, self.pool.submit(reader.chunk, chunk)))
            self.queue.put(None)
        except BaseException as e:  # handed to the reader of the results
            self.queue.put(e)

    def __iter__(self) -> Iterator[tuple[int, tuple | None]]:
        while (item := self.queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            offset, future = item
            done = future.result()
            yield offset, done
            if done is None:
                return

    def close(self) -> None:
        """Stop reading (the file is the caller's again once this returns)."""
        import queue

        self.stop.set()
        # Emptied once, the queue has room for what the reader may still put (the chunk it
        # holds and its end mark) before it sees the stop: the join cannot wait on a full queue.
        with contextlib.suppress(queue.Empty):
            while True:
                self.queue.get_nowait()
        self.thread.join()
        self.pool.shutdown(wait=True, cancel_futures=True)


def _has_row(f: Any) -> bool:
    """Whether the rest of ``f`` holds a line csv.reader reads as a row (not only line breaks)."""
    while data := f.read(CHUNK_BYTES):
        if data.strip(b"\r\n"):
            return True
    return False


def _python_flights(conn: sqlite3.Connection, path: Path, f: Any, header: list[str] | None):
    """The whole file through csv.reader (a header with quotes, or a repeated column name)."""
    text = io.TextIOWrapper(f, encoding="utf-8", newline="")
    reader = csv.reader(text)
    if header is None:
        header = next(reader, None)
        first = next((row for row in reader if row), None)
        if header is None or first is None:
            return
        missing = [c for c in FLIGHT_COLUMNS if c not in header]
        if missing:
            raise SandboxError(f"{path.name} lacks the flight columns {missing}")
        rows: Iterator[list[str]] = itertools.chain([first], reader)
    else:
        rows = reader
    where = {k: i for i, k in enumerate(header)}
    writer = _FlightWriter(conn, [where[c] for c in FLIGHT_COLUMNS])
    _python_rows(conn, path, text, header, writer, rows)
    writer.finish()


def _python_rows(
    conn: sqlite3.Connection,
    path: Path,
    f: Any,
    header: list[str],
    writer: _FlightWriter,
    rows: Iterator[list[str]] | None = None,
) -> None:
    """The rows of ``f`` from where it stands, read by csv.reader and kept as rows_of keeps
    them; each stored as a JSON list of its nine fields."""
    if rows is None:
        rows = csv.reader(io.TextIOWrapper(f, encoding="utf-8", newline=""))
    table = _Table(conn, "flights", path, "Flight Number", "OriginCityName")
    picked = table.rows_of(rows, header, FLIGHT_COLUMNS)
    while batch := list(itertools.islice(picked, 8192)):
        texts = [SPECIAL + json.dumps(row).encode() + b"\n" for row in batch]
        writer.add(*_python_batch(texts, batch))


def _python_batch(texts: list[bytes], rows: list[tuple[str, ...]]) -> tuple:
    """(text, starts, route hashes, number hashes) of rows stored as ``texts``."""
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    starts = np.cumsum(lengths) - lengths
    route = np.fromiter(
        (route_hash(r[6], r[7], r[5]) for r in rows), dtype=np.uint64, count=len(rows)
    )
    number = np.fromiter((number_hash(r[0]) for r in rows), dtype=np.uint64, count=len(rows))
    return b"".join(texts), starts, route, number


class _FlightWriter:
    """Collects rows (their texts, in file order, and the two hashes of each) and writes the
    store: the texts in blocks of BLOCK_ROWS rows as they come, the arrays at the end."""

    def __init__(self, conn: sqlite3.Connection, columns: list[int]):
        self.conn, self.columns = conn, columns
        conn.executescript(FLIGHT_TABLES)
        self.starts: list[np.ndarray] = []
        self.route: list[np.ndarray] = []
        self.number: list[np.ndarray] = []
        self.rows = 0  # rows added
        self.pos = 0  # bytes of text added
        self.block = 0  # the next block to write
        self.pending = b""  # the text of the rows from block * BLOCK_ROWS on
        self.pending_starts = np.empty(0, np.int64)  # their starts, in the whole text

    def add(self, text: bytes, starts: np.ndarray, route: np.ndarray, number: np.ndarray) -> None:
        """Rows whose texts are ``text`` (each ending with its line break), starting at
        ``starts`` in it, with their route and number hashes."""
        if not len(starts):
            return
        at = self.pos  # where ``text`` starts in the whole text
        starts = starts + at
        self.starts.append(starts)
        self.route.append(route)
        self.number.append(number)
        self.rows += len(starts)
        self.pos += len(text)
        marks = np.concatenate((self.pending_starts, starts))
        full = len(marks) // BLOCK_ROWS
        if not full:
            self.pending += text
            self.pending_starts = marks
            return
        bounds = marks[: full * BLOCK_ROWS + 1 : BLOCK_ROWS].tolist()
        if len(bounds) == full:
            bounds.append(self.pos)
        first = self.pending + text[: bounds[1] - at]
        blocks = [first] + [text[g0 - at : g1 - at] for g0, g1 in itertools.pairwise(bounds[1:])]
        self.conn.executemany(
            "INSERT INTO flight_blocks VALUES (?, ?)",
            zip(range(self.block, self.block + full), blocks, strict=True),
        )
        self.block += full
        self.pending = text[bounds[-1] - at :]
        self.pending_starts = marks[full * BLOCK_ROWS :]

    def finish(self) -> None:
        if self.pending:
            self.conn.execute("INSERT INTO flight_blocks VALUES (?, ?)", (self.block, self.pending))
        n = self.rows
        bits = max(1, (n - 1).bit_length())
        meta = {"rows": str(n), "bits": str(bits), "columns": json.dumps(self.columns)}
        self.conn.executemany("INSERT INTO flight_meta VALUES (?, ?)", sorted(meta.items()))
        if not n:
            return
        offsets = np.empty(n + 1, dtype="<u8")
        np.concatenate(self.starts, out=offsets[:n], casting="unsafe")
        offsets[n] = self.pos
        self.starts.clear()
        arrays = {"offsets": offsets}
        rowid = np.arange(n, dtype=np.uint64)
        for name, parts in (("route", self.route), ("number", self.number)):
            keys = np.concatenate(parts)
            parts.clear()
            keys >>= np.uint64(bits)
            keys <<= np.uint64(bits)
            keys |= rowid
            keys.sort()
            arrays[name] = keys.astype("<u8", copy=False)
        self.conn.executemany(
            "INSERT INTO flight_arrays VALUES (?, ?)",
            ((name, memoryview(a).cast("B")) for name, a in sorted(arrays.items())),
        )


def _na_tables() -> tuple:
    """For the numpy reader: which two-byte prefixes a missing-value string has, and the
    strings as little-endian words (all are at most 8 bytes)."""
    prefixes = np.zeros(1 << 16, dtype=bool)
    high = np.arange(256) << 8
    for delimiter in b",\n\r":  # an empty field: its delimiter (or its "\r\n") comes first
        prefixes[high | delimiter] = True
    words = []
    for na in PANDAS_NA:
        data = na.encode()
        assert len(data) <= 8
        if data:
            prefixes[int.from_bytes(data[:2].ljust(2, b"\0"), "little")] = True
            words.append(int.from_bytes(data, "little"))
    return prefixes, np.array(sorted(words), dtype=np.uint64)


class _PlainFlights:
    """The numpy reader of plain chunks (see :func:`_import_flights`)."""

    def __init__(self, path: Path, header: list[str]):
        self.path, self.header = path, header
        self.where = {k: i for i, k in enumerate(header)}
        self.width = len(header)
        self.columns = [self.where[c] for c in FLIGHT_COLUMNS]
        self.prefixes, self.na_words = _na_tables()
        self.limit = csv.field_size_limit()

    def chunk(self, chunk: bytes) -> tuple | None:
        """(text, starts, route hashes, number hashes, dropped) of the rows of ``chunk`` (whole
        lines; dropped: the rows for the ``dropped`` table), or None when it is not plain. The text is the chunk without its lines that hold no
        row; a row's text is its line (a line break of "\\r\\n" kept)."""
        if b'"' in chunk or b"\x00" in chunk:
            return None
        if not chunk.isascii():
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                return None  # csv.reader raises it, with its position
        width, size = self.width, len(chunk)
        a = np.frombuffer(chunk + bytes(8), dtype=np.uint8)
        body = a[:size]
        delims = np.flatnonzero((body == 44) | (body == 10))  # every field ends at one
        newline = a[delims] == 10
        line_ends = np.flatnonzero(newline)  # indices into delims
        ends = delims[line_ends]  # where each line's newline is
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        # a line's text ends at its newline, or before the "\r" of its "\r\n"
        cr = None
        content_ends = ends
        if b"\r" in chunk:
            cr = a[ends - 1] == 13
            if np.count_nonzero(body == 13) != np.count_nonzero(cr):
                return None  # a carriage return inside a line: csv.reader's own reading
            content_ends = ends - cr
        if int((content_ends - starts).max()) > self.limit:
            return None  # csv.reader may refuse a field this long
        # the missing-value test of every field: its first two bytes say whether it may be
        # one of PANDAS_NA (or empty: its delimiter comes first); those are compared whole
        after = np.ndarray((size + 6,), dtype="<u2", buffer=a, offset=1, strides=(1,))
        w8 = np.ndarray((len(a) - 7,), dtype="<u8", buffer=a, strides=(1,))
        maybe = np.flatnonzero(self.prefixes[after[delims[:-1]]]) + 1  # fields 1, 2, ...
        if self.prefixes[int.from_bytes(chunk[:2].ljust(2, b"\0"), "little")]:
            maybe = np.concatenate(([0], maybe))  # the chunk's first field
        if len(maybe):
            b = np.where(maybe > 0, delims[maybe - 1] + 1, 0)
            e = delims[maybe]
            if cr is not None:  # a line's last field ends before its "\r"
                e = e - (newline[maybe] & (a[e - 1] == 13))
            n = e - b
            word = w8[b] & BYTE_MASKS[np.minimum(n, 8)]
            na_field = maybe[(n == 0) | ((n <= 8) & np.isin(word, self.na_words))]
            na_lines = np.unique(np.searchsorted(line_ends, na_field))
        else:
            na_lines = np.empty(0, np.int64)
        counts = np.diff(line_ends, prepend=-1)  # fields per line
        uniform = counts == width
        if int(uniform.sum()) == len(uniform):
            plain = np.arange(len(ends))
            fields_of = delims.reshape(-1, width)
        else:
            plain = np.flatnonzero(uniform)
            fields_of = delims[line_ends[plain][:, None] + np.arange(1 - width, 1)]
        # lines that are not a plain row (blank, short or long) and plain rows with a missing
        # value: Python reads them, as rows_of reads them
        odd = np.flatnonzero(~uniform)
        keep = np.ones(len(ends), dtype=bool)
        keep[odd] = False
        keep[na_lines] = False
        extra: dict[int, tuple[str, ...]] = {}
        dropped: list[int] = []  # lines that hold no row
        records: list[tuple] = []  # what the dropped table says of them
        for line in np.union1d(odd, na_lines).tolist():
            s, e = int(starts[line]), int(content_ends[line])
            if s == e:
                dropped.append(line)  # a blank line: no row, nothing to record
                continue
            if e - s > self.limit:
                return None  # csv.reader may refuse a field this long
            picked = self._row(chunk[s:e].decode("utf-8").split(","))
            if isinstance(picked, list):
                dropped.append(line)
                records.append(tuple(picked))
            else:
                extra[line] = picked
        # the hashes of the plain rows' keys; then the rows kept, in their lines' order
        cols = self.columns

        def hashes(i: int) -> np.ndarray:
            c = cols[i]
            b = fields_of[:, c - 1] + 1 if c else starts[plain]
            e = fields_of[:, c]
            if c == width - 1 and cr is not None:
                e = e - cr[plain]
            return field_hashes(w8, b, e)

        kept = keep[plain]
        route = route_hashes(hashes(6), hashes(7), hashes(5))[kept]
        number = finish_hashes(hashes(0))[kept]
        kept_lines = plain[kept]
        if extra:  # long rows csv.reader keeps: hashed by Python, put in their place
            lines = np.array(sorted(extra), dtype=np.int64)
            at = np.searchsorted(kept_lines, lines)
            kept_lines = np.insert(kept_lines, at, lines)
            picked = [extra[int(i)] for i in lines]
            route = np.insert(route, at, [route_hash(r[6], r[7], r[5]) for r in picked])
            number = np.insert(number, at, [number_hash(r[0]) for r in picked])
        if not dropped:
            return chunk, starts[kept_lines], route, number, records
        # the text without the lines that hold no row
        removed = np.zeros(len(ends), dtype=np.int64)
        gone = np.array(dropped, dtype=np.int64)
        removed[gone] = ends[gone] - starts[gone] + 1
        shift = np.cumsum(removed) - removed
        pieces, prev = [], 0
        for line in dropped:
            pieces.append(chunk[prev : int(starts[line])])
            prev = int(ends[line]) + 1
        pieces.append(chunk[prev:])
        return b"".join(pieces), (starts - shift)[kept_lines], route, number, records

    def _row(self, row: list[str]) -> tuple[str, ...] | list[Any]:
        """rows_of's reading of one row that is not plain: its nine fields, or (a list) the
        row the ``dropped`` table gets for it."""
        where, na = self.where, PANDAS_NA
        missing = [k or "(index)" for k in where if where[k] >= len(row) or row[where[k]] in na]
        if not missing:
            return tuple(row[i] for i in self.columns)
        return [
            "flights",
            _name(_field(row, where, "Flight Number")),
            _field(row, where, "OriginCityName"),
            ", ".join(missing),
        ]


_IMPORTED: dict[Path, tuple[tuple, Path]] = {}
"""This process's imports: source folder -> (its manifest, the sandbox built from it)."""
RACY_NS = 2 * 10**9
"""A file modified this recently may change again within its mtime's granularity: a manifest
holding it is not trusted (git's "racy" rule), so the folder is hashed again next time."""


def _manifest(source: Path) -> tuple:
    """What identifies ``source``'s files without reading them: each file's relative path, size,
    mtime, ctime and inode (the files :func:`hiergym.envs.sandbox.sources_hash` reads)."""
    entries = []
    for p in source_files(source):
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
