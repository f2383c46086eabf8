"""Domain types of the registry: what callers get back and what backends receive."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from maestrale.limits import MAX_VERSION, check_text, json_problem

T = TypeVar("T")
ParamValue = str | int | float | bool | None

# Bounds on what a client sends with a version (`VersionCreate`); stored versions are read back as
# they are, so a bound tightened later never makes an old version unreadable.
MAX_TEXT = 10_000  # description, reason
MAX_TAG_VALUE = 500  # PostgreSQL indexes (key, value): an index row must stay under ~2.7 kB
MAX_PARAM_TEXT = 8_000
MAX_ENTRIES = 1_000  # params, metrics, tags, package versions
MAX_COLUMNS = 100_000  # input schema
MAX_LINEAGE = 100
MAX_DETAIL_BYTES = 64 * 1024  # one lineage entry's detail, as JSON


def _storable(value: str) -> str:
    return check_text(value, "the text")


_Storable = AfterValidator(_storable)
#: Free text a client sends: bounded, without NUL characters or lone surrogates (PostgreSQL refuses them).
Text = Annotated[str, Field(max_length=MAX_TEXT), _Storable]
TagValue = Annotated[str, Field(max_length=MAX_TAG_VALUE), _Storable]
ParamText = Annotated[str, Field(max_length=MAX_PARAM_TEXT), _Storable]
Text128 = Annotated[str, Field(max_length=128), _Storable]  # VARCHAR(128) columns
Text256 = Annotated[str, Field(max_length=256), _Storable]  # VARCHAR(256) columns


class ColumnSchema(BaseModel):
    """One input column: its name and dtype as pandas/numpy spell it."""

    name: str = Field(max_length=1024)
    dtype: str = Field(max_length=256)


class ArtifactInfo(BaseModel):
    """Where a version's bytes live and how to read them back (as stored: read back leniently)."""

    key: str = Field(description="Object key under the storage URL (content-addressed).")
    sha256: str = Field(description="Hex digest of the bytes.")
    size: int
    format: str = Field(description="Serialisation: skops, lightgbm, xgboost, onnx, pickle.")
    flavor: str = Field(
        description="Fully qualified class of the stored object, e.g. sklearn.pipeline.Pipeline."
    )


class DeclaredArtifact(ArtifactInfo):
    """What a client declares when it registers a version: checked, then checked again against the bytes.

    Format and flavor travel in HTTP headers (`X-Artifact-Format`/`-Flavor`) on every download, so
    they are a closed set and ASCII identifiers.
    """

    key: str = Field(max_length=256, description="Object key under the storage URL (content-addressed).")
    sha256: str = Field(pattern=r"^([0-9a-f]{64})?$", description="Hex digest (empty until uploaded).")
    size: int = Field(ge=0, le=2**53)
    format: Literal["skops", "lightgbm", "xgboost", "onnx", "pickle"] = Field(
        description="Serialisation: skops, lightgbm, xgboost, onnx, pickle."
    )
    flavor: str = Field(
        max_length=512,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|<locals>|<lambda>))*$",
        description="Fully qualified class of the stored object, e.g. sklearn.pipeline.Pipeline.",
    )


class LineageEntry(BaseModel):
    """Where a version came from: a `relation` (`parent`, `training_data`…), its `target` and detail.

    >>> LineageEntry(relation="training_data", target="s3://lake/pv.parquet", detail={"rows": 8760})["target"]
    's3://lake/pv.parquet'
    """

    model_config = ConfigDict(extra="forbid")

    relation: str = Field(
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$", description="A short identifier, e.g. training_data."
    )
    target: str = Field(
        min_length=1, max_length=2048, description="What it relates to: a URI or NAME:VERSION."
    )
    detail: dict[str, Any] | None = Field(default=None, description="A JSON object (at most 64 KiB).")

    # read like the plain dicts lineage entries used to be: entry["relation"], entry.get("detail")
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        """`entry.get("detail")` as on a dict."""
        return getattr(self, key, default) if key in type(self).model_fields else default

    def __eq__(self, other: object) -> bool:
        # `{"relation": "parent", …} in mv.lineage` keeps working
        if isinstance(other, dict):
            return self.model_dump() == other
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]  # mutable, like the dicts it replaces


