"""Cached tool sandboxes: the domain database, the tool cache, and live backends.

* The domain DB is generated deterministically from ``sandbox_data/<domain>/`` on first use and stored
  under ``HIERGYM_HOME`` as ``<domain>-<data hash>.sqlite``; a change to the sources or the generator
  version gives a new file, never a stale one. Envs open it read-only.
* :class:`ToolCache` stores ``(domain, data_version, tool, canonical args) -> result`` in a SQLAlchemy
  table: a SQLite file in WAL mode by default (several processes share it), any database by URL
  (``HIERGYM_DB_URL``, e.g. Postgres for a cluster).
* Modes: ``replay`` (cache, else local data; an answer that needs the outside world is a
  :class:`ReplayMiss`), ``record`` (a miss goes to the live backend and is stored), ``live`` (always
  the backend, and stored).

SQLAlchemy and httpx are imported on first need (a ToolCache opened, a live backend made), never
by ``import hiergym`` or by opening the read-only domain DB, which is a plain ``sqlite3``
connection.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol, TypeVar

from hiergym.errors import ReplayMiss, SandboxError, ToolError

from .tools import Tool, ToolCall, canonical_json, fast_json_loader

if TYPE_CHECKING:
    import httpx
    import sqlalchemy as sa

Mode = Literal["replay", "record", "live"]
MEMORY_ENTRIES = 200_000
"""Results a sandbox keeps in process memory (the SQL cache and local data hold the rest)."""
MODES: tuple[str, ...] = ("replay", "record", "live")


def hiergym_home() -> Path:
    """Where built sandboxes and the default cache live: ``$HIERGYM_HOME`` or the user cache dir."""
    env = os.environ.get("HIERGYM_HOME")
    if env:
        path = Path(env).expanduser()
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("hiergym"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def source_files(source_dir: Path) -> list[Path]:
    """The files under ``source_dir`` that make its data version (what :func:`sources_hash`
    reads; a ``__pycache__`` folder's files are not sources)."""
    return [p for p in source_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


def sources_hash(source_dir: Path, generator_version: str, code_dir: Path | None = None) -> str:
    """A short hash of every source file (path and bytes), the generator version, and the ``.py``
    files of ``code_dir`` (the domain package: its tools and oracle shape the generated tasks) with
    ``envs/building.py`` (the shared build-time prover)."""
    h = hashlib.sha256(generator_version.encode())
    files = [(source_dir, p) for p in source_files(source_dir)]
    if code_dir is not None:
        files += [(code_dir, p) for p in code_dir.glob("*.py")]
        # the shared build-time prover decides which generated tasks a domain keeps
        building = Path(__file__).with_name("building.py")
        files.append((building.parent, building))
    for root, f in sorted(files, key=lambda rf: (str(rf[0]), str(rf[1]))):
        if "__pycache__" in f.parts:
            continue
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()[:12]


Builder = Callable[[sqlite3.Connection, "Progress"], None]


T = TypeVar("T")

CONNECTIONS_KEPT = 16
"""How many connections a :func:`per_connection` memo remembers (the latest used): a process that
opens sandbox after sandbox does not keep every connection, and its file, open."""


def per_connection(
    build: Callable[[sqlite3.Connection], T], kept: int = CONNECTIONS_KEPT
) -> Callable[[sqlite3.Connection], T]:
    """``build(db)`` made once per connection (connections live as long as their sandbox) for
    the ``kept`` latest-used connections; one forgotten is built again when it asks. The memo
    holds each connection (sqlite3 connections cannot be held weakly), so a new connection that
    reuses an old one's id is never confused with it. The memo is ``get.memo``."""
    memo: OrderedDict[int, tuple[sqlite3.Connection, T]] = OrderedDict()
    lock = threading.Lock()

    def get(db: sqlite3.Connection) -> T:
        key = id(db)
        hit = memo.get(key)
        if hit is not None and hit[0] is db:
            try:  # noqa: SIM105 - contextlib.suppress costs ~1 us a look-up here
                memo.move_to_end(key)  # the latest used
            except KeyError:  # forgotten meanwhile by another thread
                pass
            return hit[1]
        value = build(db)
        with lock:
            memo[key] = (db, value)
            memo.move_to_end(key)
            while len(memo) > kept:
                memo.popitem(last=False)
        return value

    get.memo = memo  # type: ignore[attr-defined]
    return get


class Progress(Protocol):
    def __call__(self, description: str, total: int | None = None) -> Callable[[int], None]: ...


@contextlib.contextmanager
def _progress_bar() -> Iterator[Progress]:
    from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(), transient=True
    ) as bar:

        def task(description: str, total: int | None = None) -> Callable[[int], None]:
            tid = bar.add_task(description, total=total)
            return lambda n=1: bar.advance(tid, n)

        yield task


def build_database(
    domain: str,
    source_dir: Path,
    builder: Builder,
    generator_version: str,
    code_dir: Path | None = None,
) -> Path:
    """The path of the domain DB, built from its sources first if this data version is new.

    The version hashes the sources, the generator version and, given ``code_dir``, the domain's code,
    so an edit to any of them builds a new file instead of serving a stale one. Concurrent processes
    wait on a file lock; the DB is written to a temp file and renamed into place, so a reader never
    sees half a database.
    """
    version = sources_hash(source_dir, generator_version, code_dir)
    path = hiergym_home() / f"{domain}-{version}.sqlite"
    if path.exists():
        return path
    from filelock import FileLock

    lock_path = path.with_suffix(".lock")
    with FileLock(str(lock_path)):  # portable (fcntl is POSIX-only)
        if path.exists():
            return path
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.unlink(missing_ok=True)
        import sys

        if not sys.stderr.isatty():  # the progress bar shows only on a terminal: say it in logs
            print(
                f"hiergym: building the {domain} sandbox (first use of data version {version}) "
                f"into {path}",
                file=sys.stderr,
                flush=True,
            )
        conn = sqlite3.connect(tmp)
        try:
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            with _progress_bar() as progress:
                builder(conn, progress)
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('data_version', ?), ('domain', ?)",
                (version, domain),
            )
            conn.commit()
        except BaseException:
            conn.close()
            tmp.unlink(missing_ok=True)
            raise
        conn.close()
        os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------------------------
