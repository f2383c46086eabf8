"""Real blob-storage backends for tests: Azurite (npm) and a moto S3 server, each on a free loopback port.

Register the fixtures once, in ``tests/conftest.py``::

    pytest_plugins = ["tests.services"]

Fixtures
--------
``azurite`` (session)
    An ``azurite-blob`` process from ``node_modules`` (``npm ci`` installs it), in-memory, on a free port.
``azure_container`` (function)
    A fresh container in that Azurite; yields a :class:`BlobLocation` (``abfs://<container>`` + options).
``s3_server`` (session)
    A ``moto.server.ThreadedMotoServer`` on a free port.
``s3_bucket`` (function)
    A fresh bucket on that server; yields a :class:`BlobLocation` (``s3://<bucket>`` + options).

Nothing is written to ``os.environ``: every client gets explicit credentials and endpoints, so
``fsspec.core.url_to_fs(location.url, **location.storage_options)`` is all a test needs.

Heavy imports (azure, moto, boto3, adlfs) happen inside the fixtures, so loading this plugin costs
nothing for tests that do not use them.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob import BlobServiceClient

__all__ = [
    "AZURITE_ACCOUNT_KEY",
    "AZURITE_ACCOUNT_NAME",
    "AzuriteService",
    "BlobLocation",
    "S3Service",
    "azure_container",
    "azurite",
    "azurite_binary",
    "azurite_connection_string",
    "free_port",
    "low_retry_azure_filesystem",
    "run_azurite",
    "s3_bucket",
    "s3_server",
    "wait_for_port",
]

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"

#: The well-known development account of the Azure Storage emulators (public, documented by Microsoft).
AZURITE_ACCOUNT_NAME = "devstoreaccount1"
AZURITE_ACCOUNT_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

S3_REGION = "eu-west-1"
S3_KEY = "testing"
S3_SECRET = "testing"  # moto accepts any credentials

_INSTALL_HINT = "run `make test` (it runs npm install) or `npm ci` in the repository root"


# --------------------------------------------------------------------------------------------- helpers


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port that is free on `host` right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def wait_for_port(
    host: str, port: int, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until `host:port` accepts TCP connections.

    Raises ``TimeoutError`` after `timeout` seconds, or ``RuntimeError`` at once if `process` exits.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_answers(host, port):
            return
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with code {process.returncode} before {host}:{port} answered")
        time.sleep(0.1)
    raise TimeoutError(f"{host}:{port} did not answer within {timeout:g} s")


def _stop_process(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Terminate `process` (SIGTERM), then kill it if it lingers."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout)


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return text[-limit:].strip()


def _unique_name(prefix: str = "test") -> str:
    """A name valid both as an Azure container and an S3 bucket: lowercase, digits, hyphen, 3-63 chars."""
    return f"{prefix}-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class BlobLocation:
    """A container/bucket URL and the fsspec `storage_options` that reach it."""

    url: str
    name: str
    storage_options: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        """`url` joined with `parts` by slashes."""
        return "/".join([self.url.rstrip("/"), *(p.strip("/") for p in parts)])


# --------------------------------------------------------------------------------------------- Azurite


def azurite_connection_string(host: str, port: int) -> str:
    """The connection string of the well-known emulator account at ``http://host:port``."""
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={AZURITE_ACCOUNT_NAME};"
        f"AccountKey={AZURITE_ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{AZURITE_ACCOUNT_NAME};"
    )