class VersionMetadata(BaseModel):
    """What is recorded about a version besides its bytes (shared by `VersionCreate` and `ModelVersion`)."""

    artifact: ArtifactInfo
    description: str = ""
    params: dict[str, ParamValue] = Field(default_factory=dict)
    metrics: dict[str, float] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    input_schema: list[ColumnSchema] | None = None
    data_fingerprint: str | None = None
    data_version: str | None = None
    code_version: str | None = None
    package_versions: dict[str, str] = Field(default_factory=dict)
    duration_s: float | None = None
    parent_version: int | None = None
    reason: str | None = None
    spec: dict[str, Any] | None = None
    profile: dict[str, Any] | None = None
    lineage: list[LineageEntry] = Field(default_factory=list)
    created_by: str | None = None
    idempotency_key: str | None = Field(
        default=None, max_length=128, description="Retries with the same key return the first version."
    )


class VersionCreate(VersionMetadata):
    """Everything a backend needs to record a new version (the artifact is already stored).

    What a client sends is bounded (`MAX_*` above, and the column widths) and must be storable JSON:
    a NaN or infinite metric, param or number nested in spec, profile or a lineage detail is refused
    with its path (e.g. `metrics.mape is NaN`). An undefined metric is left out, as the trainer does.
    """

    artifact: DeclaredArtifact
    description: Text = ""
    params: dict[str, ParamText | int | float | bool | None] = Field(
        default_factory=dict, max_length=MAX_ENTRIES
    )
    metrics: dict[str, float] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    tags: dict[str, TagValue] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    input_schema: list[ColumnSchema] | None = Field(default=None, max_length=MAX_COLUMNS)
    data_fingerprint: Text128 | None = None
    data_version: Text256 | None = None
    code_version: Text128 | None = None
    package_versions: dict[Text256, Text256] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    duration_s: float | None = Field(default=None, ge=0)
    parent_version: int | None = Field(default=None, ge=1, le=MAX_VERSION)
    reason: Text | None = None
    lineage: list[LineageEntry] = Field(default_factory=list, max_length=MAX_LINEAGE)
    created_by: Text128 | None = None
    holdout: dict[str, Any] | None = Field(
        default=None,
        description="The holdout's forecast and actual, at most 1,000 points (`maestrale.registry.holdout`).",
    )

    @field_validator("holdout")
    @classmethod
    def _holdout(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        from maestrale.registry.holdout import check_holdout

        return None if value is None else check_holdout(value)

    @model_validator(mode="after")
    def _storable_numbers(self) -> VersionCreate:
        # JSON (and the SQL JSON functions that build listings) has no NaN or Infinity, and an
        # integer beyond 64 bits overflows the float views (params.value_num): refuse them here,
        # naming where they are, before the artifact is uploaded
        problem = (
            json_problem(self.metrics, "metrics")
            or json_problem(self.params, "params")
            or json_problem(self.duration_s, "duration_s")
            or json_problem(self.spec, "spec")
            or json_problem(self.profile, "profile")
            or _lineage_problem(self.lineage)
        )
        if problem:
            raise ValueError(problem)
        return self


def _lineage_problem(lineage: list[LineageEntry]) -> str | None:
    for i, entry in enumerate(lineage):
        where = f"lineage[{i}].detail"
        if problem := json_problem(entry.detail, where):
            return problem
        if entry.detail is not None and len(json.dumps(entry.detail)) > MAX_DETAIL_BYTES:
            return (
                f"{where} is larger than {MAX_DETAIL_BYTES} bytes as JSON: keep details small, link the rest"
            )
    return None


class ModelVersion(VersionMetadata):
    """An immutable registered version with its metadata.

    >>> mv = reg.get_version("pv-forecast:3")  # doctest: +SKIP
    >>> mv.metrics["nmae"], mv.aliases  # doctest: +SKIP
    (0.061, ['champion'])
    """

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    status: Literal["ready", "archived"]
    created_at: datetime
    aliases: list[str] = Field(default_factory=list)

    @property
    def ref(self) -> str:
        """The exact reference of this version, e.g. `pv-forecast:3`."""
        return f"{self.name}:{self.version}"


class RegisteredModel(BaseModel):
    """A model name with its aliases and version count."""

    name: str
    description: str = ""
    latest_version: int
    archived: bool = False
    created_at: datetime
    updated_at: datetime
    tags: dict[str, str] = Field(default_factory=dict)
    aliases: dict[str, int] = Field(default_factory=dict)


class AliasChange(BaseModel):
    """One entry of an alias's audit trail (version None: the alias was removed)."""

    name: str
    alias: str
    version: int | None
    previous_version: int | None
    actor: str | None
    reason: str | None = None
    at: datetime


class Page(BaseModel, Generic[T]):
    """One page of results; pass `next_page_token` back to get the next one."""

    items: list[T]
    next_page_token: str | None = None
    total: int | None = None


class VerifyResult(BaseModel):
    """Outcome of re-hashing a version's artifact."""

    ref: str
    ok: bool
    sha256_expected: str
    sha256_actual: str | None
    detail: str = ""
