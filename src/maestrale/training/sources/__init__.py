"""Data sources of a training spec: each returns the frame once, with a `DataVersion` saying what was read.

>>> from maestrale.training.spec import DatasetSource
>>> loaded = load_data(DatasetSource(dataset="nrel_system50"))
>>> loaded.version.kind, loaded.version.fingerprint[:7]
('dataset', 'sha256:')

| spec `data:`                         | module     | fingerprint of         | also recorded           |
|--------------------------------------|------------|------------------------|-------------------------|
| `{uri: path or fsspec URL, format?}` | `files`    | the file's bytes       | URI, etag / mtime, size |
| `{dvc: {repo, path, rev}}`           | `dvc`      | the bytes at the rev   | rev asked, commit read  |
| `{sql: {url, query}}`                | `sql`      | the result frame       | URL (password masked)   |
| `{dataset: nrel_system50, freq}`     | `datasets` | the frame              | maestrale version       |
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.training.spec import DataSource, TrainWindow

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class DataVersion(BaseModel):
    """Which data a model was trained on, precisely enough to read it again and notice a change."""

    kind: Literal["file", "dvc", "sql", "dataset"]
    uri: str
    fingerprint: str
    size: int | None = None
    etag: str | None = None
    mtime: str | None = None
    rev: str | None = None
    commit: str | None = None
    query: str | None = None
    rows: int | None = None

    @property
    def version(self) -> str | None:
        """What the registry records as `data_version`: the DVC commit, else the file's etag.

        >>> DataVersion(kind="dvc", uri="dvc:///r", fingerprint="sha256:0", commit="9dd5bf6").version
        '9dd5bf6'
        """
        if self.commit:
            return self.commit
        return f"etag:{self.etag}" if self.etag else None

    def lineage(self) -> dict[str, Any]:
        """The registry's lineage entry: relation `training_data`, the URI, and this record as detail."""
        return {"relation": "training_data", "target": self.uri, "detail": self.model_dump(exclude_none=True)}


@dataclass(frozen=True, slots=True)
class LoadedData:
    """A source's frame (not to be modified in place: it may be shared) and its version."""

    frame: pd.DataFrame
    version: DataVersion
    label: str  # short name for messages, e.g. "data.csv"


def sha256_bytes(data: bytes) -> str:
    """`sha256:<hex>` of raw bytes."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def expand_env(value: str, where: str) -> str:
    """Replace `${VAR}` by the environment variable, or say which one is missing and where it is used.

    The expanded value never goes into a message (it may hold a secret): loaders show the value as
    the spec wrote it, and pass library errors through `redact`. Which variables a spec from REST or
    the bus may use at all is `source_policy`'s rule, checked before any loader runs.

    >>> expand_env("${PV_DB_URL}", "data.sql.url")  # doctest: +SKIP
    'postgresql+psycopg://pv@db/pv'
    """

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in os.environ:
            raise InvalidInput(f"environment variable {name} (used in {where}) is not set: export {name}=…")
        return os.environ[name]

    return _ENV_REF.sub(sub, value)


def redact(text: str, expanded: str, written: str) -> str:
    """`text` (a library's error) with the expanded form of a `${VAR}` value put back as written.

    >>> redact("no such file: /srv/secret-name/x.csv", "/srv/secret-name/x.csv", "${DATA}/x.csv")
    'no such file: ${DATA}/x.csv'
    """
    if expanded == written or not expanded:
        return text
    return text.replace(expanded, written)


def storage_options(spec_options: dict[str, Any]) -> dict[str, Any]:
    """fsspec options: the spec's (with `${VAR}` expanded), else `MAESTRALE_STORAGE_OPTIONS` (JSON)."""
    if spec_options:
        return {
            k: expand_env(v, f"data.storage_options.{k}") if isinstance(v, str) else v
            for k, v in spec_options.items()
        }
    env = os.environ.get("MAESTRALE_STORAGE_OPTIONS")
    if not env:
        return {}
    try:
        options = json.loads(env)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f'MAESTRALE_STORAGE_OPTIONS is not valid JSON ({exc.msg}): e.g. \'{{"account_name": "acme"}}\''
        ) from None
    if not isinstance(options, dict):
        raise InvalidInput("MAESTRALE_STORAGE_OPTIONS must be a JSON object, e.g. '{\"anon\": true}'")
    return options


def read_table(data: bytes, fmt: str, label: str, read_options: dict[str, Any]) -> pd.DataFrame:
    """Parse CSV or Parquet bytes (already in memory: the bytes are hashed and parsed from one read).

    `label` (the file name as the spec wrote it) names the file in messages and gives the compression.
    """
    import io

    import pandas as pd

    compression = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zst": "zstd", ".zip": "zip"}
    try:
        if fmt == "parquet":
            return pd.read_parquet(io.BytesIO(data), **read_options)
        options = {"compression": next((c for s, c in compression.items() if label.endswith(s)), None)}
        return pd.read_csv(io.BytesIO(data), **{**options, **read_options})
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise InvalidInput(f"cannot read {label} as {fmt}: {exc}; set data.format or fix the file") from None


def table_format(name: str, declared: str | None, shown: str | None = None) -> str:
    """`csv` or `parquet`, from the spec or the file name; messages show `shown` (as written) if given."""
    if declared:
        return declared
    base = re.sub(r"\.(gz|bz2|xz|zst|zip)$", "", name.lower())
    if base.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if base.endswith((".csv", ".txt", ".tsv")):
        return "csv"
    raise InvalidInput(
        f"cannot tell the format of {shown or name!r} from its name: add `format: csv` or `format: parquet`"
    )


def load_data(source: DataSource, window: TrainWindow | None = None) -> LoadedData:
    """Read a spec's data once. `window` bounds SQL queries that use `:start` / `:end`.

    >>> load_data(spec.data).frame.shape  # doctest: +SKIP
    (23456, 6)
    """
    from maestrale.training.spec import DatasetSource, DvcSource, SqlSource, UriSource

    if isinstance(source, UriSource):
        from maestrale.training.sources.files import load_file

        return load_file(source)
    if isinstance(source, DvcSource):
        from maestrale.training.sources.dvc import load_dvc

        return load_dvc(source)
    if isinstance(source, SqlSource):
        from maestrale.training.sources.sql import load_sql

        return load_sql(source, window)
    if isinstance(source, DatasetSource):
        from maestrale.training.sources.datasets import load_dataset

        return load_dataset(source)
    raise InvalidInput(f"unknown data source {type(source).__name__}")  # pragma: no cover


__all__ = [
    "DataVersion",
    "LoadedData",
    "expand_env",
    "load_data",
    "redact",
    "sha256_bytes",
    "storage_options",
]