@dataclass(frozen=True)
class AzuriteService:
    """A running Azurite blob service."""

    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    account_name: str = AZURITE_ACCOUNT_NAME
    account_key: str = AZURITE_ACCOUNT_KEY

    @property
    def blob_endpoint(self) -> str:
        """``http://127.0.0.1:<port>/devstoreaccount1`` (path-style, as Azurite expects)."""
        return f"http://{self.host}:{self.port}/{self.account_name}"

    @property
    def connection_string(self) -> str:
        """A connection string whose ``BlobEndpoint`` points at this Azurite."""
        return azurite_connection_string(self.host, self.port)

    def storage_options(self) -> dict[str, Any]:
        """The adlfs kwargs for this Azurite (a new dict each call).

        adlfs honours ``BlobEndpoint`` of a connection string; ``account_name`` + ``account_key`` +
        ``account_host`` does not work with Azurite because adlfs forces ``https://``.
        """
        return {"connection_string": self.connection_string}

    def blob_service_client(self, **kwargs: Any) -> BlobServiceClient:
        """A synchronous Azure SDK client for setup/teardown (independent of adlfs)."""
        from azure.storage.blob import BlobServiceClient

        return BlobServiceClient.from_connection_string(self.connection_string, **kwargs)

    def stop(self) -> None:
        """Terminate the Azurite process (idempotent)."""
        _stop_process(self.process)


def azurite_binary(root: Path = REPO_ROOT) -> Path:
    """The ``azurite-blob`` launcher installed by npm under `root`; fails the test if absent."""
    name = "azurite-blob.cmd" if sys.platform == "win32" else "azurite-blob"
    binary = root / "node_modules" / ".bin" / name
    if not binary.exists():
        pytest.fail(f"Azurite is not installed ({binary} is missing): {_INSTALL_HINT}", pytrace=False)
    if shutil.which("node") is None:
        pytest.fail("`node` is not on PATH: Azurite needs Node.js >= 20", pytrace=False)
    return binary


def _is_azurite(host: str, port: int) -> bool:
    """True if an Azurite blob service answers HTTP on `host:port` (not just anything listening)."""
    conn = http.client.HTTPConnection(host, port, timeout=1)
    try:
        conn.request("GET", "/")
        return conn.getresponse().getheader("Server", "").startswith("Azurite-Blob")
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def _wait_for_azurite(host: str, port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    """Block until `process` serves Azurite on `host:port`; raise if it exits or `timeout` passes.

    An HTTP probe, not a TCP connect: if another program grabbed the port first, the connect would
    succeed while our Azurite dies of EADDRINUSE.
    """
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"azurite exited with code {process.returncode} before serving {host}:{port}")
        if _is_azurite(host, port):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"azurite did not serve {host}:{port} within {timeout:g} s")
        time.sleep(0.1)


@contextmanager
def run_azurite(workdir: Path, startup_timeout: float = 30.0, attempts: int = 3) -> Iterator[AzuriteService]:
    """Start an in-memory Azurite blob service on a free loopback port; stop it on exit.

    `workdir` is Azurite's working directory and receives its stdout/stderr log (with
    ``--inMemoryPersistence`` Azurite writes no data files, and it refuses ``--location``).
    A port grabbed between our probe and Azurite's bind (EADDRINUSE) is retried with another
    port, up to `attempts` times.
    """
    binary = azurite_binary()
    workdir.mkdir(parents=True, exist_ok=True)
    last_error = ""
    for attempt in range(attempts):
        port = free_port()
        log_path = workdir / f"azurite-{port}.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    str(binary),
                    "--blobHost",
                    LOOPBACK,
                    "--blobPort",
                    str(port),
                    "--inMemoryPersistence",
                    "--skipApiVersionCheck",
                    "--disableTelemetry",
                    "--silent",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
            )
        try:
            _wait_for_azurite(LOOPBACK, port, startup_timeout, process)
        except (RuntimeError, TimeoutError) as exc:
            _stop_process(process)
            output = _tail(log_path)
            last_error = f"{exc}\n--- azurite output ({log_path}) ---\n{output or '(empty)'}"
            if "EADDRINUSE" in output and attempt + 1 < attempts:
                continue
            break
        service = AzuriteService(process=process, host=LOOPBACK, port=port, log_path=log_path)
        try:
            yield service
        finally:
            service.stop()
        return
    pytest.fail(f"Azurite did not start: {last_error}", pytrace=False)


