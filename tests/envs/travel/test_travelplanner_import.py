"""The TravelPlanner import streams its tables (issue 12) and reads the rows TravelPlanner's pandas
``read_csv(...).dropna()`` keeps; the data folder is hashed once per import, not per gym.make."""

from __future__ import annotations

import os
import sqlite3
import time
import tracemalloc
from pathlib import Path

import pytest

from hiergym.envs import sandbox
from hiergym.envs.travel.travelplanner import importer
from hiergym.envs.travel.travelplanner.database import flight_store
from hiergym.envs.travel.travelplanner.importer import import_travelplanner

DATA = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "travelplanner"
pytestmark = pytest.mark.skipif(
    not (DATA / "distance.csv").is_file(), reason=f"TravelPlanner's data is not at {DATA}"
)
HEADER = ",Flight Number,Price,DepTime,ArrTime,ActualElapsedTime,FlightDate,OriginCityName,DestCityName,Distance\n"


def _folder(tmp_path: Path, flights: str | None = None) -> Path:
    folder = tmp_path / "data"
    folder.mkdir()
    for name in importer.REQUIRED.values():
        (folder / name).symlink_to(DATA / name)
    if flights is not None:
        _write(folder / "clean_Flights_2022.csv", flights, age_s=100)
    return folder


def _write(path: Path, text: str, age_s: int) -> None:
    """``text`` written to ``path``, its mtime set ``age_s`` seconds back (a file written within
    the last two seconds is hashed every time: its mtime might not show a further write)."""
    path.write_text(text, encoding="utf-8")
    then = time.time_ns() - age_s * 10**9
    os.utime(path, ns=(then, then))


