"""TravelPlanner's tools over an imported sandbox: its FlightSearch, AccommodationSearch,
RestaurantSearch, AttractionSearch, CitySearch and GoogleDistanceMatrix, as compact paged JSON.

Names come back exactly as the database spells them, because a plan must name them that way
("Name, City"). Rows are ordered by price (attractions: as the database lists them) with a
tie-break on the row, so one call always gives one answer. Without imported flights,
``search_flights`` says so and the trip goes by self-driving or taxi.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field
from typing_extensions import Required, TypedDict

from hiergym.envs.sandbox import per_connection
from hiergym.envs.tools import Toolbox, tool
from hiergym.errors import ToolError

from ..clock import parse_date
from ..tools import answer, canonical, check_page
from .database import fare_order, flight_store, parse_route, route_cost
from .plan import FIELDS, MAX_FIELD_CHARS

PAGE_SIZE = 20
MODES = ("self-driving", "taxi")


@dataclass(frozen=True)
class Directory:
    """The cities and states of one imported sandbox, and whether it has flights."""

    cities: dict[str, str]  # lower-case -> name
    states: dict[str, str]
    by_state: dict[str, tuple[str, ...]]
    has_flights: bool


def _directory(db: sqlite3.Connection) -> Directory:
    rows = db.execute("SELECT city, state FROM cities ORDER BY city").fetchall()
    by_state: dict[str, list[str]] = {}
    for city, state in rows:
        by_state.setdefault(state, []).append(city)
    return Directory(
        cities={c.lower(): c for c, _ in rows},
        states={s.lower(): s for s in by_state},
        by_state={s: tuple(cs) for s, cs in by_state.items()},
        has_flights=flight_store(db) is not None,
    )


directory = per_connection(_directory)

NO_FLIGHTS = (
    "no flight data was imported into this sandbox (TravelPlanner distributes flights separately, "
    "as a CSV with Flight Number, Price, DepTime, ArrTime, ...; put it in the data folder to import "
    "it); travel by self-driving or taxi (get_distance)"
)


def city_name(env: Any, text: str, argument: str = "city") -> str:
    return canonical(
        text,
        directory(env.db).cities,
        argument,
        "city",
        "search_cities(state) lists the cities of a state",
    )


@tool
def search_flights(
    env: Any, origin: str, destination: str, date: str, page: int = 1
) -> dict[str, Any]:
    """Flights from one city to another on a date, cheapest first; prices are per person. Only when
    flight data was imported (otherwise the answer says so).

    Args:
        origin: departure city, e.g. "Washington".
        destination: arrival city, e.g. "Myrtle Beach".
        date: travel date, YYYY-MM-DD, e.g. "2022-03-13".
        page: result page (20 per page), starting at 1.
    """
    if not directory(env.db).has_flights:
        raise ToolError(NO_FLIGHTS)
    a = city_name(env, origin, "origin")
    b = city_name(env, destination, "destination")
    day = parse_date(date)
    if day is None:
        raise ToolError(f"date must be YYYY-MM-DD, e.g. 2022-03-13, got {date[:40]!r}")
    first = (check_page(page) - 1) * PAGE_SIZE
    store = flight_store(env.db)
    assert store is not None  # has_flights
    rows = sorted(store.route(env.db, a, b, day), key=fare_order)  # stable: then table order
    keys = ("number", "price", "depart", "arrive", "duration", "miles")
    results = [
        dict(zip(keys, (n, p, d, t, e, km), strict=True))
        for n, p, d, t, e, _, _, _, km in rows[first : first + PAGE_SIZE]
    ]
    head = {"origin": a, "destination": b, "date": day}
    total = len(rows) if results else 0  # as ``paged`` counts: a page past the end says 0
    return {**head, "page": page, "total": total, "results": results}


def _city_listing(env: Any, city: str, page: int, sql: str, keys: tuple[str, ...]) -> dict:
    """One page of a city's rows (``sql`` selects ``keys`` then the total, for ``city = ?``)."""
    name = city_name(env, city)
    return answer(env, sql, (name,), page, keys, {"city": name}, PAGE_SIZE)


