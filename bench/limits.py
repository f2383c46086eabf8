"""Peak memory of `maestrale server` and `maestrale serve` when a client sends a 150 MB body.

    .venv/bin/python bench/limits.py                  # limited (defaults) and unlimited, ~2 min
    .venv/bin/python bench/limits.py --limited-only   # the limits only, ~20 s
    .venv/bin/python bench/limits.py --size-mb 50

Each server runs as its own process, on SQLite and a local folder in a scratch directory, with its
settings in the environment (`MAESTRALE_MAX_BODY_MB`, `MAESTRALE_SERVE_MAX_BODY_MB`). One request
is sent per server process and way of sending: with a `Content-Length`, and chunked
(`Transfer-Encoding: chunked`, an httpx generator body). The bodies are well-formed, so an unlimited
server parses them whole: a prediction batch of ~500,000 records to
`POST /api/v1/monitoring/predictions` (with the admin token), and one V2 input of ~21 million FP64
values to `POST /v2/models/limits-bench/infer`. Around each request the server's peak RSS is reset
(`5` into /proc/PID/clear_refs) and read (`VmHWM` in /proc/PID/status): the growth is what the
request cost the server at its peak.

"limited" runs with the default limits (16 MiB and 32 MiB); "unlimited" sets both to 100,000 MiB,
which is how both servers behaved before the limits existed: the body is read and parsed whole,
then refused (413 for more than 50,000 records, 400 for more than 2,000,000 values). Linux only.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import httpx

MIB = 1 << 20
MODEL = "limits-bench"
UNLIMITED_MB = 100_000
DEFAULTS_MB = {"api": 16, "serve": 32}  # MAESTRALE_MAX_BODY_MB, MAESTRALE_SERVE_MAX_BODY_MB
SETTING = {"api": "MAESTRALE_MAX_BODY_MB", "serve": "MAESTRALE_SERVE_MAX_BODY_MB"}
PATHS = {"api": "/api/v1/monitoring/predictions", "serve": f"/v2/models/{MODEL}/infer"}
CHUNK = MIB


# -- bodies: well-formed JSON of an exact size, generated as it is sent -------------------------------
@dataclass(frozen=True)
class Body:
    """`head + item × n (comma-separated) + tail`, exactly `size` bytes, streamed in 1 MiB chunks."""

    head: bytes
    item: bytes
    n: int
    tail: bytes

    @property
    def size(self) -> int:
        return len(self.head) + self.n * (len(self.item) + 1) - 1 + len(self.tail)

    def chunks(self) -> Iterator[bytes]:
        per_chunk = max(1, CHUNK // (len(self.item) + 1))
        yield self.head
        for start in range(0, self.n, per_chunk):
            count = min(per_chunk, self.n - start)
            yield (b"," if start else b"") + b",".join([self.item] * count)
        yield self.tail


def ingest_body(size: int) -> Body:
    """A prediction batch of about `size` bytes (the same record, repeated: ingest never runs)."""
    record = json.dumps({
        "record_id": "p50/2012-06-01T18:00:00Z/2012-06-02T10:00:00Z", "entity": "p50",
        "issued_at": "2012-06-01T18:00:00Z", "target_time": "2012-06-02T10:00:00Z",
        "features": {"ghi": 712.5, "temp_air": 21.25, "wind_speed": 3.5}, "prediction": 38.125,
    }, separators=(",", ":")).encode()  # fmt: skip
    head, tail = b'{"model":"%s","version":1,"records":[' % MODEL.encode(), b"]}"
    return Body(head, record, max(1, (size - len(head) - len(tail)) // (len(record) + 1)), tail)


def infer_body(size: int) -> Body:
    """One V2 input `ghi` of about `size` bytes of FP64 values."""
    value = b"512.25"
    n = max(1, (size - 90) // (len(value) + 1))
    head = b'{"inputs":[{"name":"ghi","shape":[%d],"datatype":"FP64","data":[' % n
    return Body(head, value, n, b"]}]}")


# -- servers ----------------------------------------------------------------------------------------
def prepare(workdir: Path) -> dict[str, str]:
    """A registry in `workdir` with `limits-bench` v1 (a Ridge on `ghi`) as champion; its environment."""
    import numpy as np
    import pandas as pd
    from sklearn.linear_model import Ridge

    from maestrale import Registry

    env = {
        "MAESTRALE_HOME": str(workdir / "home"),
        "MAESTRALE_DATABASE_URL": f"sqlite:///{workdir}/registry.db",
        "MAESTRALE_STORAGE_URL": f"file://{workdir}/artifacts",
        "MAESTRALE_BROKER_URL": "memory://",
    }
    X = pd.DataFrame({"ghi": np.linspace(0, 1000, 50)})
    reg = Registry(database_url=env["MAESTRALE_DATABASE_URL"], storage_url=env["MAESTRALE_STORAGE_URL"])
    mv = reg.register(MODEL, Ridge().fit(X, X["ghi"] * 0.04), input_example=X.head())
    reg.set_alias(MODEL, "champion", mv.version)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A server started by `run_server`: its process, URL and admin token (REST API only)."""

    process: subprocess.Popen[bytes]
    url: str
    token: str | None = None

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {key} in /proc/{self.process.pid}/status (Linux only)")

    def reset_peak(self) -> int:
        """Reset the peak RSS to the current RSS (Linux ≥ 4.0) and return it, in bytes."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")
        return self._status("VmHWM")

    def peak(self) -> int:
        """Peak RSS since the last reset, in bytes."""
        return self._status("VmHWM")


@contextlib.contextmanager
def run_server(kind: str, env: dict[str, str], workdir: Path, limit_mb: float) -> Iterator[ServerProcess]:
    """`maestrale server` (kind "api") or `maestrale serve limits-bench@champion` ("serve") on a free port."""
    port = _free_port()
    exe = str(Path(sys.executable).parent / "maestrale")
    args = ["server"] if kind == "api" else ["serve", f"{MODEL}@champion", "--no-log", "--reload-poll", "0"]
    cmd = [exe, *args, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"]
    full_env = {**os.environ, **env, SETTING[kind]: str(limit_mb)}
    log_path = workdir / f"{kind}-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            cmd, env=full_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    server = ServerProcess(proc, f"http://127.0.0.1:{port}")
    try:
        health = "/healthz" if kind == "api" else "/v2/health/ready"
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url + health, timeout=1).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(cmd)} did not start: {log_path.read_text()[-2000:]}")
            time.sleep(0.1)
        if kind == "api":
            server.token = (Path(env["MAESTRALE_HOME"]) / "admin.token").read_text().strip()
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Result:
    """One request: what the server answered and what it cost the server at its peak."""

    server: str
    limit_mb: float
    sent: str  # "content-length" | "chunked"
    body_mb: float
    status: int
    peak_growth_mb: float
    seconds: float
    answer: str


def send(server: ServerProcess, kind: str, body: Body, chunked: bool) -> tuple[int, str, float]:
    """POST `body` to the server's route for `kind`: (status, first 200 characters, seconds)."""
    headers = {"content-type": "application/json"}
    if server.token:
        headers["authorization"] = f"Bearer {server.token}"
    if not chunked:  # a generator with an explicit Content-Length is sent as is, not chunked
        headers["content-length"] = str(body.size)
    start = time.perf_counter()
    r = httpx.post(server.url + PATHS[kind], content=body.chunks(), headers=headers, timeout=600)
    return r.status_code, r.text[:200], time.perf_counter() - start


