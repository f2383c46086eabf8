"""Domain types of the registry: what callers get back and what backends receive."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

T = TypeVar("T")
ParamValue = str | int | float | bool | None


class ColumnSchema(BaseModel):
    """One input column: its name and dtype as pandas/numpy spell it."""

    name: str
    dtype: str


class ArtifactInfo(BaseModel):
    """Where a version's bytes live and how to read them back."""

    key: str = Field(description="Object key under the storage URL (content-addressed).")
    sha256: str
    size: int
    format: str = Field(description="Serialisation: skops, lightgbm, xgboost, onnx, pickle.")
    flavor: str = Field(description="Fully qualified class of the stored object.")


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
    lineage: list[dict[str, Any]] = Field(default_factory=list)
    created_by: str | None = None
    idempotency_key: str | None = Field(
        default=None, max_length=128, description="Retries with the same key return the first version."
    )


class VersionCreate(VersionMetadata):
    """Everything a backend needs to record a new version (the artifact is already stored)."""


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
