"""`maestrale serve --workers N` as real processes on RabbitMQ: the workers share the HTTP and gRPC ports
(SO_REUSEPORT) and answer from distinct pids, each logs its predictions and hot-reloads a promotion on
its own, a killed worker is restarted, SIGTERM stops them all; a worker that keeps dying stops the
supervisor with exit code 1.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from maestrale.bus.events import parse_event
from maestrale.bus.relay import OutboxRelay
from maestrale.bus.topology import MONITOR
from maestrale.bus.transport import get_transport
from maestrale.serving.workers import Supervisor
from tests.integration.conftest import wait_for
from tests.integration.test_serving import NAME, REF, World, make_world, output, per_feature
from tests.services import free_port

PROCESS_INFO = re.compile(r'maestrale_serving_process_info\{pid="(\d+)",worker="(\d+)"\} 1\.0')


@dataclass
class Running:
    """A `maestrale serve --workers 2` process and what reaches it."""

    world: World
    proc: subprocess.Popen[str]
    url: str
    grpc_port: int
    lines: list[str]


def scrape_each(url: str, workers: int = 2, timeout: float = 30.0) -> dict[int, str]:
    """/metrics of every worker, by pid: a new connection per scrape, until `workers` pids answered."""
    seen: dict[int, str] = {}
    deadline = time.monotonic() + timeout
    while len(seen) < workers:
        assert time.monotonic() < deadline, f"only pids {sorted(seen)} answered in {timeout}s"
        try:
            text = httpx.get(f"{url}/metrics", timeout=2).text  # httpx.get: a connection of its own
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        match = PROCESS_INFO.search(text)
        assert match, text
        seen[int(match.group(1))] = text
    return seen


def children(pid: int) -> set[int]:
    """The pids whose parent is `pid` (from /proc)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.add(int(entry))
    return out