def _build(folder: Path, out: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(out)
    importer.builder(folder)(conn, lambda description, total=None: lambda n=1: None)
    return conn


def _flights(conn: sqlite3.Connection) -> list[tuple]:
    """Every imported flight, in the table's order (the rows the SQL table held)."""
    store = flight_store(conn)
    return [] if store is None else list(store.scan(conn))


def test_a_large_flights_table_is_streamed_not_held_in_memory(tmp_path):
    rows = 40_000
    lines = (
        f"{i},F{i:07d},{100 + i % 400},08:00,10:30,2 hours 30 minutes,2022-03-{1 + i % 28:02d},"
        f"Washington,Myrtle Beach,400.0\n"
        for i in range(rows)
    )
    folder = _folder(tmp_path, HEADER + "".join(lines))
    assert (folder / "clean_Flights_2022.csv").stat().st_size > 3_000_000
    tracemalloc.start()
    try:
        conn = _build(folder, tmp_path / "out.sqlite")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert flight_store(conn).rows == rows and len(_flights(conn)) == rows
    # Every row held as a dict (the importer before issue 12) peaks above 30 MB here.
    assert peak < 8 * 2**20, f"the import peaked at {peak / 2**20:.1f} MB of Python objects"


def test_flight_rows_are_read_as_pandas_dropna_reads_them(tmp_path):
    flights = HEADER + (
        "0,F0000001,120,08:00,10:30,2 hours 30 minutes,2022-03-13,Washington,Myrtle Beach,400.0\n"
        "\n"  # a blank line is no row
        '1,F0000002,"$1,200", 09:00 ,11:00,2 hours,2022-03-14,Washington,Myrtle Beach, 500 \n'
        "2,F0000003,NA,08:00,10:30,2 hours,2022-03-13,Washington,Myrtle Beach,400.0\n"
        "3,F0000004,130,08:00,10:30,2 hours,2022-03-13,Washington\n"  # short: missing fields
        "4,F0000005,140,08:00,10:30,2 hours,2022-03-13,Washington,Myrtle Beach,410,extra\n"
        ",F0000006,150,08:00,10:30,2 hours,2022-03-13,Washington,Myrtle Beach,420\n"
        "6,F0000007,cheap,08:00,10:30,2 hours,2022-03-13,Washington,Myrtle Beach,1e3\n"
    )
    conn = _build(_folder(tmp_path, flights), tmp_path / "out.sqlite")
    assert _flights(conn) == [
        ("F0000001", 120.0, "08:00", "10:30", "2 hours 30 minutes", "2022-03-13", "Washington",
         "Myrtle Beach", 400.0),
        ("F0000002", 1200.0, " 09:00 ", "11:00", "2 hours", "2022-03-14", "Washington",
         "Myrtle Beach", 500.0),
        ("F0000005", 140.0, "08:00", "10:30", "2 hours", "2022-03-13", "Washington",
         "Myrtle Beach", 410.0),
        ("F0000007", None, "08:00", "10:30", "2 hours", "2022-03-13", "Washington",
         "Myrtle Beach", 1000.0),
    ]  # fmt: skip
    dropped = conn.execute("SELECT * FROM dropped WHERE tbl = 'flights' ORDER BY rowid").fetchall()
    assert dropped == [
        ("flights", "F0000003", "Washington", "Price"),
        ("flights", "F0000004", "Washington", "DestCityName, Distance"),
        ("flights", "F0000006", "Washington", "(index)"),
    ]
    # the shipped tables as before: TravelPlanner's dropna() view of them
    assert conn.execute("SELECT count(*) FROM accommodations").fetchone()[0] == 4285
    assert conn.execute("SELECT count(*) FROM dropped WHERE tbl = 'accommodations'").fetchone() == (
        762,
    )


def test_a_flights_file_without_the_columns_is_refused_by_name(tmp_path):
    folder = _folder(tmp_path, "Flight Number,Price\nF1,100\n")
    with pytest.raises(importer.SandboxError, match=r"lacks the flight columns \['DepTime'"):
        _build(folder, tmp_path / "out.sqlite")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("HIERGYM_HOME", str(tmp_path / "home"))
    importer._IMPORTED.clear()
    yield tmp_path / "home"
    importer._IMPORTED.clear()


def _count_hashes(monkeypatch) -> list[Path]:
    hashed: list[Path] = []
    real = sandbox.sources_hash

    def counting(source_dir, *args, **kwargs):
        hashed.append(Path(source_dir))
        return real(source_dir, *args, **kwargs)

    monkeypatch.setattr(sandbox, "sources_hash", counting)
    return hashed


def test_the_folder_is_hashed_once_then_recognised_by_its_manifest(tmp_path, home, monkeypatch):
    folder = _folder(tmp_path, HEADER + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n")
    hashed = _count_hashes(monkeypatch)
    first = import_travelplanner(folder)
    assert len(hashed) == 1
    assert import_travelplanner(folder) == first and len(hashed) == 1
    importer._IMPORTED.clear()  # a new process: the manifest stored beside the DB is read
    assert import_travelplanner(folder) == first and len(hashed) == 1


def test_a_changed_or_new_file_is_noticed(tmp_path, home, monkeypatch):
    flights = tmp_path / "data" / "clean_Flights_2022.csv"
    folder = _folder(tmp_path, HEADER + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n")
    first = import_travelplanner(folder)
    hashed = _count_hashes(monkeypatch)
    # same size, new content and mtime: a new data version, a new sandbox
    _write(flights, HEADER + "0,F2,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n", age_s=50)
    second = import_travelplanner(folder)
    assert second != first and len(hashed) == 1
    conn = sqlite3.connect(second)
    assert [f[0] for f in _flights(conn)] == ["F2"]
    _write(folder / "notes.txt", "a new file in the folder", age_s=-60)  # mtime: "just now"
    assert import_travelplanner(folder) != second and len(hashed) == 2
    assert import_travelplanner(folder) and len(hashed) == 3  # a file this new is hashed again


def test_the_stored_manifest_names_its_folder(tmp_path, home, monkeypatch):
    folder = _folder(tmp_path, HEADER + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n")
    first = import_travelplanner(folder)
    stored = list(home.glob("travelplanner-manifest-*.json"))
    assert len(stored) == 1 and str(folder.resolve()) in stored[0].read_text()
    stored[0].write_text("{not json")  # a damaged record: hashed again, never trusted
    importer._IMPORTED.clear()
    hashed = _count_hashes(monkeypatch)
    assert import_travelplanner(folder) == first and len(hashed) == 1


def test_a_touched_but_unchanged_folder_keeps_its_sandbox(tmp_path, home, monkeypatch):
    folder = _folder(tmp_path, HEADER + "0,F1,100,08:00,10:30,2 hours,2022-03-13,A,B,400\n")
    first = import_travelplanner(folder)
    flights = folder / "clean_Flights_2022.csv"
    os.utime(flights, ns=(flights.stat().st_atime_ns, flights.stat().st_mtime_ns + 10**9))
    hashed = _count_hashes(monkeypatch)
    assert import_travelplanner(folder) == first and len(hashed) == 1  # re-hashed, same version
    assert import_travelplanner(folder) == first and len(hashed) == 1  # and remembered again
