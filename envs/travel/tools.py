"""Travel tools: flight, train, hotel, attraction and restaurant search, distances, submit.

Every tool is a pure function of the read-only sandbox; answers are compact, paged (10 per page)
and ordered with a tie-break on the id, so one call always gives one answer. City names are matched
case-insensitively; anything else an agent sends comes back as a ToolError that names the fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field
from typing_extensions import Required, TypedDict

from hiergym.envs.tools import Toolbox, tool
from hiergym.errors import ToolError, did_you_mean

from .clock import all_dates, date_set, parse_date, parse_hhmm
from .data import load_sources
from .geo import MODES
from .world import world_of

PAGE_SIZE = 10
MAX_PAGE = 20
MAX_DISTANCE_PAIRS = 48
ROOM_TYPES = ("Entire home/apt", "Private room", "Shared room")


def canonical(text: str, by_lower: Mapping[str, str], argument: str, noun: str, known: str) -> str:
    """The canonical spelling of the name ``text`` gives, case-insensitively; otherwise a ToolError
    that names the closest one and, in ``known``, where the others are."""
    name = by_lower.get(text.strip().lower())
    if name is not None:
        return name
    close = did_you_mean(text.strip().title(), by_lower.values())
    raise ToolError(f"{argument}: no {noun} {text[:60]!r}{close}; {known}")


def city_name(state: Any, text: str, argument: str = "city") -> str:
    """The canonical name of the city ``text`` names; a ToolError naming the closest one otherwise."""
    world = world_of(state.db)
    return canonical(
        text, world.by_lower, argument, "city", f"cities are {', '.join(sorted(world.cities))}"
    )


def check_page(page: int) -> int:
    if not 1 <= page <= MAX_PAGE:
        raise ToolError(f"page must be between 1 and {MAX_PAGE}, got {page}")
    return page


def _date(text: str) -> str:
    if text in date_set():
        return text
    date = parse_date(text)
    dates = all_dates()
    if date is None:
        raise ToolError(f"date must be YYYY-MM-DD, e.g. {dates[0]}, got {text[:40]!r}")
    if date not in date_set():
        raise ToolError(f"no timetable for {date}; timetables cover {dates[0]} to {dates[-1]}")
    return date


def _bound(value: float | None, name: str, hi: float) -> float | None:
    if value is not None and not 0 <= value <= hi:
        raise ToolError(f"{name} must be between 0 and {hi:g}, got {value}")
    return value


def paged(
    state: Any, sql: str, params: tuple, page: int, page_size: int = PAGE_SIZE
) -> tuple[list[Any], int]:
    """Rows of one page and the total, in one query (``count(*) OVER ()`` is the last column)."""
    rows = state.db.execute(
        f"{sql} LIMIT {page_size} OFFSET {(check_page(page) - 1) * page_size}", params
    ).fetchall()
    return rows, (rows[0][-1] if rows else 0)


def answer(
    state: Any,
    sql: str,
    params: tuple,
    page: int,
    keys: tuple[str, ...],
    head: dict[str, Any],
    page_size: int = PAGE_SIZE,
) -> dict[str, Any]:
    """One page of ``sql``'s rows as a search's answer: ``head``, the page, the total, and each row
    as a dict of ``keys`` (``sql`` selects those columns, then ``count(*) OVER ()``)."""
    rows, total = paged(state, sql, params, page, page_size)
    results = [dict(zip(keys, r, strict=False)) for r in rows]
    return {**head, "page": page, "total": total, "results": results}


def filtered(source: str, params: list[Any], filters: list[tuple[str, Any]]) -> tuple[str, tuple]:
    """``source`` (``table WHERE ...``) narrowed by each filter whose value is not None: a
    (condition, value) pair, the value bound to every placeholder of the condition."""
    for condition, value in filters:
        if value is not None:
            source += f" AND {condition}"
            params += [value] * condition.count("?")
    return source, tuple(params)


def hhmm_sql(column: str) -> str:
    """SQL for ``clock.hhmm(column)``: the minutes after midnight as "HH:MM"."""
    return f"printf('%02d:%02d', {column} / 60, {column} % 60)"


def _rides(state: Any, table: str, origin: str, destination: str, date: str, page: int) -> dict:
    a = city_name(state, origin, "origin")
    b = city_name(state, destination, "destination")
    if a == b:
        raise ToolError("origin and destination are the same city")
    day = _date(date)
    return answer(
        state,
        f"SELECT number, {hhmm_sql('dep_min')}, {hhmm_sql('arr_min')}, price, seats, "
        f"count(*) OVER () FROM {table} "
        "WHERE origin = ? AND destination = ? AND date = ? ORDER BY dep_min, number",
        (a, b, day),
        page,
        ("number", "depart", "arrive", "price", "seats"),
        {"origin": a, "destination": b, "date": day},
    )


@tool
def search_flights(
    state: Any, origin: str, destination: str, date: str, page: int = 1
) -> dict[str, Any]:
    """Flights from one city to another on a date, by departure time; prices are per person.

    Args:
        origin: departure city, e.g. "Boston".
        destination: arrival city, e.g. "Chicago".
        date: travel date, YYYY-MM-DD (2024-03-01 to 2024-04-30).
        page: result page (10 per page), starting at 1.
    """
    return _rides(state, "flights", origin, destination, date, page)


@tool
def search_trains(
    state: Any, origin: str, destination: str, date: str, page: int = 1
) -> dict[str, Any]:
    """Trains between nearby cities (under ~550 km) on a date, by departure; prices per person.

    Args:
        origin: departure city, e.g. "New York".
        destination: arrival city, e.g. "Philadelphia".
        date: travel date, YYYY-MM-DD (2024-03-01 to 2024-04-30).
        page: result page (10 per page), starting at 1.
    """
    return _rides(state, "trains", origin, destination, date, page)


@tool
def search_hotels(
    state: Any,
    city: str,
    room_type: str | None = None,
    max_price: float | None = None,
    min_rating: float | None = None,
    sort: str = "price",
    page: int = 1,
) -> dict[str, Any]:
    """Accommodations in a city: nightly price per room, room type, house rules, minimum nights, occupancy, rating.

    Args:
        city: the city, e.g. "Chicago".
        room_type: only this room type: "Entire home/apt", "Private room" or "Shared room".
        max_price: only rooms at or below this nightly price (USD).
        min_rating: only places rated at least this (0-5).
        sort: "price" (cheapest first) or "rating" (best first).
        page: result page (10 per page), starting at 1.
    """
    name = city_name(state, city)
    source, params = filtered(
        "hotels WHERE city = ?",
        [name],
        [
            ("room_type = ?", None if room_type is None else _room_type(room_type)),
            ("price <= ?", _bound(max_price, "max_price", 1e6)),
            ("rating >= ?", _bound(min_rating, "min_rating", 5)),
        ],
    )
    order = _sort(sort, {"price": "price, id", "rating": "rating DESC, price, id"})
    return answer(
        state,
        "SELECT id, name, room_type, price, min_nights, max_occupancy, rating, "
        "coalesce(nullif(house_rules, ''), 'none'), count(*) OVER () "
        f"FROM {source} ORDER BY {order}",
        params,
        page,
        HOTEL_KEYS,
        {"city": name},
    )


HOTEL_KEYS = (
    "id",
    "name",
    "room_type",
    "price",
    "minimum_nights",
    "max_occupancy",
    "rating",
    "house_rules",
)


def _room_type(text: str) -> str:
    match = next((r for r in ROOM_TYPES if r.lower() == text.strip().lower()), None)
    if match is None:
        raise ToolError(
            f"room_type must be one of {list(ROOM_TYPES)}, got {text[:40]!r}"
            f"{did_you_mean(text, ROOM_TYPES)}"
        )
    return match


def _sort(sort: str, orders: dict[str, str]) -> str:
    if sort not in orders:
        raise ToolError(f"sort must be one of {list(orders)}, got {sort[:40]!r}")
    return orders[sort]


@tool
def search_attractions(
    state: Any,
    city: str,
    kind: str | None = None,
    max_price: float | None = None,
    sort: str = "price",
    page: int = 1,
) -> dict[str, Any]:
    """Attractions in a city: kind, opening hours, typical visit duration (minutes), ticket price per person, rating.

    Args:
        city: the city, e.g. "Chicago".
        kind: only this kind: museum, park, landmark, zoo, market or show.
        max_price: only tickets at or below this price (USD).
        sort: "price" (cheapest first) or "rating" (best first).
        page: result page (10 per page), starting at 1.
    """
    name = city_name(state, city)
    source, params = filtered(
        "attractions WHERE city = ?",
        [name],
        [
            ("kind = ?", None if kind is None else kind.strip().lower()),
            ("price <= ?", _bound(max_price, "max_price", 1e6)),
        ],
    )
    order = _sort(sort, {"price": "price, id", "rating": "rating DESC, price, id"})
    return answer(
        state,
        f"SELECT id, name, kind, {hhmm_sql('open_min')}, {hhmm_sql('close_min')}, duration, "
        f"price, rating, count(*) OVER () FROM {source} ORDER BY {order}",
        params,
        page,
        ("id", "name", "kind", "open", "close", "duration", "price", "rating"),
        {"city": name},
    )


@tool
def search_restaurants(
    state: Any,
    city: str,
    cuisine: str | None = None,
    max_cost: float | None = None,
    min_rating: float | None = None,
    open_at: str | None = None,
    sort: str = "cost",
    page: int = 1,
) -> dict[str, Any]:
    """Restaurants in a city: cuisines, average cost per person, opening hours, rating.

    Args:
        city: the city, e.g. "Chicago".
        cuisine: only restaurants serving this cuisine, e.g. "Italian".
        max_cost: only an average cost per person at or below this (USD).
        min_rating: only restaurants rated at least this (0-5).
        open_at: only restaurants open at this time, "HH:MM".
        sort: "cost" (cheapest first) or "rating" (best first).
        page: result page (10 per page), starting at 1.
    """
    name = city_name(state, city)
    if cuisine is not None:
        # The cuisine index answers the filter; the main table holds the rest of the row.
        source = (
            "restaurant_cuisines c JOIN restaurants r ON r.id = c.restaurant_id "
            "WHERE c.city = ? AND c.cuisine = ?"
        )
        first: list[Any] = [name, cuisine_name(cuisine)]
    else:
        source, first = "restaurants r WHERE r.city = ?", [name]
    minute = None
    if open_at is not None:
        minute = parse_hhmm(open_at)
        if minute is None:
            raise ToolError(f"open_at must be HH:MM, e.g. 12:30, got {open_at[:40]!r}")
    source, params = filtered(
        source,
        first,
        [
            ("r.cost <= ?", _bound(max_cost, "max_cost", 1e6)),
            ("r.rating >= ?", _bound(min_rating, "min_rating", 5)),
            ("r.open_min <= ? AND r.close_min > ?", minute),
        ],
    )
    order = _sort(sort, {"cost": "r.cost, r.id", "rating": "r.rating DESC, r.cost, r.id"})
    return answer(
        state,
        f"SELECT r.id, r.name, r.cuisines, r.cost, r.rating, {hhmm_sql('r.open_min')}, "
        f"{hhmm_sql('r.close_min')}, count(*) OVER () FROM {source} ORDER BY {order}",
        params,
        page,
        ("id", "name", "cuisines", "cost", "rating", "open", "close"),
        {"city": name},
    )


def cuisine_name(text: str) -> str:
    """The canonical spelling of a cuisine (case-insensitive), or a ToolError listing them."""
    cuisines = load_sources()[1]["cuisines"]
    by_lower = {c.lower(): c for c in cuisines}
    return canonical(text, by_lower, "cuisine", "cuisine", f"cuisines are {', '.join(cuisines)}")


def place_id(state: Any, text: str) -> str:
    """A known place id (hotel, restaurant, attraction, AIRPORT-XXX, STATION-XXX, CENTER-XXX)."""
    world = world_of(state.db)
    pid = text.strip().upper()
    if pid not in world.places:
        raise ToolError(
            f"no place {text[:40]!r}{did_you_mean(pid, world.places)}; use an id from search "
            "results (H-/R-/A-...) or a hub such as AIRPORT-BOS, STATION-BOS, CENTER-BOS"
        )
    return pid


@tool
def get_distance(
    state: Any, origins: list[str], destinations: list[str], mode: str | None = None
) -> dict[str, Any]:
    """Travel time (minutes) and cost per vehicle (USD) between places, by walk, taxi or drive (own car).

    Places are ids from search results or city hubs: AIRPORT-<code>, STATION-<code>, CENTER-<code>
    (the trip starts at the origin's CENTER). Taxis seat 4, cars 5; walking is offered up to 6 km.

    Args:
        origins: place ids, e.g. ["CENTER-BOS", "H-BOS-004"].
        destinations: place ids, e.g. ["AIRPORT-BOS"].
        mode: "walk", "taxi" or "drive"; every mode when omitted.
    """
    if mode is not None and mode not in MODES:
        raise ToolError(f"mode must be one of {list(MODES)} or omitted, got {mode[:40]!r}")
    if not origins or not destinations:
        raise ToolError("origins and destinations each need at least one place id")
    a = list(dict.fromkeys(place_id(state, o) for o in origins))
    b = list(dict.fromkeys(place_id(state, d) for d in destinations))
    pairs = [(x, y) for x in a for y in b if x != y]
    if len(pairs) > MAX_DISTANCE_PAIRS:
        raise ToolError(
            f"{len(pairs)} origin-destination pairs; ask for at most {MAX_DISTANCE_PAIRS} per call"
        )
    world = world_of(state.db)
    modes = [mode] if mode else list(MODES)
    out = []
    for x, y in pairs:
        entry: dict[str, Any] = {"from": x, "to": y, "km": world.km(x, y)}
        for m in modes:
            leg = world.leg(m, x, y)
            entry[m] = None if leg is None else {"minutes": leg.minutes, "cost": leg.cost}
        out.append(entry)
    return {"pairs": out}


# The itinerary's JSON shape, published as a full nested JSON Schema (constrained decoding and
# strict function calling can then help an LLM) and checked before the verifier sees it. The
# verifier's parser (itinerary.py) stays the judge of everything finer: times, dates, ids.
ACTIVITY_TYPES = ("flight", "train", "transfer", "meal", "attraction")
MEALS = ("breakfast", "lunch", "dinner")
MAX_DAYS = 14
MAX_ACTIVITIES = 40
MAX_COST = 1e7
_OPEN = ConfigDict(extra="allow")  # an extra key (a note, say) is ignored, not refused

Cost = Annotated[float, Field(ge=0, le=MAX_COST, description="unit price a tool quoted (USD)")]
ActivityJSON = TypedDict(
    "ActivityJSON",
    {
        "type": Required[Literal["flight", "train", "transfer", "meal", "attraction"]],
        "start": Required[Annotated[str, Field(description="HH:MM")]],
        "end": Required[Annotated[str, Field(description="HH:MM")]],
        "cost": Required[Cost],
        "number": Annotated[str, Field(description="flight or train number")],
        "from": Annotated[str, Field(description="city (flight, train) or place id (transfer)")],
        "to": Annotated[str, Field(description="city (flight, train) or place id (transfer)")],
        "mode": Annotated[str, Field(description="transfer mode, e.g. taxi")],
        "place": Annotated[str, Field(description="restaurant or attraction id")],
        "meal": Literal["breakfast", "lunch", "dinner"],
    },
    total=False,
)
ActivityJSON.__pydantic_config__ = _OPEN  # type: ignore[attr-defined]


class StayJSON(TypedDict):
    place: Annotated[str, Field(description="hotel id")]
    cost: Cost


class DayJSON(TypedDict):
    day: int
    date: Annotated[str, Field(description="YYYY-MM-DD")]
    activities: Annotated[list[ActivityJSON], Field(max_length=MAX_ACTIVITIES)]
    accommodation: StayJSON | None


class ItineraryJSON(TypedDict):
    days: Annotated[list[DayJSON], Field(min_length=1, max_length=MAX_DAYS)]
    total_cost: Annotated[float, Field(ge=0, le=MAX_COST, description="USD, the whole group")]


for _typed in (StayJSON, DayJSON, ItineraryJSON):
    _typed.__pydantic_config__ = _OPEN  # type: ignore[attr-defined]


@tool(terminal=True, cache="none")
def submit(state: Any, itinerary: ItineraryJSON) -> str:
    """Finish: submit the itinerary (see the task for its JSON shape). Ends the episode.

    Args:
        itinerary: {"days": [{"day", "date", "activities": [...], "accommodation"}], "total_cost"}.
    """
    return "submitted; the episode is over"


TOOLBOX = Toolbox(
    [
        search_flights,
        search_trains,
        search_hotels,
        search_attractions,
        search_restaurants,
        get_distance,
        submit,
    ]
)
