"""Hot reload of the V2 server: a promotion reaches it over the bus (in-process and RabbitMQ) while
clients hammer it, and no request fails; the alias poll converges without events; pinned versions
stay; a version that cannot load leaves the old one serving. Also `maestrale serve` end to end.
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from maestrale.bus.relay import OutboxRelay
from maestrale.bus.transport import get_transport
from maestrale.errors import NotFound
from maestrale.serving import create_app
from tests.integration.conftest import wait_for
from tests.integration.test_serving import NAME, REF, World, make_world, output, per_feature, serving

CLIENTS = 3  # concurrent clients: enough to have requests in flight at the swap, light on 2 cores


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path)
    yield w
    get_transport("memory://", w.settings.bus_namespace).delete()


@pytest.fixture(params=["memory", "rabbitmq"])
def broker_world(request, tmp_path: Path):
    """A world whose bus is the in-process transport or the real RabbitMQ, in a fresh namespace."""
    url = "memory://" if request.param == "memory" else request.getfixturevalue("amqp_url")
    w = make_world(tmp_path, url)
    bus = get_transport(url, w.settings.bus_namespace)
    yield w, bus
    bus.delete()
    bus.close()


def _hammer(url: str, body: dict, stop: threading.Event, results: list, i: int) -> None:
    with httpx.Client(base_url=url, timeout=10) as c:
        while not stop.is_set():
            start = time.monotonic()
            try:
                r = c.post(f"/v2/models/{NAME}/infer", json=body)
                ok = r.status_code == 200
                version = r.json()["model_version"] if ok else r.text
                first = r.json()["outputs"][0]["data"][0] if ok else None
                results.append((i, start, time.monotonic(), r.status_code, version, first))
            except Exception as exc:  # a refused or reset connection is a failed request too
                results.append((i, start, time.monotonic(), None, repr(exc), None))


def test_hot_reload_under_load_never_fails_a_request(broker_world):
    world, bus = broker_world
    X = world.X.iloc[:24]
    body = per_feature(X)
    app = create_app(world.settings, [REF], reload_poll_s=None)  # bus events only: this measures them
    queue = app.state.watcher.queue
    relay = OutboxRelay(world.registry, bus)
    results: list = []
    stop = threading.Event()
    with serving(app) as url:
        relay.run_once()  # v1's own events: the server already serves v1, a no-op
        clients = [
            threading.Thread(target=_hammer, args=(url, body, stop, results, i), daemon=True)
            for i in range(CLIENTS)
        ]
        for t in clients:
            t.start()
        time.sleep(1.0)
        v2, model2 = world.register(1.5)
        promoted = time.monotonic()
        assert relay.run_once() >= 2  # model.registered, alias_set, promoted
        wait_for(lambda: any(r[4] == str(v2) for r in results), 10, "a response from version 2")
        time.sleep(1.0)
        stop.set()
        for t in clients:
            t.join(15)
        metrics = httpx.get(f"{url}/metrics").text
    failed = [r for r in results if r[3] != 200]
    assert not failed, failed[:5]
    for i in range(CLIENTS):  # each client sees 1…1 then 2…2: the swap never goes back
        versions = [r[4] for r in sorted(results, key=lambda r: r[1]) if r[0] == i]
        assert versions == sorted(versions) and set(versions) == {"1", "2"}, versions
    first_v2 = min(r[2] for r in results if r[4] == "2")
    swap_s = first_v2 - promoted
    assert swap_s < 5
    in_flight = sum(1 for r in results if r[1] < first_v2 and r[2] > promoted)
    expected = {"1": world.v1.predict(X)[0], "2": model2.predict(X)[0]}
    assert all(r[5] == pytest.approx(expected[r[4]]) for r in results)
    assert f'maestrale_serving_model_version{{model="{NAME}"}} 2.0' in metrics
    assert f'maestrale_serving_reloads_total{{model="{NAME}"}} 1.0' in metrics
    # the server's own queue went with it
    with pytest.raises(NotFound):
        bus.dead_letters(queue)
    ms = sorted((r[2] - r[1]) * 1000 for r in results)
    rate = len(results) / (max(r[2] for r in results) - min(r[1] for r in results))
    print(
        f"\n[{type(bus).__name__}] {len(results)} requests ({CLIENTS} clients, {rate:.0f} req/s), 0 failed; "
        f"swap {swap_s * 1000:.0f} ms after the promotion was relayed, {in_flight} requests in flight "
        f"meanwhile; latency p50 {statistics.median(ms):.1f} ms, p99 {ms[int(len(ms) * 0.99)]:.1f} ms"
    )


def test_the_alias_poll_converges_without_events_and_pinned_versions_stay(world: World):
    pinned_v1, _ = world.register(1.0, name="pv-pinned")
    app = create_app(
        world.settings, [REF, f"pv-pinned:{pinned_v1}"], reload_poll_s=0.2, log_predictions=False
    )
    with serving(app) as url, httpx.Client(base_url=url) as c:
        v2, model2 = world.register(2.0)  # no relay: no event ever reaches the server
        world.register(2.0, name="pv-pinned")
        wait_for(lambda: c.get(f"/v2/models/{NAME}").json()["versions"] == [str(v2)], 10, "the poll to swap")
        np.testing.assert_array_equal(
            output(c.post(f"/v2/models/{NAME}/infer", json=per_feature(world.X.iloc[:3]))),
            model2.predict(world.X.iloc[:3]),
        )
        time.sleep(0.5)  # a few more polls
        assert c.get("/v2/models/pv-pinned").json()["versions"] == ["1"]
        # a version whose artifact is gone cannot load: counted, and v2 keeps serving
        v3, _ = world.register(3.0, champion=False)
        key = world.registry.get_version(f"{NAME}:{v3}").artifact.key
        (world.tmp / "artifacts" / key).unlink()
        world.registry.set_alias(NAME, "champion", v3)
        fails = f'maestrale_serving_reload_failures_total{{model="{NAME}"}}'
        wait_for(lambda: f"{fails} 0.0" not in c.get("/metrics").text, 10, "the failed reload to be counted")
        assert c.get(f"/v2/models/{NAME}").json()["versions"] == [str(v2)]
        assert c.post(f"/v2/models/{NAME}/infer", json=per_feature(world.X.iloc[:3])).status_code == 200


@pytest.mark.slow
def test_maestrale_serve_prints_what_it_serves_and_answers(world: World):
    from tests.services import free_port

    port = free_port()
    s = world.settings
    env = {
        **os.environ, "MAESTRALE_HOME": str(s.home), "MAESTRALE_DATABASE_URL": s.database_url,
        "MAESTRALE_STORAGE_URL": s.storage_url,
    }  # fmt: skip
    cmd = [sys.executable, "-m", "maestrale.cli.main", "serve", REF, "--port", str(port), "--no-log"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stdout.read() if proc.stdout else ""
            )
            time.sleep(0.2)
        r = httpx.post(f"{url}/v2/models/{NAME}/infer", json=per_feature(world.X.iloc[:2]))
        np.testing.assert_array_equal(output(r), world.v1.predict(world.X.iloc[:2]))
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    sha = world.registry.get_version(f"{NAME}:1").artifact.sha256[:12]
    assert re.search(rf"{NAME}\s+│?\s*@champion\s+│?\s*1\s+│?\s*{sha}", out), out
    assert f"http://127.0.0.1:{port}/v2" in out
    assert proc.returncode == 0, out