def measure(
    kind: str, env: dict[str, str], workdir: Path, limit_mb: float, size: int, ways: Sequence[bool]
) -> list[Result]:
    """Start a server, send one body of `size` bytes per way (chunked or not), in order; one Result each.

    The peak is reset before each request; an unlimited server keeps some of what a request cost
    it, so `main` gives each request a fresh process (`ways` of one).
    """
    body = ingest_body(size) if kind == "api" else infer_body(size)
    results = []
    with run_server(kind, env, workdir, limit_mb) as server:
        send(server, kind, ingest_body(4096) if kind == "api" else infer_body(4096), False)  # warm up
        for chunked in ways:
            before = server.reset_peak()
            status, answer, seconds = send(server, kind, body, chunked)
            growth = server.peak() - before
            results.append(Result(
                "maestrale server" if kind == "api" else "maestrale serve", limit_mb,
                "chunked" if chunked else "content-length", round(body.size / MIB, 1), status,
                round(growth / MIB, 1), round(seconds, 2), answer,
            ))  # fmt: skip
    return results


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size-mb", type=float, default=150.0, help="body size in MB (10**6 bytes)")
    p.add_argument("--limited-only", action="store_true", help="skip the unlimited (old behaviour) runs")
    args = p.parse_args()
    size = int(args.size_mb * 1_000_000)
    results = []
    with tempfile.TemporaryDirectory(prefix="maestrale-limits-") as tmp:
        env = prepare(Path(tmp))
        for kind in ("api", "serve"):
            for limit in (DEFAULTS_MB[kind],) if args.limited_only else (DEFAULTS_MB[kind], UNLIMITED_MB):
                for chunked in (False, True):
                    [r] = measure(kind, env, Path(tmp), limit, size, [chunked])
                    print(
                        f"{r.server:<17} limit {r.limit_mb:>8g} MiB  {r.sent:<15} {r.body_mb:>6} MiB -> "
                        f"{r.status}  peak RSS +{r.peak_growth_mb:>7.1f} MiB  {r.seconds:>6.2f} s",
                        file=sys.stderr, flush=True,
                    )  # fmt: skip
                    results.append(r)
    print(json.dumps([asdict(r) for r in results]))


if __name__ == "__main__":
    main()
