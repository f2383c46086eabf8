"""The `data:` section of a training spec: where the rows come from (file, DVC, SQL, packaged dataset).

>>> from pydantic import TypeAdapter
>>> TypeAdapter(DataSource).validate_python({"dataset": "nrel_system50"}).freq
'1h'
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class StrictModel(BaseModel):
    """Unknown fields are errors (a typo must not be silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class UriSource(StrictModel):
    """CSV or Parquet by local path or any fsspec URL (`abfs://`, `s3://`, `gs://`, `https://`)."""

    uri: str
    format: Literal["csv", "parquet"] | None = Field(None, description="Default: from the file extension.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="fsspec options; values may be ${ENV_VAR} (default from env)."
    )
    read_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra keywords for pandas.read_csv / read_parquet."
    )


class DvcLocation(StrictModel):
    """A file tracked by DVC in a git repository (local path or git URL) at a revision."""

    repo: str
    path: str
    rev: str | None = Field(None, description="Branch, tag or commit; default: the repo's HEAD.")


class DvcSource(StrictModel):
    """`{dvc: {repo, path, rev}}`, also written `uri: dvc:///local/repo?path=data.csv&rev=v2`."""

    dvc: DvcLocation
    format: Literal["csv", "parquet"] | None = None
    read_options: dict[str, Any] = Field(default_factory=dict)


class SqlQuery(StrictModel):
    """A query by SQLAlchemy URL; `:start` / `:end` in the query are bound from `train_window`."""

    url: str = Field(description="SQLAlchemy URL; use ${ENV_VAR} to keep passwords out of the spec.")
    query: str


class SqlSource(StrictModel):
    sql: SqlQuery


class DatasetSource(StrictModel):
    """A dataset shipped with Maestrale (`maestrale.datasets`)."""

    dataset: Literal["nrel_system50", "pvgis_italy_tmy"]
    freq: str = Field("1h", description="nrel_system50 resampling: 15min, 30min, 1h, 3h, 1D.")
    year: int = Field(2021, description="pvgis_italy_tmy: relabel every month to this year.")


def _source_kind(value: Any) -> str | None:
    keys = ("uri", "dvc", "sql", "dataset")
    if isinstance(value, dict):
        return next((f"{k} source" for k in keys if k in value), None)
    kinds: dict[type[StrictModel], str] = {
        UriSource: "uri",
        DvcSource: "dvc",
        SqlSource: "sql",
        DatasetSource: "dataset",
    }
    kind = kinds.get(type(value))
    return f"{kind} source" if kind else None


SOURCE_TAGS = ("uri source", "dvc source", "sql source", "dataset source")
DataSource = Annotated[
    Annotated[UriSource, Tag("uri source")]
    | Annotated[DvcSource, Tag("dvc source")]
    | Annotated[SqlSource, Tag("sql source")]
    | Annotated[DatasetSource, Tag("dataset source")],
    Discriminator(
        _source_kind,
        custom_error_type="data_source",
        custom_error_message=(
            "data needs exactly one of: uri (CSV/Parquet path or URL), dvc {repo, path, rev}, "
            "sql {url, query} or dataset (nrel_system50 | pvgis_italy_tmy)"
        ),
    ),
]


def dvc_url_parts(uri: str) -> dict[str, Any]:
    """`dvc:///srv/repo?path=data.csv&rev=v2` (local) or `dvc://github.com/org/repo.git?…` (https)."""
    from urllib.parse import parse_qs, urlsplit

    parts = urlsplit(uri)
    query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    repo = parts.path if not parts.netloc else f"https://{parts.netloc}{parts.path}"
    return {"repo": repo, **query}
