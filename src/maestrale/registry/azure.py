"""Azure Blob through adlfs, with the Azure SDK's retries bounded.

adlfs builds its `BlobServiceClient` without forwarding retry or timeout settings (fsspec/adlfs#502),
so an unreachable account makes every call retry for ~80 s. We swap in a client built with the
SDK's public options; every adlfs operation, `fs.open` included, goes through `fs.service_client`.
"""

from __future__ import annotations

from typing import Any

# Keys of MAESTRALE_STORAGE_OPTIONS that configure the SDK client rather than adlfs itself.
CLIENT_KEYS = ("retry_total", "connection_timeout", "read_timeout", "initial_backoff", "increment_base")
DEFAULTS = {
    "retry_total": 3,
    "connection_timeout": 10,
    "read_timeout": 120,
    "initial_backoff": 1,
    "increment_base": 2,
}


def azure_filesystem(storage_options: dict[str, Any]) -> Any:
    """An `AzureBlobFileSystem` whose client fails in seconds, not minutes, when Azure is unreachable.

    >>> fs = azure_filesystem({"connection_string": "...", "retry_total": 1})  # doctest: +SKIP
    """
    from adlfs import AzureBlobFileSystem
    from azure.storage.blob.aio import BlobServiceClient

    opts = dict(storage_options)
    client_kwargs = {k: opts.pop(k, DEFAULTS[k]) for k in CLIENT_KEYS}
    client_kwargs.update(random_jitter_range=0, retry_to_secondary=False)
    # outside fsspec's instance cache: the swapped client must not leak into other users of these options
    fs = AzureBlobFileSystem(**opts, skip_instance_cache=True)
    if fs.connection_string:
        client = BlobServiceClient.from_connection_string(fs.connection_string, **client_kwargs)
    else:
        old = fs.service_client
        client = BlobServiceClient(account_url=old.url, credential=old.credential, **client_kwargs)
    fs.service_client = client
    return fs
