"""CSV and Parquet by local path or any fsspec URL (`abfs://`, `s3://`, `gs://`, `https://`, `memory://`).

>>> from maestrale.training.spec import UriSource
>>> load_file(UriSource(uri="/data/pv.csv")).version.mtime  # doctest: +SKIP
'2024-05-01T10:00:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from maestrale.errors import BackendUnavailable, InvalidInput
from maestrale.training.fleet import mask_secrets
from maestrale.training.sources import (
    DataVersion,
    LoadedData,
    expand_env,
    read_table,
    redact,
    sha256_bytes,
    storage_options,
    table_format,
)
from maestrale.training.spec import UriSource


def _stamp(value: Any) -> str | None:
    """fsspec backends report modification times as epoch floats or datetimes; record ISO 8601."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    return str(value)


def load_file(source: UriSource) -> LoadedData:
    """Read the file once: its bytes are hashed for the fingerprint and parsed from memory."""
    import fsspec

    uri = expand_env(source.uri, "data.uri")
    # messages show the URI as the spec wrote it: an expanded ${VAR} may be a secret
    shown = mask_secrets(source.uri)
    fmt = table_format(uri, source.format, shown)
    options = storage_options(source.storage_options)
    label = (source.uri if "${" in source.uri else uri).rsplit("/", 1)[-1]
    try:
        fs, path = fsspec.core.url_to_fs(uri, **options)
        info = fs.info(path)
        data = fs.cat_file(path)
    except FileNotFoundError:
        raise InvalidInput(
            f"data file {shown!r} not found: check data.uri (relative paths start at the spec's folder)"
        ) from None
    except (ImportError, ValueError) as exc:
        raise InvalidInput(f"cannot open {shown!r}: {redact(str(exc), uri, source.uri)}") from None
    except OSError as exc:
        raise BackendUnavailable(f"cannot read {shown!r}: {redact(str(exc), uri, source.uri)}") from None
    etag = info.get("ETag") or info.get("etag")
    mtime = info.get("mtime") or info.get("LastModified") or info.get("last_modified") or info.get("updated")
    frame = read_table(data, fmt, label, source.read_options)
    version = DataVersion(
        kind="file",
        uri=mask_secrets(source.uri if "${" in source.uri else uri),
        fingerprint=sha256_bytes(data),
        size=len(data),
        etag=str(etag).strip('"') if etag else None,
        mtime=_stamp(mtime),
        rows=len(frame),
    )
    return LoadedData(frame=frame, version=version, label=label)
