"""Bearer tokens on the model server (real uvicorn on loopback; `maestrale serve` as a process).

Tokens from the registry's token store (401 without or with an unknown/revoked token, 403 for a
`read` token on inference, 200 for `predict` and above; health and /metrics open), from a token file
rotated the way Kubernetes updates a mounted Secret, the `auto` decision (off on loopback, on
beyond), start-up failures without a token source, the token's name on every logged prediction
batch, and the `predict` scope on the REST API's ingest routes.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from maestrale.bus.schemas import PredictionLogged
from maestrale.bus.topology import MONITOR
from maestrale.bus.transports.memory import MemoryTransport
from maestrale.cli.main import app as cli_app
from maestrale.errors import ConfigError
from maestrale.serving import create_app
from maestrale.serving.auth import resolve_auth
from maestrale.tokens import create_token, lookup_token, revoke_token
from tests.buscollect import Collector, collecting
from tests.conftest import ServerHandle
from tests.integration.conftest import wait_for
from tests.integration.test_serving import NAME, REF, World, make_world, per_feature, serving
from tests.services import free_port

INFER = f"/v2/models/{NAME}/infer"
PREDICT = f"/models/{NAME}/predict"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.mark.parametrize(
    ("mode", "host", "on"),
    [
        ("auto", "127.0.0.1", False), ("auto", "127.0.0.5", False), ("auto", "localhost", False),
        ("auto", "::1", False), ("auto", "[::1]", False), ("auto", "0.0.0.0", True), ("auto", "::", True),
        ("auto", "10.1.2.3", True), ("auto", "model-server.internal", True),
        ("on", "127.0.0.1", True), ("off", "0.0.0.0", False),
    ],
)  # fmt: skip
def test_auto_is_on_whenever_the_server_listens_beyond_loopback(mode: str, host: str, on: bool):
    assert resolve_auth(mode, host) is on


@dataclass
class Audited(World):
    """The world, plus a monitor's consumer in this process collecting the published batches."""

    collector: Collector | None = None


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Audited]:
    w = Audited(**vars(make_world(tmp_path)))
    bus = MemoryTransport(w.settings.bus_namespace)
    # with no monitor consuming in the process the server would store its batches straight into the
    # embedded monitor store, which keeps no `logged_by`: consume them as a monitor would
    with collecting(bus, MONITOR.name, ["maestrale.prediction.logged"]) as w.collector:
        yield w
    bus.delete()


def logged(world: Audited) -> list[PredictionLogged]:
    """The prediction batches the server published (the shutdown flushed its logger)."""
    assert world.collector is not None
    return world.collector.payloads()


def test_tokens_of_the_token_store(world: Audited):
    url_db = world.settings.database_url
    tokens = {scope: create_token(url_db, f"svc-{scope}", scope) for scope in ("read", "predict", "admin")}
    revoked = create_token(url_db, "old", "predict")
    revoke_token(url_db, lookup_token(url_db, revoked).id)
    body = per_feature(world.X.iloc[:6])
    records = {"records": world.X.iloc[:2].to_dict("records")}
    app = create_app(world.settings, [REF], auth=True, log_interval_s=0.1)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        for path in ("/v2/health/live", "/v2/health/ready", "/metrics"):  # probes and Prometheus
            assert c.get(path).status_code == 200, path
        r = c.post(INFER, json=body)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json() == {"error": r.json()["error"]} and "missing bearer token" in r.json()["error"]
        assert "--scope predict" in r.json()["error"]
        for bad in ("mst_" + secrets.token_urlsafe(32), revoked):
            r = c.post(INFER, json=body, headers=bearer(bad))
            assert r.status_code == 401 and "unknown or revoked token" in r.json()["error"]
        assert c.get(f"/v2/models/{NAME}").status_code == 401  # metadata needs a token too
        assert c.get(f"/v2/models/{NAME}", headers=bearer(tokens["read"])).status_code == 200
        for path, doc in ((INFER, body), (PREDICT, records)):
            r = c.post(path, json=doc, headers=bearer(tokens["read"]))
            assert r.status_code == 403, r.text
            assert r.json()["error"] == "token 'svc-read' has scope 'read'; this operation needs 'predict'"
            assert c.post(path, json=doc, headers=bearer(tokens["predict"])).status_code == 200
        assert c.post(INFER, json=body, headers=bearer(tokens["admin"])).status_code == 200
        assert c.get("/v2", headers=bearer(tokens["predict"])).status_code == 200  # predict ⊃ read
    batches = logged(world)  # the shutdown flushed the logger
    rows: Counter[str | None] = Counter()
    for batch in batches:
        rows[batch.logged_by] += len(batch.records)
    assert rows == {"svc-predict": 6 + 2, "svc-admin": 6}  # each batch names the token that sent it


def write_secret(folder: Path, text: str) -> Path:
    """Write `tokens` the way the kubelet updates a mounted Secret: a new folder, `..data` swapped."""
    folder.mkdir(exist_ok=True)
    version = folder / f"..{time.time_ns()}"
    version.mkdir()
    (version / "tokens").write_text(text)
    link = folder / "..data_tmp"
    link.symlink_to(version.name)
    link.rename(folder / "..data")  # atomic
    if not (folder / "tokens").is_symlink():
        (folder / "tokens").symlink_to("..data/tokens")
    return folder / "tokens"