@tool
def search_accommodations(env: Any, city: str, page: int = 1) -> dict[str, Any]:
    """Accommodations in a city, cheapest first: nightly price per room, room type, house rules,
    minimum nights, maximum occupancy, review rating.

    Args:
        city: the city, e.g. "Myrtle Beach".
        page: result page (20 per page), starting at 1.
    """
    return _city_listing(
        env,
        city,
        page,
        "SELECT name, price, room_type, coalesce(nullif(house_rules, ''), 'none'), "
        "CAST(minimum_nights AS INTEGER), max_occupancy, review_rate, count(*) OVER () "
        "FROM accommodations WHERE city = ? ORDER BY price, rowid",
        (
            "name",
            "price",
            "room_type",
            "house_rules",
            "minimum_nights",
            "maximum_occupancy",
            "rating",
        ),
    )


@tool
def search_restaurants(env: Any, city: str, page: int = 1) -> dict[str, Any]:
    """Restaurants in a city, cheapest first: cuisines, average cost per person, rating.

    Args:
        city: the city, e.g. "Myrtle Beach".
        page: result page (20 per page), starting at 1.
    """
    return _city_listing(
        env,
        city,
        page,
        "SELECT name, cuisines, average_cost, rating, count(*) OVER () "
        "FROM restaurants WHERE city = ? ORDER BY average_cost, rowid",
        ("name", "cuisines", "average_cost", "rating"),
    )


@tool
def search_attractions(env: Any, city: str, page: int = 1) -> dict[str, Any]:
    """Attractions in a city, as the database lists them: name and address.

    Args:
        city: the city, e.g. "Myrtle Beach".
        page: result page (20 per page), starting at 1.
    """
    return _city_listing(
        env,
        city,
        page,
        "SELECT name, address, count(*) OVER () FROM attractions WHERE city = ? ORDER BY rowid",
        ("name", "address"),
    )


@tool
def search_cities(env: Any, state: str) -> dict[str, Any]:
    """The cities of a state (for trips that visit several cities of one state).

    Args:
        state: the state, e.g. "Texas".
    """
    d = directory(env.db)
    name = canonical(
        state, d.states, "state", "state", f"states are {', '.join(sorted(d.by_state))}"
    )
    return {"state": name, "cities": list(d.by_state[name])}


@tool
def get_distance(
    env: Any, origin: str, destination: str, mode: str | None = None
) -> dict[str, Any]:
    """Driving duration, distance and cost from one city to another: by self-driving (cost per car,
    5 seats) and by taxi (cost per taxi, 4 seats).

    Args:
        origin: the city you leave, e.g. "Detroit".
        destination: the city you reach, e.g. "Norfolk".
        mode: "self-driving" or "taxi"; both when omitted.
    """
    if mode is not None and mode not in MODES:
        raise ToolError(f"mode must be one of {list(MODES)} or omitted, got {mode[:40]!r}")
    a = city_name(env, origin, "origin")
    b = city_name(env, destination, "destination")
    if a == b:
        raise ToolError("origin and destination are the same city")
    row = env.db.execute(
        "SELECT duration, distance FROM distances WHERE origin = ? AND destination = ?", (a, b)
    ).fetchone()
    route = parse_route(*row) if row is not None else None
    out: dict[str, Any] = {"origin": a, "destination": b}
    if route is None:
        return {**out, "route": None, "note": f"no driving route from {a} to {b}"}
    costs = {m: route_cost(route, m) for m in ([mode] if mode else MODES)}
    return {**out, "duration": route.duration, "distance": route.distance_text, "cost": costs}


_Field = Annotated[str, Field(max_length=MAX_FIELD_CHARS, description='"-" for none')]
PlanDay = TypedDict(
    "PlanDay",
    {
        "days": int,
        "day": int,
        **{name: Required[_Field] for name in FIELDS},  # type: ignore[misc]
    },
    total=False,
)
"""One day of a TravelPlanner plan, as its evaluation reads it (published as JSON Schema)."""


@tool(terminal=True, cache="none")
def submit(env: Any, plan: list[PlanDay]) -> str:
    """Finish: submit the plan in TravelPlanner's format, one entry per day (see the task). Ends
    the episode.

    Args:
        plan: [{"days", "current_city", "transportation", "breakfast", "attraction", "lunch", "dinner", "accommodation"}, ...].
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox(
    [
        search_flights,
        search_accommodations,
        search_restaurants,
        search_attractions,
        search_cities,
        get_distance,
        submit,
    ]
)