def listeners(port: int, pids: set[int]) -> dict[int, int]:
    """How many listening TCP sockets on `port` each of `pids` holds (from /proc/net/tcp and fds)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    counts = {}
    for pid in pids:
        links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
        counts[pid] = sum(link in {f"socket:[{i}]" for i in inodes} for link in links)
    return counts


@pytest.fixture
def running(tmp_path: Path, amqp_url: str) -> Iterator[Running]:
    """`maestrale serve pv-serve@champion --workers 2 --grpc-port G --reload-poll 0` on RabbitMQ."""
    world = make_world(tmp_path, amqp_url)
    s = world.settings
    port, gport = free_port(), free_port()
    env = {
        **os.environ, "MAESTRALE_HOME": str(s.home), "MAESTRALE_DATABASE_URL": s.database_url,
        "MAESTRALE_STORAGE_URL": s.storage_url, "MAESTRALE_BROKER_URL": amqp_url,
        "MAESTRALE_BUS_NAMESPACE": s.bus_namespace,
    }  # fmt: skip
    cmd = [
        sys.executable, "-m", "maestrale.cli.main", "serve", REF, "--port", str(port), "--workers", "2",
        "--grpc-port", str(gport), "--reload-poll", "0", "--log-level", "warning",
    ]  # fmt: skip
    bus = get_transport(amqp_url, s.bus_namespace)
    bus.declare(MONITOR.name, ["maestrale.prediction.logged"])  # before any prediction is published
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout or []), daemon=True)
    reader.start()
    url = f"http://127.0.0.1:{port}"
    try:
        yield Running(world, proc, url, gport, lines)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        bus.delete()
        bus.close()


def test_two_workers_share_both_ports_and_each_logs_and_reloads(running: Running):
    r, world = running, running.world
    workers = scrape_each(r.url)
    assert set(workers) == children(r.proc.pid), r.lines  # the workers are the supervisor's children
    assert {PROCESS_INFO.search(t).group(2) for t in workers.values()} == {"0", "1"}  # type: ignore[union-attr]
    wait_for(lambda: set(listeners(r.grpc_port, set(workers)).values()) == {1}, 30, "gRPC in each worker")
    assert listeners(int(r.url.rsplit(":", 1)[1]), set(workers)) == dict.fromkeys(workers, 1)

    # every worker answers inference and logs what it answered, on its own logger
    X = world.X.iloc[:3]
    for i in range(30):
        body = per_feature(X, parameters={"entity": f"plant-{i}"})
        np.testing.assert_allclose(output(httpx.post(f"{r.url}/v2/models/{NAME}/infer", json=body)),
                                   world.v1.predict(X))  # fmt: skip
    logged = re.compile(r"^maestrale_serving_predictions_logged_total (\S+)$", re.M)

    def logged_by_worker() -> dict[int, float]:
        return {pid: float(logged.search(t).group(1)) for pid, t in scrape_each(r.url).items()}  # type: ignore[union-attr]

    wait_for(lambda: sum(logged_by_worker().values()) == 90, 30, "90 records logged")
    assert all(n > 0 for n in logged_by_worker().values())  # both workers took requests and logged them
    bus = get_transport(world.settings.broker_url, world.settings.bus_namespace)
    entities: list[str] = []
    stop = threading.Event()

    def receive(delivery) -> None:
        entities.extend(rec.entity for rec in parse_event(delivery.body).payload.records)

    consumer = threading.Thread(
        target=bus.consume,
        args=(MONITOR.name, receive),
        kwargs={"handler": "test", "stop": stop},
        daemon=True,
    )
    consumer.start()
    wait_for(lambda: len(entities) >= 90, 30, "90 records on the monitor's queue")
    stop.set()
    consumer.join(10)
    assert sorted(set(entities)) == sorted(f"plant-{i}" for i in range(30)) and len(entities) == 90

    # a promotion reaches every worker over the bus (the alias poll is off)
    v2, model2 = world.register(2.0)
    OutboxRelay(world.registry, bus).run_once()
    version = re.compile(rf'^maestrale_serving_model_version\{{model="{NAME}"\}} (\S+)$', re.M)
    wait_for(
        lambda: all(version.search(t).group(1) == f"{v2}.0" for t in scrape_each(r.url).values()),  # type: ignore[union-attr]
        30, "the promotion in every worker",
    )  # fmt: skip
    for _ in range(10):
        np.testing.assert_allclose(output(httpx.post(f"{r.url}/v2/models/{NAME}/infer", json=per_feature(X))),
                                   model2.predict(X))  # fmt: skip
    bus.close()


def test_a_killed_worker_is_restarted_and_sigterm_stops_all(running: Running):
    r = running
    first = set(scrape_each(r.url))
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    wait_for(lambda: len(children(r.proc.pid) - first) == 1, 30, "a new worker")
    now = scrape_each(r.url)
    assert len(now) == 2 and victim not in now and (first - {victim}) <= set(now), (first, set(now))
    r.proc.send_signal(signal.SIGTERM)
    r.proc.wait(60)
    assert r.proc.returncode == 0, "".join(r.lines)
    for pid in now:  # every worker is gone, not orphaned
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    text = "".join(r.lines)
    assert re.search(
        rf"worker \d: pid {victim} died after [\d.]+ s \(killed by SIGKILL\); restarting", text
    ), text
    assert "2 workers share the port(s)" in text and "stopping" in text


def test_workers_die_with_a_supervisor_killed_by_sigkill(running: Running):
    r = running
    workers = set(scrape_each(r.url))
    r.proc.kill()  # no handler runs: the workers' PR_SET_PDEATHSIG stops them
    r.proc.wait(10)

    def gone(pid: int) -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"
        except OSError:
            return True

    wait_for(lambda: all(gone(pid) for pid in workers), 30, "the orphaned workers to exit")
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{r.url}/v2/health/live", timeout=2)


def test_a_worker_that_keeps_dying_stops_the_supervisor():
    lines: list[str] = []
    sup = Supervisor(
        2, dict(os.environ), command=[sys.executable, "-c", "import sys, os; sys.exit(3)"],
        backoff=(0.05,), max_failures=3, say=lines.append,
    )  # fmt: skip
    start = time.monotonic()
    assert sup.run() == 1
    assert time.monotonic() - start < 20
    assert sum("exit code 3); restarting in 0.05 s" in line for line in lines) >= 2, lines
    assert re.search(r"error: worker \d died 3 times in a row, each within 30 s of starting \(last: pid \d+, "
                     r"exit code 3\); its log above says why", lines[-1]), lines  # fmt: skip
    assert sup.pids() == []


def test_a_worker_that_lived_long_enough_starts_a_new_count():
    lines: list[str] = []
    sup = Supervisor(
        1, dict(os.environ), command=[sys.executable, "-c", "import time; time.sleep(0.3)"], backoff=(0.05,),
        max_failures=2, stable_s=0.2, say=lines.append,
    )  # fmt: skip
    timer = threading.Timer(3.0, lambda: os.kill(os.getpid(), signal.SIGTERM))
    timer.start()  # the supervisor's handler takes it: run() returns
    try:
        assert sup.run() == 0
    finally:
        timer.cancel()
    assert sum("restarting" in line for line in lines) >= 3, lines  # never given up on
    assert not any(line.startswith("error:") for line in lines)
