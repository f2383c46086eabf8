"""The two interfaces behind `Registry`: where metadata lives (`RegistryStore`) and where bytes live
(`BlobStore`).

Implementations:

- `RegistryStore`: `SqlStore` (SQLite or PostgreSQL, `maestrale.registry.store`) and `RemoteStore`
  (a `maestrale server` over REST, `maestrale.registry.remote`);
- `ArtifactIO`, what a `Registry` needs of the bytes: `ArtifactStore` (fsspec: `file://`, `abfs://`,
  `s3://`, `gs://`) and `RemoteArtifacts` (the server's `/api/v1/artifacts`);
- `BlobStore`, the whole object store an operator runs next to the database (listing and deleting for
  `gc`): `ArtifactStore`.

Every implementation raises the same typed errors (`maestrale.errors`): `NotFound` for a model,
version or alias that does not exist, `Conflict` for a contradicting change, `InvalidInput` for a bad
argument, `ArtifactMissing` for an absent object, `IntegrityError` (with `expected`/`actual` digests)
for bytes that no longer match; tests/integration/test_store_contract.py runs one suite on each.

>>> from maestrale.registry.store import SqlStore
>>> store: RegistryStore = SqlStore("sqlite:////tmp/doc-stores.db")
>>> store.remote
False
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from maestrale.refs import ModelRef
    from maestrale.registry.artifacts import StoredObject
    from maestrale.registry.types import (
        AliasChange,
        ArtifactInfo,
        ModelVersion,
        Page,
        RegisteredModel,
        VersionCreate,
    )


class RegistryStore(Protocol):
    """Model metadata: models, immutable versions, aliases and archiving (audited), tags, search."""

    @property
    def remote(self) -> bool:
        """True when the store is a server reached over the network (its storage is not ours to `gc`)."""
        ...

    def get_model(self, name: str) -> RegisteredModel: ...

    def list_models(
        self,
        limit: int = 100,
        page_token: str | None = None,
        name_like: str | None = None,
        include_archived: bool = False,
    ) -> Page[RegisteredModel]: ...

    def set_model_tag(self, name: str, key: str, value: str | None) -> None: ...

    def archive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None: ...

    def unarchive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None: ...

    def create_version(
        self, name: str, new: VersionCreate, trusted_types: list[str] | None = None
    ) -> ModelVersion: ...

    def get_version(self, ref: str | ModelRef) -> ModelVersion: ...

    def artifact_of(self, ref: str | ModelRef) -> tuple[str, int, ArtifactInfo]: ...

    def holdout(self, ref: str | ModelRef) -> dict[str, Any] | None:
        """The version's checked holdout series (`maestrale.registry.holdout`); None if it has none."""
        ...

    def list_versions(
        self,
        name: str,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = True,
        full: bool = False,
    ) -> Page[ModelVersion]: ...

    def search_versions(
        self,
        filter: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = False,
        full: bool = False,
    ) -> Page[ModelVersion]: ...

    def set_version_tag(self, ref: str, key: str, value: str | None) -> None: ...

    def archive_version(
        self, ref: str, actor: str | None = None, reason: str | None = None
    ) -> ModelVersion: ...

    def unarchive_version(
        self, ref: str, actor: str | None = None, reason: str | None = None
    ) -> ModelVersion: ...

    def set_alias(
        self, name: str, alias: str, version: int, actor: str | None = None, reason: str | None = None
    ) -> AliasChange: ...

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> AliasChange: ...

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]: ...

    def referenced_keys(self) -> set[str]:
        """Artifact keys some version still points at (what `gc` keeps)."""
        ...


@runtime_checkable
class FetchesArtifacts(Protocol):
    """A store that resolves a reference and returns its verified bytes in one round trip (REST)."""

    def fetch_artifact(self, ref: str | ModelRef) -> tuple[str, int, ArtifactInfo, bytes]: ...


class ArtifactIO(Protocol):
    """What a `Registry` needs of artifact bytes: store, read back verified, hash, answer a probe."""

    def check(self) -> None:
        """Raise `BackendUnavailable` unless the storage answers."""
        ...

    def put_bytes(self, data: bytes) -> StoredObject:
        """Store `data` under its sha256 (content-addressed: the same bytes are stored once)."""
        ...

    def get_bytes(self, key: str, sha256: str, what: str) -> bytes:
        """The object's bytes if their digest is `sha256`; `ArtifactMissing` / `IntegrityError` if not."""
        ...

    def sha256(self, key: str) -> str:
        """The digest of the bytes stored under `key` now (`ArtifactMissing` when absent)."""
        ...


@runtime_checkable
class BlobStore(ArtifactIO, Protocol):
    """The object store itself: sizes, existence, streaming, listing and deletion (`gc`)."""

    def put_file(self, fh: IO[bytes]) -> StoredObject: ...

    def exists(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def iter_chunks(self, key: str, what: str) -> Iterator[bytes]: ...

    def delete(self, key: str) -> None: ...

    def iter_objects(self) -> Iterator[tuple[str, datetime | None]]: ...