def low_retry_azure_filesystem(
    storage_options: dict[str, Any],
    *,
    retry_total: int = 1,
    initial_backoff: float = 0.5,
    increment_base: float = 1.0,
    connection_timeout: float = 2.0,
    read_timeout: float = 5.0,
) -> AzureBlobFileSystem:
    """An adlfs filesystem whose Azure SDK client gives up in seconds instead of ~80 s.

    adlfs (<= 2026.5) builds its ``BlobServiceClient`` without forwarding any retry or transport
    kwargs (fsspec/adlfs#502), and its own ``connection_timeout``/``read_timeout`` options only reach
    upload/download calls, not ``ls``/``info``/``exists``. So we build the filesystem (outside the
    fsspec instance cache, to not leak into other users of the same options) and swap in a client
    configured with the Azure SDK's public kwargs. All adlfs operations, including file objects from
    ``fs.open``, go through ``fs.service_client``. Jitter is disabled so the bound is deterministic:
    a call makes ``retry_total + 1`` attempts, sleeping ``initial_backoff + increment_base ** n``
    between them; each attempt is capped by the connect/read timeouts.
    """
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob.aio import BlobServiceClient

    fs = AzureBlobFileSystem(**storage_options, skip_instance_cache=True)
    client_kwargs: dict[str, Any] = {
        "retry_total": retry_total,
        "initial_backoff": initial_backoff,
        "increment_base": increment_base,
        "random_jitter_range": 0,
        "retry_to_secondary": False,
        "connection_timeout": connection_timeout,
        "read_timeout": read_timeout,
    }
    if fs.connection_string:
        client = BlobServiceClient.from_connection_string(fs.connection_string, **client_kwargs)
    else:
        old = fs.service_client
        client = BlobServiceClient(account_url=old.url, credential=old.credential, **client_kwargs)
    fs.service_client = client  # the unused original never opened a session, nothing to close
    return fs


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzuriteService]:
    """An in-memory Azurite blob service for the whole session, on a free loopback port."""
    with run_azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@pytest.fixture
def azure_container(azurite: AzuriteService) -> Iterator[BlobLocation]:
    """A fresh, empty container in Azurite: ``abfs://<container>`` + adlfs storage options."""
    name = _unique_name()
    with azurite.blob_service_client() as client:
        client.create_container(name)
        try:
            yield BlobLocation(url=f"abfs://{name}", name=name, storage_options=azurite.storage_options())
        finally:
            client.delete_container(name)


# --------------------------------------------------------------------------------------------- moto S3


@dataclass(frozen=True)
class S3Service:
    """A running moto S3 server."""

    server: Any  # moto.server.ThreadedMotoServer
    endpoint_url: str
    region_name: str = S3_REGION
    key: str = S3_KEY
    secret: str = S3_SECRET

    def storage_options(self) -> dict[str, Any]:
        """The s3fs kwargs for this server (a new dict each call)."""
        return {
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"endpoint_url": self.endpoint_url, "region_name": self.region_name},
        }

    def boto3_client(self) -> Any:
        """A synchronous boto3 S3 client for setup/teardown (independent of s3fs)."""
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region_name,
            aws_access_key_id=self.key,
            aws_secret_access_key=self.secret,
        )


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Service]:
    """A moto S3 server in a thread of this process, on a free loopback port (bound with port 0: no race)."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        wait_for_port(host, port, timeout=10)
        yield S3Service(server=server, endpoint_url=f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Service) -> Iterator[BlobLocation]:
    """A fresh, empty bucket on the moto server: ``s3://<bucket>`` + s3fs storage options."""
    name = _unique_name()
    client = s3_server.boto3_client()
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": s3_server.region_name})
    try:
        yield BlobLocation(url=f"s3://{name}", name=name, storage_options=s3_server.storage_options())
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
            keys = [{"Key": obj["Key"]} for obj in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=name, Delete={"Objects": keys})
        client.delete_bucket(Bucket=name)
        client.close()
