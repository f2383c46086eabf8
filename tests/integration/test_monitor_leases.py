"""Several monitors share a fleet on PostgreSQL: each step of each model evaluated once, across `kill -9`.

The fleet is 20 models (one small regression registered under 20 names, one plant each) with a day of
hourly predictions and actuals. A first monitor process evaluates one model, then stops dead inside the
transaction of its second, holding that model's lease; a real `maestrale monitor run` started next
evaluates every other model and skips the leased one; `kill -9` of the first frees the lease and the
survivor evaluates it. A second day of data is then shared by two `maestrale monitor run` processes.
Every (model, step, kind, window) has exactly one evaluation row. The SQLite rule (one monitor ticks at
a time, under a file lock that dies with its holder) is checked with the leases themselves.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression
from sqlalchemy import func, select

from maestrale import Registry
from maestrale.monitoring.leases import FileLeases, RowLeases, open_leases
from maestrale.monitoring.schema import monitor_evaluations as ev
from maestrale.monitoring.schema import monitor_leases, monitor_state
from maestrale.monitoring.store import MonitorStore
from tests.conftest import fresh_pg_database
from tests.integration.conftest import wait_for

MODELS = [f"pv-m{i:02d}" for i in range(20)]
START = datetime(2024, 6, 1, tzinfo=UTC)
POLICY = """
name: leases
conditions:
  - {name: accuracy, metric: nmae, window: 1D, above: 0.5, min_samples: 12, actions: [breach]}
schedule: {every: 1D}
"""
# The first monitor: evaluates normally, and inside the transaction of its second evaluation (the
# model's clock is written last, just before the commit) says which model it holds and waits for the kill.
VICTIM = """
import sys, threading
from maestrale import Registry
from maestrale.monitoring.monitor import Monitor
from maestrale.monitoring.policy import load_policy
from maestrale.monitoring.store import MonitorStore

url, storage, policy = sys.argv[1:4]
store = MonitorStore(url)
set_state, held = store.set_state, []

def set_state_then_hang(conn, model, **values):
    held.append(model)
    print(f"holding {model}", flush=True)
    if len(held) == 2:
        threading.Event().wait()  # until kill -9, the evaluation's rows written, not committed
    set_state(conn, model, **values)

store.set_state = set_state_then_hang
monitor = Monitor(store, Registry(database_url=url, storage_url=storage), None, [load_policy(policy)])
while True:
    monitor.tick()
"""


def day_frame(day: int) -> pd.DataFrame:
    idx = pd.date_range(START + timedelta(days=day), periods=24, freq="h")
    ghi = np.clip(np.sin((np.arange(24) - 5) / 14 * np.pi), 0, None) * 800 + 5
    return pd.DataFrame({"ghi": ghi}, index=idx)


def log_day(store: MonitorStore, model: LinearRegression, day: int) -> None:
    X = day_frame(day)
    pred = model.predict(X)
    for i, name in enumerate(MODELS):
        plant = f"plant-{i:02d}"
        records = [
            {"record_id": f"{plant}-{t.isoformat()}", "entity": plant, "target_time": t.isoformat(),
             "issued_at": (t - timedelta(hours=12)).isoformat(), "features": {"ghi": float(g)},
             "prediction": float(p)}
            for t, g, p in zip(X.index, X["ghi"], pred, strict=True)
        ]  # fmt: skip
        assert store.log_predictions(name, 1, records).stored == 24
        store.log_actuals(
            [{"entity": plant, "target_time": t.isoformat(), "value": 0.004 * float(g) * (1 + 0.01 * i)}
             for t, g in zip(X.index, X["ghi"], strict=True)]
        )  # fmt: skip


class Lines:
    """The stdout lines of a child process, read by a thread (the test waits on them, never sleeps)."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc, self.lines = proc, []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip())

    def matching(self, prefix: str) -> list[str]:
        return [line for line in self.lines if line.startswith(prefix)]


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[str, str, MonitorStore]]:
    with fresh_pg_database("maestrale_leases") as url:
        storage = f"file://{tmp_path}/artifacts"
        registry = Registry(database_url=url, storage_url=storage)
        X = day_frame(0)
        model = LinearRegression().fit(X, 0.004 * X["ghi"])
        spec = {"capacity": 3.2, "features": ["ghi"], "target": "power_kw"}
        for name in MODELS:
            registry.register(name, model, metrics={"nmae": 0.02}, input_example=X.head(), spec=spec)
        store = MonitorStore(url)
        log_day(store, model, 0)
        yield url, storage, store
        store.engine.dispose()


def evaluated(store: MonitorStore, as_of: datetime) -> set[str]:
    with store.engine.connect() as conn:
        rows = conn.execute(select(monitor_state.c.model).where(monitor_state.c.as_of == as_of))
        return set(rows.scalars())