def test_tokens_of_a_token_file_and_its_rotation(world: Audited, tmp_path: Path):
    first, second, third = ("mst_" + secrets.token_urlsafe(32) for _ in range(3))
    path = write_secret(tmp_path / "secret", f"# model-server tokens\n{first}  # pv-forecaster\n\n{second}\n")
    settings = world.settings.model_copy(update={"serve_token_file": path})
    body = per_feature(world.X.iloc[:4])
    app = create_app(settings, [REF], auth=True, log_interval_s=0.1)
    with serving(app) as url, httpx.Client(base_url=url) as c:
        assert c.post(INFER, json=body).status_code == 401
        assert c.post(INFER, json=body, headers=bearer(first)).status_code == 200
        assert c.post(INFER, json=body, headers=bearer(second)).status_code == 200
        assert c.get(f"/v2/models/{NAME}", headers=bearer(second)).status_code == 200  # predict ⊃ read
        write_secret(tmp_path / "secret", f"{third}  # rotated\n")
        wait_for(
            lambda: c.post(INFER, json=body, headers=bearer(first)).status_code == 401, 5, "the rotation"
        )
        assert c.post(INFER, json=body, headers=bearer(second)).status_code == 401
        assert c.post(INFER, json=body, headers=bearer(third)).status_code == 200
    unnamed = "token-file:" + hashlib.sha256(second.encode()).hexdigest()[:8]
    assert {b.logged_by for b in logged(world)} == {"pv-forecaster", unnamed, "rotated"}


def test_no_token_source_fails_at_start(world: World, tmp_path: Path):
    remote = world.settings.model_copy(update={"registry_url": "http://127.0.0.1:9"})
    with pytest.raises(ConfigError, match="no token source: this server reads the registry over REST"):
        create_app(remote, [REF], auth=True)
    cases = {
        "missing": (tmp_path / "nowhere", "cannot read the token file"),
        "empty": (tmp_path / "empty", "holds no token"),
        "short": (tmp_path / "short", "line 2 of the token file .* holds a token of 6 characters"),
    }
    (tmp_path / "empty").write_text("# nothing yet\n")
    (tmp_path / "short").write_text(f"{secrets.token_urlsafe(32)}\nsecret\n")
    for path, message in cases.values():
        settings = world.settings.model_copy(update={"serve_token_file": path})
        with pytest.raises(ConfigError, match=message):
            create_app(settings, [REF], auth=True, log_predictions=False)
    env = _env(world) | {"MAESTRALE_REGISTRY_URL": "http://127.0.0.1:9"}
    result = CliRunner().invoke(cli_app, ["serve", REF, "--auth", "on"], env=env)
    assert result.exit_code == 1 and "no token source" in result.output


def _env(world: World) -> dict[str, str]:
    s = world.settings
    return {
        "MAESTRALE_HOME": str(s.home), "MAESTRALE_DATABASE_URL": str(s.database_url),
        "MAESTRALE_STORAGE_URL": str(s.storage_url), "MAESTRALE_BROKER_URL": "memory://",
        "MAESTRALE_BUS_NAMESPACE": s.bus_namespace,
    }  # fmt: skip


def _serve(world: World, host: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`maestrale serve REF --host HOST` as a process; (process, loopback URL) once it is ready."""
    port = free_port()
    exe = str(Path(sys.executable).parent / "maestrale")
    cmd = [exe, "serve", REF, "--host", host, "--port", str(port), "--no-log", "--log-level", "warning"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=os.environ | _env(world), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"maestrale serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)


@pytest.mark.parametrize(
    ("host", "line"),
    [
        ("127.0.0.1", "auth off: anyone who reaches the port may call inference"),
        ("0.0.0.0", "auth on: bearer tokens from the token store in sqlite:///"),
    ],
)
def test_maestrale_serve_decides_auth_from_the_host_and_says_so(world: World, tmp_path: Path, host, line):
    token = create_token(world.settings.database_url, "pv-forecaster", "predict")
    proc, url = _serve(world, host, tmp_path / "serve.log")
    try:
        body = per_feature(world.X.iloc[:3])
        anonymous = httpx.post(url + INFER, json=body).status_code
        assert anonymous == (401 if host == "0.0.0.0" else 200)
        assert httpx.post(url + INFER, json=body, headers=bearer(token)).status_code == 200
    finally:
        proc.terminate()
        proc.wait(15)
    assert line in (tmp_path / "serve.log").read_text()


def test_predict_tokens_log_to_the_rest_api_but_change_nothing(server: ServerHandle):
    env = {"MAESTRALE_HOME": str(server.home), "COLUMNS": "200"}
    result = CliRunner().invoke(cli_app, ["token", "create", "pv-forecaster", "--scope", "predict"], env=env)
    assert result.exit_code == 0, result.output
    predict = result.stdout.strip()
    read = CliRunner().invoke(cli_app, ["token", "create", "dashboard"], env=env).stdout.strip()
    batch = {"model": "pv", "version": 1, "records": [
        {"record_id": "r1", "entity": "p50", "issued_at": "2012-06-01T18:00:00Z",
         "target_time": "2012-06-02T10:00:00Z", "prediction": 2.5}]}  # fmt: skip
    actuals = {"records": [{"entity": "p50", "target_time": "2012-06-02T10:00:00Z", "value": 2.4}]}
    with httpx.Client(base_url=server.url + "/api/v1") as c:
        assert c.post("/monitoring/predictions", json=batch, headers=bearer(predict)).json()["stored"] == 1
        assert c.post("/monitoring/actuals", json=actuals, headers=bearer(predict)).status_code == 200
        r = c.post("/monitoring/predictions", json=batch, headers=bearer(read))
        assert r.status_code == 403 and "needs 'predict'" in r.json()["error"]["message"]
        assert c.get("/models", headers=bearer(predict)).status_code == 200  # predict ⊃ read
        r = c.put("/models/pv/aliases/champion", json={"version": 1}, headers=bearer(predict))
        assert r.status_code == 403 and "needs 'write'" in r.json()["error"]["message"]
