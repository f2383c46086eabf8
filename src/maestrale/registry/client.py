"""`Registry`: the one Python API for model versions, the same embedded and against a server.

>>> from maestrale import Registry
>>> reg = Registry(database_url="sqlite:////tmp/r.db", storage_url="file:///tmp/artifacts")
>>> mv = reg.register("pv-forecast", model, metrics={"nmae": 0.061}, input_example=X.head())  # doctest: +SKIP
>>> reg.set_alias("pv-forecast", "champion", mv.version)  # doctest: +SKIP
>>> reg.load("pv-forecast").predict(X)  # doctest: +SKIP
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from maestrale.config import Settings, load_settings
from maestrale.errors import ArtifactMissing, InvalidInput
from maestrale.refs import ModelRef, validate_name
from maestrale.registry.formats import deserialize, serialize
from maestrale.registry.metadata import code_version as current_code_version
from maestrale.registry.metadata import fingerprint, input_schema, package_versions
from maestrale.registry.stores import ArtifactIO, BlobStore, FetchesArtifacts, RegistryStore
from maestrale.registry.types import (
    AliasChange,
    ArtifactInfo,
    ModelVersion,
    Page,
    ParamValue,
    RegisteredModel,
    VerifyResult,
    VersionCreate,
)


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A loaded model with the exact version it came from (what servers log with predictions)."""

    model: Any
    name: str
    version: int
    sha256: str


def default_actor() -> str:
    """Who is acting: MAESTRALE_ACTOR, else the OS user (recorded on versions and alias moves)."""
    if actor := os.environ.get("MAESTRALE_ACTOR"):
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


