"""Shared fixtures: registries on every backend we support, each isolated per test run.

PostgreSQL gets a fresh database per session; blob tests get unique containers/buckets; the
remote registry is a real `maestrale server` app behind uvicorn on a free loopback port.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Outside a project folder the embedded home is the per-user data directory (maestrale.config.find_home):
# a test run, and every process it starts, gets one of its own, never the developer's real registry.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="maestrale-tests-xdg-")
atexit.register(shutil.rmtree, os.environ["XDG_DATA_HOME"], ignore_errors=True)

pytest_plugins = ["tests.services"]

PG_ADMIN_URL = os.environ.get("MAESTRALE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def fresh_pg_database(prefix: str = "maestrale_test") -> Iterator[str]:
    """A new, empty PostgreSQL database on the machine's server; dropped (forcibly) on exit."""
    import sqlalchemy as sa

    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({exc.orig}); start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        from maestrale.platform.db import _engines

        engine = _engines.pop(url, None)
        if engine is not None:
            engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, dropped at the end."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def fresh_pg() -> Iterator[str]:
    """A new PostgreSQL database for one test (for tests that read whole tables, e.g. the outbox)."""
    with fresh_pg_database() as url:
        yield url


@pytest.fixture
def sqlite_registry(tmp_path: Path):
    """An embedded registry on SQLite and a local folder."""
    from maestrale import Registry

    return Registry(
        database_url=f"sqlite:///{tmp_path}/registry.db", storage_url=f"file://{tmp_path}/artifacts"
    )


@pytest.fixture
def pg_registry(pg_url: str, tmp_path: Path):
    """An embedded registry on PostgreSQL and a local folder."""
    from maestrale import Registry

    return Registry(database_url=pg_url, storage_url=f"file://{tmp_path}/artifacts")


class ServerHandle:
    """A running `maestrale server` app (uvicorn in a thread)."""

    def __init__(self, home: Path, url: str, server: object, thread: threading.Thread) -> None:
        self.home, self.url, self.server, self.thread = home, url, server, thread

    @property
    def admin_token(self) -> str:
        return (self.home / "admin.token").read_text().strip()

    def stop(self) -> None:
        self.server.should_exit = True  # type: ignore[attr-defined]
        self.thread.join(10)


def start_server(home: Path, **settings: object) -> ServerHandle:
    """Start the API on a free port with settings rooted at `home`."""
    import httpx
    import uvicorn

    from maestrale.api.app import create_app
    from maestrale.config import load_settings
    from tests.services import free_port

    app = create_app(load_settings(home=home, **settings))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return ServerHandle(home, url, server, thread)
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"maestrale server did not start on {url}")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A real REST server on SQLite + a local folder."""
    handle = start_server(tmp_path / "server-home")
    yield handle
    handle.stop()


@pytest.fixture
def remote_registry(server: ServerHandle):
    """A `Registry("http://…", token=admin)` talking to the `server` fixture."""
    from maestrale import Registry

    return Registry(server.url, token=server.admin_token)


@pytest.fixture(params=["sqlite", "postgres", "remote"])
def registry(request: pytest.FixtureRequest):
    """The same registry API on each deployment: embedded SQLite, embedded PostgreSQL, remote REST."""
    return request.getfixturevalue(
        {"sqlite": "sqlite_registry", "postgres": "pg_registry", "remote": "remote_registry"}[request.param]
    )


@pytest.fixture(scope="session")
def regression_data():
    """A small deterministic regression problem: 200 rows × 20 features as a DataFrame."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(200, 20)), columns=[f"x{i}" for i in range(20)])
    y = X.to_numpy() @ rng.normal(size=20) + rng.normal(scale=0.1, size=200)
    return X, y
