"""Closed-loop HTTP/1.1 load generator for ``bench/serving.py``: C keep-alive connections, one request
in flight on each, for a fixed time; every request's latency recorded.

Two clients, same protocol (one pre-encoded POST, JSON body, ``Content-Length`` framing):

* ``raw`` (default): asyncio streams writing the pre-encoded request bytes and reading the status
  line, headers and ``Content-Length`` (or chunked) body. A few tens of microseconds of client CPU
  per request, so on a 2-core machine the server, not the client, is what is measured.
* ``httpx``: ``httpx.AsyncClient`` with a keep-alive pool of C connections (context: httpx spends
  several times more CPU per request than the servers measured here, so it caps their req/s).

Stdlib (+ httpx for the second client) only.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class LoadResult:
    requests: int = 0
    errors: int = 0
    latencies_s: list[float] = field(default_factory=list)
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    error_samples: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        ms = sorted(x * 1000.0 for x in self.latencies_s)

        def pct(p: float) -> float | None:
            if not ms:
                return None
            return round(ms[min(len(ms) - 1, round(p / 100.0 * (len(ms) - 1)))], 3)

        return {
            "requests": self.requests,
            "errors": self.errors,
            "rps": round(self.requests / self.wall_s, 1) if self.wall_s else None,
            "p50_ms": pct(50),
            "p90_ms": pct(90),
            "p99_ms": pct(99),
            "max_ms": round(ms[-1], 3) if ms else None,
            "mean_ms": round(statistics.fmean(ms), 3) if ms else None,
            "wall_s": round(self.wall_s, 2),
            "client_cpu_pct": round(100.0 * self.client_cpu_s / self.wall_s, 1) if self.wall_s else None,
            "error_samples": self.error_samples[:3],
        }


def encode_request(host: str, port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("server closed the connection")
    status = int(status_line.split(b" ", 2)[1])
    length, chunked, close = None, False, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
        elif name == b"connection" and b"close" in value.lower():
            close = True
    if chunked:
        parts = []
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                await reader.readline()
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif length is not None:
        body = await reader.readexactly(length)
    else:
        body = await reader.read()
        close = True
    if close:
        raise _Closed(status, body)
    return status, body


class _Closed(Exception):
    def __init__(self, status: int, body: bytes) -> None:
        super().__init__(status)
        self.status, self.body = status, body


def _record(res: Any, latency_s: float, status: int, body: bytes, expect: Any) -> None:
    """Count one answered request in `res` (closed and open loop alike), keeping 3 error samples."""
    res.latencies_s.append(latency_s)
    res.requests += 1
    if not _ok(status, body, expect):
        res.errors += 1
        if len(res.error_samples) < 3:
            res.error_samples.append(f"{status}: {body[:200]!r}")


def _ok(status: int, body: bytes, expect: bytes) -> bool:
    return status == 200 and expect in body


async def _raw_worker(
    host: str, port: int, request: bytes, expect: bytes, deadline: float, res: LoadResult
) -> None:
    reader = writer = None
    while time.perf_counter() < deadline:
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            assert reader is not None
            t0 = time.perf_counter()
            writer.write(request)
            try:
                status, body = await _read_response(reader)
            except _Closed as closed:
                status, body = closed.status, closed.body
                writer.close()
                writer = None
            _record(res, time.perf_counter() - t0, status, body, expect)
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
            res.requests += 1
            res.errors += 1
            if len(res.error_samples) < 3:
                res.error_samples.append(f"{type(exc).__name__}: {exc}")
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def _httpx_worker(
    client: Any, url: str, body: bytes, expect: bytes, deadline: float, res: LoadResult
) -> None:
    import httpx

    headers = {"content-type": "application/json"}
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        try:
            r = await client.post(url, content=body, headers=headers)
            res.latencies_s.append(time.perf_counter() - t0)
            res.requests += 1
            if not _ok(r.status_code, r.content, expect):
                res.errors += 1
                if len(res.error_samples) < 3:
                    res.error_samples.append(f"{r.status_code}: {r.content[:200]!r}")
        except httpx.HTTPError as exc:
            res.requests += 1
            res.errors += 1
            if len(res.error_samples) < 3:
                res.error_samples.append(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(0.01)


async def _run(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    duration: float,
    concurrency: int,
    client: str,
    expect: bytes,
) -> LoadResult:
    res = LoadResult()
    cpu0, t0 = time.process_time(), time.perf_counter()
    deadline = t0 + duration
    if client == "raw":
        request = encode_request(host, port, path, body)
        await asyncio.gather(
            *(_raw_worker(host, port, request, expect, deadline, res) for _ in range(concurrency))
        )
    else:
        import httpx

        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:
            url = f"http://{host}:{port}{path}"
            await asyncio.gather(
                *(_httpx_worker(http, url, body, expect, deadline, res) for _ in range(concurrency))
            )
    res.wall_s = time.perf_counter() - t0
    res.client_cpu_s = time.process_time() - cpu0
    return res


def run_load(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    duration: float,
    concurrency: int,
    client: str = "raw",
    expect: bytes = b'"predict"',
) -> LoadResult:
    """Send ``body`` to ``path`` from ``concurrency`` connections for ``duration`` seconds.

    A response counts as an error unless it is a 200 whose body contains ``expect``.
    """
    return asyncio.run(
        _run(
            host,
            port,
            path,
            body,
            duration=duration,
            concurrency=concurrency,
            client=client,
            expect=expect,
        )
    )


async def _open_loop(
    host: str, port: int, request: bytes, expect: bytes, rate: float, duration: float, res: LoadResult
) -> None:
    """Poisson arrivals at `rate`/s; latency from each request's scheduled time (no coordinated omission)."""
    import random

    rng = random.Random(0)
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []

    async def one(scheduled: float) -> None:
        conn = idle.pop() if idle else await asyncio.open_connection(host, port)
        try:
            conn[1].write(request)
            status, body = await _read_response(conn[0])
            idle.append(conn)
        except (
            OSError,
            ConnectionError,
            asyncio.IncompleteReadError,
            ValueError,
            IndexError,
            _Closed,
        ) as exc:
            conn[1].close()
            status, body = 0, repr(exc).encode()
        _record(res, time.perf_counter() - scheduled, status, body, expect)

    start = time.perf_counter()
    scheduled, tasks = start, []
    while scheduled < start + duration:
        scheduled += rng.expovariate(rate)
        delay = scheduled - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(scheduled)))
    await asyncio.gather(*tasks)
    for _, writer in idle:
        writer.close()


def run_open_loop(
    host: str,
    port: int,
    path: str,
    body: bytes,
    *,
    rate: float,
    duration: float,
    expect: bytes = b'"predict"',
) -> LoadResult:
    """Send ``body`` at Poisson arrivals of mean ``rate`` per second for ``duration`` s (open loop):
    a slow answer does not slow the arrivals, so p99 shows the queueing a real rate meets."""

    async def go() -> LoadResult:
        res = LoadResult()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await _open_loop(host, port, encode_request(host, port, path, body), expect, rate, duration, res)
        res.wall_s, res.client_cpu_s = time.perf_counter() - t0, time.process_time() - cpu0
        return res

    return asyncio.run(go())