class Registry:
    """Versioned, immutable models with aliases; embedded (SQL + blob) or remote (REST).

    `Registry()` reads the `MAESTRALE_*` settings (remote when `MAESTRALE_REGISTRY_URL` is set);
    `Registry(database_url=…, storage_url=…)` is embedded; `Registry("http://host:8080", token=…)`
    talks to `maestrale server`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        token: str | None = None,
        database_url: str | None = None,
        storage_url: str | None = None,
        storage_options: dict[str, Any] | None = None,
        settings: Settings | None = None,
        actor: str | None = None,
    ) -> None:
        if settings is None:
            settings = load_settings(
                database_url=database_url,
                storage_url=storage_url,
                storage_options=storage_options,
                registry_url=url,
                token=token,
            )
        self.settings = settings
        self.actor = actor or default_actor()
        remote = settings.registry_url if (url or not (database_url or storage_url)) else None
        self._meta: RegistryStore
        self._blobs: ArtifactIO
        if remote:
            from maestrale.registry.remote import RemoteArtifacts, RemoteSession, RemoteStore

            session = RemoteSession(remote, token=settings.token)
            self._meta, self._blobs = RemoteStore(session), RemoteArtifacts(session)
            self.location = remote
        else:
            from maestrale.registry.artifacts import ArtifactStore
            from maestrale.registry.store import SqlStore

            assert settings.database_url and settings.storage_url  # filled by Settings defaults
            self._meta = SqlStore(settings.database_url, settings.auto_upgrade)
            self._blobs = ArtifactStore(settings.storage_url, settings.storage_options)
            self._blobs.check()
            self.location = f"{settings.database_url} + {settings.storage_url}"

    def __repr__(self) -> str:
        return f"Registry({self.location!r})"

    @property
    def is_remote(self) -> bool:
        """True when this registry talks to a server over REST."""
        return self._meta.remote

    # -- write ------------------------------------------------------------------------------
    def register(
        self,
        name: str,
        model: Any,
        *,
        params: dict[str, ParamValue] | None = None,
        metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None,
        input_example: Any = None,
        description: str = "",
        training_data: Any = None,
        data_fingerprint: str | None = None,
        data_version: str | None = None,
        duration_s: float | None = None,
        parent_version: int | None = None,
        reason: str | None = None,
        spec: dict[str, Any] | None = None,
        profile: dict[str, Any] | None = None,
        holdout: dict[str, Any] | None = None,
        lineage: list[dict[str, Any]] | None = None,
        format: str | None = None,
        trusted_types: list[str] | None = None,
        code_version: str | None = None,
        idempotency_key: str | None = None,
    ) -> ModelVersion:
        """Store `model` in a safe format and record version N+1 of `name`.

        The artifact is uploaded first and the metadata committed last, so a crash in between
        leaves an unreferenced blob (removed by `gc`) and never a visible half-version. A retry with
        the same `idempotency_key` (e.g. a redelivered training request) returns the first version.

        >>> mv = reg.register("pv-forecast", model, params={"alpha": 1.0}, metrics={"nmae": 0.061},
        ...                   input_example=X.head(), tags={"site": "p50"})  # doctest: +SKIP
        >>> mv.version  # doctest: +SKIP
        1
        """
        validate_name(name)
        ser = serialize(model, format, trusted_types)
        if training_data is not None and data_fingerprint is None:
            data_fingerprint = fingerprint(training_data)
        new = VersionCreate.model_validate(
            dict(
                artifact={"key": "", "sha256": "", "size": 0, "format": ser.format, "flavor": ser.flavor},
                params=params or {},
                metrics=metrics or {},
                tags=tags or {},
                description=description,
                input_schema=input_schema(input_example),
                data_fingerprint=data_fingerprint,
                data_version=data_version,
                code_version=code_version or current_code_version(),
                package_versions=package_versions(model),
                duration_s=duration_s,
                parent_version=parent_version,
                reason=reason,
                spec=spec,
                profile=profile,
                holdout=holdout,
                lineage=lineage or [],
                created_by=self.actor,
                idempotency_key=idempotency_key,
            )
        )  # validated before the upload, so bad metadata never leaves an orphan blob
        obj = self._blobs.put_bytes(ser.data)
        new.artifact.key, new.artifact.sha256, new.artifact.size = obj.key, obj.sha256, obj.size
        # a server vets the archive again: it is told which types the caller vouches for
        return self._meta.create_version(name, new, trusted_types=trusted_types)

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> AliasChange:
        """Point `NAME@ALIAS` at a version (audited; `champion` moves emit `model.promoted`)."""
        return self._meta.set_alias(name, alias, int(version), actor=self.actor, reason=reason)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        """Remove an alias."""
        return self._meta.delete_alias(name, alias, actor=self.actor)

    def set_tag(self, ref: str, key: str, value: str | None) -> None:
        """Set or (value None) remove a tag on a version (`NAME:VERSION`) or a model (`NAME`)."""
        if ":" in ref or "@" in ref:
            self._meta.set_version_tag(ref, key, value)
        else:
            self._meta.set_model_tag(ref, key, value)

    def archive(self, ref: str, *, reason: str | None = None) -> ModelVersion | None:
        """Archive a version (`NAME:VERSION`) or a whole model (`NAME`); nothing is deleted (audited)."""
        if ":" in ref or "@" in ref:
            return self._meta.archive_version(ref, actor=self.actor, reason=reason)
        self._meta.archive_model(validate_name(ref), actor=self.actor, reason=reason)
        return None

    def unarchive(self, ref: str, *, reason: str | None = None) -> ModelVersion | None:
        """Undo `archive`: a version is ready again, a model listed again (audited).

        Unarchiving a model leaves its archived versions archived; `Conflict` if `ref` is not archived.

        >>> reg.unarchive("pv-forecast:2", reason="compare it with the champion")  # doctest: +SKIP
        """
        if ":" in ref or "@" in ref:
            return self._meta.unarchive_version(ref, actor=self.actor, reason=reason)
        self._meta.unarchive_model(validate_name(ref), actor=self.actor, reason=reason)
        return None

    # -- read -------------------------------------------------------------------------------
    def load(self, ref: str, *, trusted: bool = False, trusted_types: list[str] | None = None) -> Any:
        """Load the model a reference points at, after checking its sha256.

        >>> reg.load("pv-forecast@champion").predict(X)  # doctest: +SKIP
        """
        return self.load_version(ref, trusted=trusted, trusted_types=trusted_types).model

    def load_version(
        self, ref: str, *, trusted: bool = False, trusted_types: list[str] | None = None
    ) -> LoadedModel:
        """Like `load`, but also says which version was loaded."""
        name, version, info, data = self.artifact_bytes(ref)
        what = f"the artifact of {name}:{version}"
        model = deserialize(
            data, info.format, info.flavor, trusted=trusted, trusted_types=trusted_types, what=what
        )
        return LoadedModel(model=model, name=name, version=version, sha256=info.sha256)

    def artifact_bytes(self, ref: str) -> tuple[str, int, ArtifactInfo, bytes]:
        """`(name, version, artifact info, bytes)` of a version, checksum verified (for download/export).

        >>> name, version, info, data = reg.artifact_bytes("pv-forecast@champion")  # doctest: +SKIP
        """
        if isinstance(self._meta, FetchesArtifacts):
            return self._meta.fetch_artifact(ref)  # one round trip: bytes + version headers
        name, version, info = self._meta.artifact_of(ref)
        return name, version, info, self._blobs.get_bytes(info.key, info.sha256, f"{name}:{version}")

    def get_version(self, ref: str) -> ModelVersion:
        """Metadata of a version (no artifact download)."""
        return self._meta.get_version(ref)

    def get_model(self, name: str) -> RegisteredModel:
        """A model with its tags and aliases."""
        return self._meta.get_model(name)

    def list_models(
        self,
        *,
        limit: int = 100,
        page_token: str | None = None,
        name_like: str | None = None,
        include_archived: bool = False,
    ) -> Page[RegisteredModel]:
        """Models by name, a page at a time."""
        return self._meta.list_models(
            limit=limit, page_token=page_token, name_like=name_like, include_archived=include_archived
        )

    def list_versions(
        self,
        name: str,
        *,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = True,
        full: bool = False,
    ) -> Page[ModelVersion]:
        """A model's versions, newest first (summaries unless `full`, as in `search_versions`)."""
        return self._meta.list_versions(
            name, limit=limit, page_token=page_token, include_archived=include_archived, full=full
        )

    def search_versions(
        self,
        filter: str | None = None,
        *,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = False,
        full: bool = False,
    ) -> Page[ModelVersion]:
        """Versions matching a filter on metrics, params, tags and fields.

        Results are summaries unless `full=True`: input schema, package versions, spec, profile and
        lineage are left empty (`get_version` returns the complete record).

        >>> reg.search_versions("name = 'pv-forecast' and metrics.nmae < 0.07", order_by="metrics.nmae")
        ... # doctest: +SKIP
        """
        return self._meta.search_versions(
            filter,
            order_by=order_by,
            limit=limit,
            page_token=page_token,
            include_archived=include_archived,
            full=full,
        )

    def holdout(self, ref: str) -> dict[str, Any] | None:
        """The holdout series trained with a version: times, actual, forecast, residuals by hour, folds.

        None for a version registered without one (before schema 0008, or not by `train`); the
        layout is `maestrale.registry.holdout`'s, checked on the way out of the store.

        >>> h = reg.holdout("pv-forecast@champion")  # doctest: +SKIP
        >>> len(h["times"]) <= 1000, h["rows"], [f["fold"] for f in h["folds"]]  # doctest: +SKIP
        (True, 1752, [1, 2, 3])
        """
        return self._meta.holdout(ref)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Audit trail of alias moves (who, when, from which version)."""
        return self._meta.alias_history(name, alias)

    def verify(self, ref: str) -> VerifyResult:
        """Re-read a version's artifact and compare its sha256 with the registered one."""
        name, version, info = self._meta.artifact_of(ref)
        what = f"{name}:{version}"
        try:
            actual = self._blobs.sha256(info.key)
        except ArtifactMissing as exc:
            detail = f"artifact of {what} is missing: {exc}"
            return VerifyResult(
                ref=what, ok=False, sha256_expected=info.sha256, sha256_actual=None, detail=detail
            )
        if actual != info.sha256:
            detail = (
                f"artifact of {what} is corrupted: object {info.key} has sha256 {actual}, "
                f"registered {info.sha256}"
            )
            return VerifyResult(
                ref=what, ok=False, sha256_expected=info.sha256, sha256_actual=actual, detail=detail
            )
        return VerifyResult(ref=what, ok=True, sha256_expected=info.sha256, sha256_actual=actual)

    # -- housekeeping -----------------------------------------------------------------------
    def gc(self, *, grace: timedelta = timedelta(hours=1), dry_run: bool = False) -> list[str]:
        """Delete stored objects no version references, older than `grace` (in-flight uploads are younger).

        >>> reg.gc(dry_run=True)  # doctest: +SKIP
        ['objects/sha256/3f/3f…']
        """
        blobs = self._blobs
        if self.is_remote or not isinstance(blobs, BlobStore):
            raise InvalidInput(
                "gc runs next to the storage: run `maestrale gc` where the server's settings are"
            )
        referenced = self._meta.referenced_keys()
        cutoff = datetime.now(UTC) - grace
        removed = []
        for key, mtime in blobs.iter_objects():
            if key in referenced or (mtime is not None and mtime > cutoff):
                continue
            if not dry_run:
                blobs.delete(key)
            removed.append(key)
        return removed

    def parse(self, ref: str) -> ModelRef:
        """Parse and validate a reference without touching storage."""
        return ModelRef.parse(ref)