def evaluation_counts(store: MonitorStore) -> dict[tuple[str, datetime, str, str], int]:
    q = select(ev.c.model, ev.c.as_of, ev.c.kind, ev.c.window, func.count()).group_by(
        ev.c.model, ev.c.as_of, ev.c.kind, ev.c.window
    )
    with store.engine.connect() as conn:
        return {(m, a, k, w): n for m, a, k, w, n in conn.execute(q)}


def holders(store: MonitorStore) -> dict[str, str | None]:
    with store.engine.connect() as conn:
        return dict(conn.execute(select(monitor_leases.c.model, monitor_leases.c.holder)).all())


def monitor_run(url: str, storage: str, policy: Path, home: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "MAESTRALE_DATABASE_URL": url, "MAESTRALE_STORAGE_URL": storage,
           "MAESTRALE_BROKER_URL": "memory://", "MAESTRALE_HOME": str(home)}  # fmt: skip
    exe = Path(sys.executable).with_name("maestrale")
    return subprocess.Popen(
        [str(exe), "monitor", "run", "-p", str(policy), "--interval", "0.2", "--no-relay"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_two_monitors_share_a_fleet_and_survive_kill_9(fleet, tmp_path):
    url, storage, store = fleet
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    day1 = START + timedelta(hours=23)  # the clock: the latest target time with an actual
    victim = subprocess.Popen(
        [sys.executable, "-c", VICTIM, url, storage, str(policy)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    procs = [victim]
    try:
        out = Lines(victim)
        wait_for(lambda: len(out.matching("holding")) == 2 or victim.poll() is not None, 60, "2 leases")
        assert victim.poll() is None, "\n".join(out.lines)
        first, stuck = (line.split()[1] for line in out.matching("holding"))
        assert (first, stuck) == (MODELS[0], MODELS[1])  # models are taken in name order
        survivor = monitor_run(url, storage, policy, tmp_path / "home-a")
        procs.append(survivor)
        log_a = Lines(survivor)
        # every model but the one whose lease the hung monitor holds: the survivor skips that one
        others = set(MODELS) - {stuck}
        wait_for(lambda: evaluated(store, day1) == others, 60, f"{len(others)} models evaluated")
        assert stuck not in evaluated(store, day1)
        victim.send_signal(signal.SIGKILL)  # mid-evaluation: rows written, clock not committed
        victim.wait(10)
        wait_for(lambda: evaluated(store, day1) == set(MODELS), 60, "the killed monitor's model")
        lease = holders(store)
        assert lease[first] == f"{socket.gethostname()}:{victim.pid}"  # evaluated once, by the first
        assert lease[stuck] == f"{socket.gethostname()}:{survivor.pid}"  # its half-done work left nothing
        wait_for(lambda: bool(log_a.matching(f"{stuck}:1 at ")), 30, f"`monitor run` printing {stuck}")

        # day 2: two `maestrale monitor run` share the fleet
        log_day(store, LinearRegression().fit(day_frame(0), 0.004 * day_frame(0)["ghi"]), 1)
        second = monitor_run(url, storage, policy, tmp_path / "home-b")
        procs.append(second)
        day2 = day1 + timedelta(days=1)
        wait_for(lambda: evaluated(store, day2) == set(MODELS), 60, "day 2 evaluated")
        assert survivor.poll() is None and second.poll() is None
    finally:
        for proc in procs:
            stop(proc)
    counts = evaluation_counts(store)
    steps = {(model, as_of) for model, as_of, _kind, _window in counts}
    assert steps == {(m, day) for m in MODELS for day in (day1, day2)}  # none missing
    assert set(counts.values()) == {1}  # none doubled


def test_a_held_lease_is_skipped_not_waited_for(fleet):
    _url, _storage, store = fleet
    a, b = RowLeases(store.engine, "a:1"), RowLeases(store.engine, "b:2")
    assert isinstance(open_leases(store.engine), RowLeases)
    with a.hold("pv-m00") as held_a:
        assert held_a
        with b.hold("pv-m00") as held_b, b.hold("pv-m01") as other:
            assert not held_b and other  # another model's lease is free
    with b.hold("pv-m00") as held_b:
        assert held_b
    assert holders(store)["pv-m00"] == "b:2"


def test_sqlite_monitors_take_turns_under_a_file_lock(tmp_path):
    store = MonitorStore(f"sqlite:///{tmp_path}/m.db")
    leases = open_leases(store.engine)
    assert isinstance(leases, FileLeases) and leases.path == f"{tmp_path}/m.db.monitor.lock"
    with leases.fleet() as first, FileLeases(f"{tmp_path}/m.db").fleet() as second:
        assert first and not second  # a second monitor skips its tick while the first ticks
    with FileLeases(f"{tmp_path}/m.db").fleet() as later:
        assert later
    # a holder killed with -9 leaves the lock to the kernel, which drops it with the process
    code = (
        f"import fcntl, os; fh = open({leases.path!r}, 'a+'); fcntl.flock(fh, fcntl.LOCK_EX); "
        "os.kill(os.getpid(), 9)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -signal.SIGKILL
    with leases.fleet() as after_kill:
        assert after_kill
