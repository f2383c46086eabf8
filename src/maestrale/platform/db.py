"""Database engines and the migration glue shared by every component (registry, training, monitor, tokens).

SQLite gets WAL, a busy timeout and `BEGIN IMMEDIATE` for write transactions so concurrent
writers queue instead of failing; PostgreSQL gets row locks from the statements themselves.

Engines are process-wide and fork-safe: a child process (multiprocessing with fork, gunicorn
`--preload`, Celery prefork) starts with fresh, empty pools instead of the parent's connections.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from maestrale.errors import BackendUnavailable, ConfigError

# Bumped by every new migration; lets start-up skip importing Alembic when the schema is current.
HEAD_REVISION = "0013"
# one Alembic history for the whole schema, whichever component owns a table
_MIGRATIONS = Path(__file__).parent.parent / "migrations"
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _after_fork_in_child() -> None:
    """Give every engine a fresh pool in a forked child, leaving the parent's connections alone.

    A pooled connection is a socket the parent still uses: were the child to check it out, both
    processes would talk over it (`can't change 'autocommit' now: connection in transaction status
    INTRANS`). `dispose(close=False)` drops the inherited pool without closing its connections
    (closing would end the parent's sessions too); psycopg does not close a connection it opened in
    another process when it is garbage-collected. See SQLAlchemy's "Using Connection Pools with
    Multiprocessing or os.fork()".
    """
    global _engines_lock
    # a thread of the parent may have held the lock at the fork: it will never release it here
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide when transactions begin (see _on_begin).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")  # durable across app crashes; WAL keeps it consistent
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads then writes gets SQLITE_BUSY without waiting under WAL;
        # writers declare themselves up front so the busy timeout applies.
        mode = "IMMEDIATE" if conn.get_execution_options().get("sqlite_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def get_engine(url: str) -> Engine:
    """Return a process-wide engine for `url` (engines own pools; one per URL is the norm)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        try:
            if url.startswith("sqlite"):
                path = url.split(":///", 1)[1] if ":///" in url else ""
                if path and path != ":memory:":
                    Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
                engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
                _sqlite_setup(engine)
            else:
                engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        except ModuleNotFoundError as exc:
            raise ConfigError(
                f"MAESTRALE_DATABASE_URL={url!r} needs the driver {exc.name!r}: "
                "pip install 'maestrale[postgres]' for PostgreSQL"
            ) from None
        except Exception as exc:
            raise ConfigError(
                f"MAESTRALE_DATABASE_URL={url!r} is not a usable SQLAlchemy URL ({exc}); "
                "e.g. postgresql+psycopg://user@host:5432/maestrale"
            ) from None
        _engines[url] = engine
        return engine


def writer(engine: Engine) -> Engine:
    """The same engine, flagged so SQLite begins its transactions with BEGIN IMMEDIATE."""
    return engine.execution_options(sqlite_write=True)


def current_revision(engine: Engine) -> str | None:
    """The schema's Alembic revision, or None for an empty database."""
    try:
        with engine.connect() as conn:
            return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        msg = str(exc).lower()
        if "no such table" in msg or "does not exist" in msg or "undefinedtable" in msg:
            return None
        raise BackendUnavailable(f"cannot reach the database {engine.url!r}: {exc.orig}") from None


def alembic_config(url: str) -> Any:
    """An Alembic Config pointing at the migrations shipped inside the package."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


@contextlib.contextmanager
def exclusive_lock(engine: Engine) -> Iterator[None]:
    # Many pods may start at once on an empty database: only one migrates, the others wait.
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(7318841)"))
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(7318841)"))
                conn.commit()
    elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
        import fcntl

        with open(f"{engine.url.database}.migrate.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
    else:
        yield


def upgrade(url: str, revision: str = "head") -> str:
    """Apply migrations up to `revision`; returns the revision now current.

    >>> upgrade("sqlite:////tmp/doc-registry.db") == HEAD_REVISION  # the newest migration
    True
    """
    engine = get_engine(url)
    with exclusive_lock(engine):
        if current_revision(engine) == HEAD_REVISION and revision == "head":
            return HEAD_REVISION
        from alembic import command

        command.upgrade(alembic_config(url), revision)
    return current_revision(engine) or ""


def ensure_schema(url: str, auto_upgrade: bool = True) -> Engine:
    """Return an engine whose schema is current, upgrading it when allowed."""
    engine = get_engine(url)
    rev = current_revision(engine)
    if rev == HEAD_REVISION:
        return engine
    if not auto_upgrade:
        raise ConfigError(
            f"the database schema is at revision {rev or 'none'} but this Maestrale needs {HEAD_REVISION}: "
            "run `maestrale db upgrade` (or set MAESTRALE_AUTO_UPGRADE=true)"
        )
    upgrade(url)
    return engine