# Tool cache


_TABLE: list[Any] = []  # [MetaData, Table] once built


def _tool_cache_table() -> sa.Table:
    """The ``tool_cache`` table (SQLAlchemy is imported here, on the first cache opened)."""
    if not _TABLE:
        import sqlalchemy as sa

        metadata = sa.MetaData()
        table = sa.Table(
            "tool_cache",
            metadata,
            sa.Column("domain", sa.String(64), primary_key=True),
            sa.Column("data_version", sa.String(64), primary_key=True),
            sa.Column("tool", sa.String(64), primary_key=True),
            sa.Column("args_hash", sa.String(64), primary_key=True),
            sa.Column("arguments", sa.Text, nullable=False),
            sa.Column("result", sa.Text, nullable=False),
            sa.Column("created_at", sa.Float, nullable=False),
        )
        _TABLE[:] = [metadata, table]
    return _TABLE[1]


def __getattr__(name: str) -> Any:
    # ``tool_cache_table`` and ``_metadata`` stay importable names, built on first access.
    if name == "tool_cache_table":
        return _tool_cache_table()
    if name == "_metadata":
        _tool_cache_table()
        return _TABLE[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sqlite_wal(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def cache_url() -> str:
    """``$HIERGYM_DB_URL``, or the SQLite cache file under ``HIERGYM_HOME``."""
    return os.environ.get("HIERGYM_DB_URL") or f"sqlite:///{hiergym_home() / 'cache.sqlite'}"


@dataclass(frozen=True)
class CacheKey:
    domain: str
    data_version: str
    tool: str
    arguments: str  # canonical JSON

    @property
    def args_hash(self) -> str:
        return hashlib.sha256(self.arguments.encode()).hexdigest()


def _forget_engines_after_fork() -> None:
    """In a forked child, drop the parent's pooled connections without closing them (closing would
    end the parent's sessions too): SQLAlchemy's guidance for pools and ``os.fork()``."""
    for engine in list(ToolCache._engines.values()):
        engine.dispose(close=False)
    ToolCache._engines.clear()


class ToolCache:
    """``(domain, data_version, tool, canonical args) -> JSON result`` in a SQL table.

    Engines are per process: a child forked by an AsyncVectorEnv, a process pool or Ray opens its
    own connections and never reuses the parent's (see :func:`_forget_engines_after_fork`).
    """

    _engines: dict[str, sa.Engine] = {}

    def __init__(self, url: str | None = None):
        import sqlalchemy as sa

        self.url = url or cache_url()
        self.table = _tool_cache_table()
        engine = ToolCache._engines.get(self.url)
        if engine is None:
            try:
                engine = sa.create_engine(self.url, pool_pre_ping=not self.url.startswith("sqlite"))
            except (sa.exc.ArgumentError, ModuleNotFoundError) as e:
                raise SandboxError(
                    f"cannot open the tool cache at {self.url!r}: {e}. Expected a SQLAlchemy URL such "
                    "as sqlite:///path or postgresql+psycopg://user@host/db (pip install 'hiergym[postgres]')"
                ) from e
            if engine.dialect.name == "sqlite":
                sa.event.listen(engine, "connect", _sqlite_wal)
            try:
                _TABLE[0].create_all(engine)
            except sa.exc.OperationalError as e:
                raise SandboxError(
                    f"cannot reach the tool cache database {self.url!r}: {e.orig}"
                ) from e
            ToolCache._engines[self.url] = engine
        self.engine = engine

    def get(self, key: CacheKey) -> Any | None:
        text = self.get_text(key)
        return None if text is None else json.loads(text)

    def get_text(self, key: CacheKey) -> str | None:
        """The stored result as its JSON text, or ``None``."""
        import sqlalchemy as sa

        t = self.table
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(t.c.result).where(
                    t.c.domain == key.domain,
                    t.c.data_version == key.data_version,
                    t.c.tool == key.tool,
                    t.c.args_hash == key.args_hash,
                )
            ).first()
        return None if row is None else row[0]

    def put(self, key: CacheKey, result: Any) -> None:
        """Store a result; a concurrent writer of the same key wins quietly (results are equal)."""
        self.put_text(key, json.dumps(result, default=str))

    def put_text(self, key: CacheKey, text: str) -> None:
        """Store a result given as its JSON text (``json.dumps(result, default=str)``)."""
        import sqlalchemy as sa

        values = {
            "domain": key.domain,
            "data_version": key.data_version,
            "tool": key.tool,
            "args_hash": key.args_hash,
            "arguments": key.arguments,
            "result": text,
            "created_at": time.time(),
        }
        with contextlib.suppress(sa.exc.IntegrityError), self.engine.begin() as conn:
            conn.execute(self.table.insert().values(**values))

    def has_entries(self, domain: str, data_version: str) -> bool:
        import sqlalchemy as sa

        t = self.table
        stmt = (
            sa.select(t.c.tool)
            .where(t.c.domain == domain, t.c.data_version == data_version)
            .limit(1)
        )
        with self.engine.connect() as conn:
            return conn.execute(stmt).first() is not None

    def count(self, domain: str | None = None) -> int:
        import sqlalchemy as sa

        stmt = sa.select(sa.func.count()).select_from(self.table)
        if domain:
            stmt = stmt.where(self.table.c.domain == domain)
        with self.engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())

    def clear(self, domain: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(self.table.delete().where(self.table.c.domain == domain))


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere processes spawn and share nothing
    os.register_at_fork(after_in_child=_forget_engines_after_fork)


# --------------------------------------------------------------------------------------------
# Live backends


class LiveBackend(Protocol):
    """Where ``record`` and ``live`` modes get answers from: a real API, say."""

    name: str

    def call(self, tool: str, arguments: Mapping[str, Any]) -> Any: ...


class HttpBackend:
    """A live backend over HTTP: ``POST {base_url}/{tool}`` with the arguments as JSON.

    Pass ``transport=httpx.MockTransport(handler)`` to test without a network.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> Any:
        # Gymnasium deep-copies make() kwargs into the env spec; a client with open connections
        # and locks is shared, not copied.
        return self

    def __init__(
        self,
        base_url: str,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
        headers: Mapping[str, str] | None = None,
        name: str = "http",
    ):
        import httpx

        self.name = name
        self.client = httpx.Client(
            base_url=base_url, transport=transport, timeout=timeout, headers=dict(headers or {})
        )

    def call(self, tool: str, arguments: Mapping[str, Any]) -> Any:
        import httpx

        try:
            response = self.client.post(f"/{tool}", json=dict(arguments))
        except httpx.HTTPError as e:
            raise SandboxError(f"live backend {self.name!r} failed on {tool}: {e}") from e
        if response.status_code in (400, 404, 422):
            raise ToolError(
                response.json().get("error", response.text) if _is_json(response) else response.text
            )
        if response.status_code >= 300:
            raise SandboxError(
                f"live backend {self.name!r} answered HTTP {response.status_code} for {tool}: {response.text[:200]}"
            )
        return response.json()


def _is_json(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").startswith("application/json")


# --------------------------------------------------------------------------------------------
# The sandbox an env talks to


class Sandbox:
    """One domain's read-only data, its tool cache, and the mode that decides where answers come from."""

    _shared: ClassVar[dict[tuple[Any, ...], Sandbox]] = {}
    _recorded: ClassVar[set[tuple[str, str, str]]] = set()
    """(cache url, domain, data version) for which this process recorded live answers."""

    @classmethod
    def open(
        cls,
        domain: str,
        db_path: Path | None,
        *,
        mode: Mode = "replay",
        backend: LiveBackend | None = None,
        cache: ToolCache | None = None,
    ) -> Sandbox:
        """A sandbox shared by every env of this process with the same data and mode (so they share
        the in-memory result cache); one with its own backend or cache is never shared."""
        if backend is not None or cache is not None:
            return cls(domain, db_path, mode=mode, backend=backend, cache=cache)
        key = (os.getpid(), domain, str(db_path), mode, cache_url())
        if key not in cls._shared:
            cls._shared[key] = cls(domain, db_path, mode=mode)
        return cls._shared[key]

    def __init__(
        self,
        domain: str,
        db_path: Path | None,
        *,
        mode: Mode = "replay",
        backend: LiveBackend | None = None,
        cache: ToolCache | None = None,
        data_version: str | None = None,
    ):
        if mode not in MODES:
            raise SandboxError(f"unknown sandbox mode {mode!r}; expected one of {MODES}")
        if mode in ("live",) and backend is None:
            raise SandboxError(
                "mode='live' needs a backend (e.g. HttpBackend(url)); use mode='replay' offline"
            )
        self.domain = domain
        self.db_path = db_path
        self.mode = mode
        self.backend = backend
        self._cache = cache
        self.db: sqlite3.Connection | None = None
        self._engine: sa.Engine | None = None
        if db_path is not None:
            # Read-only: an env can never modify the sandbox data, whatever its tools do. A plain
            # sqlite3 connection (usable from any thread, as the SQLAlchemy one it replaces).
            uri = Path(db_path).resolve().as_uri() + "?mode=ro"
            try:
                self.db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            except sqlite3.OperationalError as e:
                raise SandboxError(f"cannot open the sandbox database {db_path}: {e}") from e
            self.db.row_factory = sqlite3.Row
        if data_version is None:
            data_version = self._read_version()
        self.data_version = data_version
        # Results live here as their JSON text (``json.dumps(result, default=str)``, which is also
        # the text an agent is shown) and every hit is parsed afresh: a caller that edits the value
        # it was given cannot change what the next env in this process sees. Beside the text, the
        # parser that reads it to json's value fastest (chosen once, when it is remembered).
        self._memory: dict[tuple[str, ...], tuple[str, Callable[[str], Any]]] = {}
        # Local tools skip the SQL cache in plain replay (the data answers faster); an explicit
        # cache, or recording, makes every cacheable call go through it.
        self.persist_all = cache is not None or mode != "replay"
        self._has_recordings: bool | None = None  # replay: does the cache hold answers? (lazy)
        self.stats = {"memory": 0, "cache": 0, "computed": 0, "backend": 0}

    @property
    def engine(self) -> sa.Engine | None:
        """A SQLAlchemy engine over the read-only domain DB (made on first access; the env's own
        queries use :attr:`db`)."""
        if self._engine is None and self.db is not None:
            import sqlalchemy as sa

            db = self.db
            self._engine = sa.create_engine(
                "sqlite+pysqlite://", creator=lambda: db, poolclass=sa.pool.StaticPool
            )
        return self._engine

    def _recall(self, key: tuple[str, ...]) -> Any | None:
        hit = self._recall_text(key)
        return None if hit is None else hit[0]

    def _recall_text(self, key: tuple[str, ...]) -> tuple[Any, str] | None:
        """A remembered result, parsed afresh, and its JSON text."""
        entry = self._memory.get(key)
        if entry is None:
            return None
        text, parse = entry
        return parse(text), text

    def _remember_text(self, key: tuple[str, ...], text: str) -> None:
        """Keep a result's JSON text in process memory; past MEMORY_ENTRIES the oldest half is
        dropped, so a long training run's distinct calls cannot grow the process without bound."""
        memory = self._memory
        if len(memory) >= MEMORY_ENTRIES:
            for old in list(itertools.islice(memory, MEMORY_ENTRIES // 2)):
                del memory[old]
        memory[key] = (text, fast_json_loader(text))

    def _remember(self, key: tuple[str, ...], value: Any) -> Any:
        """Keep a result in process memory; returns the caller's copy, never the stored one."""
        text = json.dumps(value, default=str)
        self._remember_text(key, text)
        return json.loads(text)

    def _read_version(self) -> str:
        if self.db is None:
            return "0"
        row = self.db.execute("SELECT value FROM meta WHERE key='data_version'").fetchone()
        return row[0] if row else "0"

    @property
    def cache(self) -> ToolCache:
        if self._cache is None:  # opened on first need: most local tools never touch it
            self._cache = ToolCache()
        return self._cache

    def key(self, call: ToolCall, scope: str = "") -> CacheKey:
        arguments = call.canonical_arguments()
        if scope:  # a task-dependent answer: the scope is part of what it depends on
            arguments = canonical_json({"arguments": call.arguments, "scope": scope})
        return CacheKey(self.domain, self.data_version, call.name, arguments)

    def call(
        self, tool: Tool, call: ToolCall, compute: Callable[[], Any] | None, scope: str = ""
    ) -> Any:
        """The result of a validated call, from the cache, the local data or the backend.

        ``compute`` runs the tool on local data; ``None`` means the tool exists only remotely.
        ``scope`` (see :attr:`Tool.scope`) keys answers that depend on more than the arguments.
        """
        return self.call_text(tool, call, compute, scope)[0]

    def call_text(
        self, tool: Tool, call: ToolCall, compute: Callable[[], Any] | None, scope: str = ""
    ) -> tuple[Any, str | None]:
        """:meth:`call`'s result and its JSON text (``None`` for a ``cache="none"`` tool, whose
        result is handed over as computed). The value is always the caller's own: parsed from
        the text, never an object another caller holds."""
        stats = self.stats
        if tool.cache == "none":
            if compute is None:
                raise SandboxError(
                    f"tool {tool.name!r} has neither a local implementation nor a cache"
                )
            stats["computed"] += 1
            return compute(), None
        mem_key = (tool.name, scope, call.canonical_arguments())
        if self.mode != "live":
            hit = self._recall_text(mem_key)
            if hit is not None:
                stats["memory"] += 1
                return hit
        persistent = (
            tool.cache == "persistent"
            or compute is None
            or self.persist_all
            or self._replays_recordings()
        )
        if self.mode != "live" and persistent:
            text = self.cache.get_text(self.key(call, scope))
            if text is not None:
                stats["cache"] += 1
                value = json.loads(text)
                if not text.isascii():  # stored by another writer: keep the text we render
                    text = json.dumps(value)
                self._remember_text(mem_key, text)
                return value, text
        if self.mode == "replay" or self.backend is None:
            if compute is None:
                raise ReplayMiss(
                    f"replay mode has no cached answer for {tool.name}({call.canonical_arguments()[:200]}) "
                    f"in domain {self.domain!r}, data version {self.data_version}; record it first with "
                    "mode='record' and a live backend"
                )
            stats["computed"] += 1
            result = compute()
        else:
            stats["backend"] += 1
            result = self.backend.call(tool.name, call.arguments)
            Sandbox._recorded.add((self.cache.url, self.domain, self.data_version))
        # Through JSON text, so a cached and a fresh answer are the same value.
        text = json.dumps(result, default=str)
        self._remember_text(mem_key, text)
        if persistent:
            self.cache.put_text(self.key(call, scope), text)
        return json.loads(text), text

    def warm(self) -> None:
        """Do now what the first cached call would do (open the tool cache and ask whether it
        holds recordings for this domain): a server calls it before its first client's step,
        which would otherwise hold every session's event loop for it."""
        self._replays_recordings()

    def _replays_recordings(self) -> bool:
        """In replay, recorded answers win over the local implementation (what record -> replay
        promises): once the cache holds answers for this domain and data version, every
        cacheable call looks there first. Checked once per sandbox, plus what this process
        recorded since."""
        if self.mode != "replay":
            return False
        if self._has_recordings is None:
            self._has_recordings = self.cache.has_entries(self.domain, self.data_version)
        return self._has_recordings or (
            (self.cache.url, self.domain, self.data_version) in Sandbox._recorded
        )

    def memo(
        self,
        name: str,
        arguments: Mapping[str, Any],
        compute: Callable[[], Any],
        scope: str = "",
    ) -> Any:
        """A local computation cached like a persistent tool call, under the same key.

        Memory first, then the ToolCache; never a backend, whatever the mode. A verifier uses it to
        reuse what the agent's identical tool call already paid for (an RTL simulation, say), and
        the tool's later call reuses the verifier's.
        """
        hit = self.lookup(name, arguments, scope)
        if hit is not None:
            return hit
        call = ToolCall(name, dict(arguments))
        self.stats["computed"] += 1
        text = json.dumps(compute(), default=str)
        self._remember_text((name, scope, call.canonical_arguments()), text)
        self.cache.put_text(self.key(call, scope), text)
        return json.loads(text)

    def lookup(self, name: str, arguments: Mapping[str, Any], scope: str = "") -> Any | None:
        """What :meth:`memo` would return without computing: memory, then the ToolCache, else
        ``None`` (a caller can then run only the misses, in parallel, say)."""
        call = ToolCall(name, dict(arguments))
        mem_key = (name, scope, call.canonical_arguments())
        hit = self._recall(mem_key)
        if hit is not None:
            self.stats["memory"] += 1
            return hit
        text = self.cache.get_text(self.key(call, scope))
        if text is not None:
            self.stats["cache"] += 1
            self._remember_text(mem_key, text)
            return json.loads(text)
        return None
