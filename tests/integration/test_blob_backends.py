"""fsspec against real blob protocols: adlfs on Azurite and s3fs on a moto S3 server.

These pin down what the artifact store relies on: write/list/read/ranged read/delete through
``fsspec.core.url_to_fs(url, **storage_options)``, the ``abfs``/``az``/``abfss`` aliases, the fsspec
instance cache, and that an unreachable Azure endpoint fails in seconds with the low-retry client.
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import pytest

from tests.services import BlobLocation, azurite_connection_string, low_retry_azure_filesystem, run_azurite

SMALL = b"maestrale artifact \x00\x01\x02"
#: Larger than adlfs' 4 MiB block and s3fs' 5 MiB part: exercises staged-block / multipart uploads.
BIG = random.Random(20240611).randbytes(9 * 2**20 + 123)
#: Upper bound for an operation against a dead endpoint with the low-retry client.
FAIL_FAST_S = 15.0


def _roundtrip(url: str, storage_options: dict[str, Any]) -> None:
    """Write, list, read back, range-read and delete two objects under `url`/prefix."""
    fs, root = fsspec.core.url_to_fs(url, **storage_options)
    small_url, small, big = f"{url}/prefix/small.bin", f"{root}/prefix/small.bin", f"{root}/prefix/big.bin"

    with fsspec.open(small_url, "wb", **storage_options) as f:
        f.write(SMALL)
    with fs.open(big, "wb") as f:
        f.write(BIG)

    assert sorted(fs.ls(f"{root}/prefix", detail=False)) == [big, small]
    assert fs.find(root) == [big, small]
    assert fs.info(big)["size"] == len(BIG)
    assert fs.exists(small)

    with fsspec.open(small_url, "rb", **storage_options) as f:
        assert f.read() == SMALL
    assert fs.cat_file(big) == BIG
    assert fs.cat_file(big, start=4 * 2**20 - 5, end=4 * 2**20 + 5) == BIG[4 * 2**20 - 5 : 4 * 2**20 + 5]

    fs.rm(small)
    assert not fs.exists(small)
    fs.rm(f"{root}/prefix", recursive=True)
    fs.invalidate_cache()
    assert fs.find(root) == []
    with pytest.raises(FileNotFoundError):
        fs.cat_file(big)


# --------------------------------------------------------------------------------------------- Azurite


@pytest.mark.azurite
@pytest.mark.parametrize("protocol", ["abfs", "az", "abfss"])
def test_azurite_roundtrip(azure_container: BlobLocation, protocol: str) -> None:
    url = azure_container.url.replace("abfs://", f"{protocol}://", 1)
    _roundtrip(url, azure_container.storage_options)


@pytest.mark.azurite
def test_azurite_protocol_aliases_share_one_cached_filesystem(azure_container: BlobLocation) -> None:
    opts = azure_container.storage_options
    fs_abfs, path_abfs = fsspec.core.url_to_fs(f"{azure_container.url}/p", **opts)
    fs_az, path_az = fsspec.core.url_to_fs(f"az://{azure_container.name}/p", **opts)
    assert fs_abfs is fs_az  # same class and kwargs -> same fsspec cache entry
    assert path_abfs == path_az == f"{azure_container.name}/p"
    fresh, _ = fsspec.core.url_to_fs(azure_container.url, skip_instance_cache=True, **opts)
    assert fresh is not fs_abfs


@pytest.mark.azurite
def test_azurite_low_retry_filesystem_works_when_up(azure_container: BlobLocation) -> None:
    fs = low_retry_azure_filesystem(azure_container.storage_options)
    fs.pipe_file(f"{azure_container.name}/x.bin", SMALL)
    assert fs.cat_file(f"{azure_container.name}/x.bin") == SMALL
    with fs.open(f"{azure_container.name}/y.bin", "wb") as f:
        f.write(SMALL)
    assert fs.ls(azure_container.name, detail=False) == [
        f"{azure_container.name}/{n}" for n in ("x.bin", "y.bin")
    ]


def _failing_ops(fs: Any, container: str) -> dict[str, Callable[[], object]]:
    blob = f"{container}/gone.bin"

    def write_file_object() -> None:
        with fs.open(f"{container}/file-object.bin", "wb") as f:
            f.write(SMALL)

    return {
        "pipe_file": lambda: fs.pipe_file(blob, SMALL),
        "cat_file": lambda: fs.cat_file(blob),
        "ls": lambda: fs.ls(container),
        "info": lambda: fs.info(blob),
        "exists": lambda: fs.exists(blob),
        "open-write": write_file_object,
    }


def _assert_each_fails_fast(ops: dict[str, Callable[[], object]], bound: float) -> dict[str, float]:
    from azure.core.exceptions import AzureError

    timings: dict[str, float] = {}
    for name, op in ops.items():
        start = time.monotonic()
        with pytest.raises((AzureError, OSError, RuntimeError)):
            op()
        timings[name] = round(time.monotonic() - start, 2)
    assert all(t < bound for t in timings.values()), f"too slow against a dead endpoint: {timings}"
    return timings


@pytest.mark.azurite
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_stopped_azurite_fails_fast(tmp_path: Path) -> None:
    """Connection refused: the default adlfs client needs ~80 s per call here; ours < 15 s."""
    with run_azurite(tmp_path / "azurite") as service:
        fs = low_retry_azure_filesystem(service.storage_options())
        fs.mkdir("doomed")
        fs.pipe_file("doomed/alive.bin", SMALL)
        assert fs.cat_file("doomed/alive.bin") == SMALL
        service.stop()
        timings = _assert_each_fails_fast(_failing_ops(fs, "doomed"), FAIL_FAST_S)
    print(f"stopped Azurite, seconds per operation: {timings}")


@pytest.fixture
def blackhole_port() -> Iterator[int]:
    """A loopback port that accepts TCP connections (kernel backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield int(sock.getsockname()[1])


@pytest.mark.azurite
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_unresponsive_azure_endpoint_fails_fast(blackhole_port: int) -> None:
    """A hung server (accepts, never replies): bounded by read_timeout x attempts, not the SDK's 60 s x 4."""
    options = {"connection_string": azurite_connection_string("127.0.0.1", blackhole_port)}
    fs = low_retry_azure_filesystem(options, read_timeout=2)
    ops = _failing_ops(fs, "hung")
    timings = _assert_each_fails_fast({k: ops[k] for k in ("pipe_file", "ls", "exists")}, FAIL_FAST_S)
    print(f"unresponsive endpoint, seconds per operation: {timings}")


# --------------------------------------------------------------------------------------------- moto S3


@pytest.mark.s3
def test_s3_roundtrip(s3_bucket: BlobLocation) -> None:
    _roundtrip(s3_bucket.url, s3_bucket.storage_options)


@pytest.mark.s3
def test_s3_bucket_is_isolated_per_test(s3_bucket: BlobLocation) -> None:
    fs, root = fsspec.core.url_to_fs(s3_bucket.url, **s3_bucket.storage_options)
    assert root == s3_bucket.name
    assert fs.ls(root) == []
