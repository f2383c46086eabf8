"""One contract, every backend: `RegistryStore` on SQLite, PostgreSQL and REST; `BlobStore` on a local
folder, Azurite (abfs) and a moto S3 server (and the artifact half of it over REST).

Each test runs unchanged against each implementation and expects the same results and the same typed
errors (`maestrale.errors`), so a caller never needs to know which backend it talks to. Names are
unique per test: the PostgreSQL database and the REST server are fresh per module, SQLite per test.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from maestrale.errors import ArtifactMissing, Conflict, IntegrityError, InvalidInput, NotFound
from maestrale.registry.artifacts import ArtifactStore, object_key
from maestrale.registry.formats import serialize
from maestrale.registry.remote import RemoteArtifacts, RemoteSession, RemoteStore
from maestrale.registry.store import SqlStore
from maestrale.registry.stores import ArtifactIO, BlobStore, RegistryStore
from maestrale.registry.types import VersionCreate
from tests.conftest import fresh_pg_database, start_server


# -------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def pg_database() -> Iterator[str]:
    with fresh_pg_database("maestrale_contract") as url:
        yield url


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    handle = start_server(tmp_path_factory.mktemp("contract-server"))
    yield handle
    handle.stop()


@pytest.fixture(params=["sqlite", "postgres", "rest"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[RegistryStore, ArtifactIO]:
    """A metadata store and the artifact store its versions' bytes go to."""
    if request.param == "rest":
        handle = request.getfixturevalue("rest_server")
        session = RemoteSession(handle.url, token=handle.admin_token)
        return RemoteStore(session), RemoteArtifacts(session)
    if request.param == "postgres":
        url = request.getfixturevalue("pg_database")
    else:
        url = f"sqlite:///{tmp_path}/registry.db"
    return SqlStore(url), ArtifactStore(f"file://{tmp_path}/artifacts")


def _name() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


def _register(stores: tuple[RegistryStore, ArtifactIO], name: str, alpha: float = 1.0, **meta: Any) -> Any:
    """Upload a real (skops) Ridge and record it, as `Registry.register` does."""
    from sklearn.linear_model import Ridge

    store, blobs = stores
    model = Ridge(alpha=alpha).fit(np.arange(8.0).reshape(4, 2), [0.0, 1.0, 2.0, 3.0])
    ser = serialize(model, None, None)
    obj = blobs.put_bytes(ser.data)
    artifact = {
        "key": obj.key,
        "sha256": obj.sha256,
        "size": obj.size,
        "format": ser.format,
        "flavor": ser.flavor,
    }
    return store.create_version(name, VersionCreate(artifact=artifact, created_by="contract", **meta))


# ------------------------------------------------------------------------------ RegistryStore
def test_remote_is_a_capability_of_the_store(stores, request: pytest.FixtureRequest) -> None:
    assert stores[0].remote is (request.node.callspec.params["stores"] == "rest")


def test_versions_are_numbered_recorded_and_listed_newest_first(stores) -> None:
    store, _ = stores
    name = _name()
    first = _register(stores, name, metrics={"nmae": 0.07}, params={"alpha": 1.0}, tags={"site": "p50"})
    second = _register(stores, name, alpha=2.0, metrics={"nmae": 0.05})
    assert (first.version, second.version) == (1, 2)
    got = store.get_version(f"{name}:1")
    assert (got.metrics, got.params, got.tags) == ({"nmae": 0.07}, {"alpha": 1.0}, {"site": "p50"})
    assert got.artifact.sha256 == first.artifact.sha256 and got.status == "ready"
    assert store.artifact_of(f"{name}:2")[:2] == (name, 2)
    assert store.artifact_of(f"{name}:2")[2].sha256 == second.artifact.sha256
    page = store.list_versions(name, limit=1)
    assert [v.version for v in page.items] == [2] and page.next_page_token
    rest = store.list_versions(name, limit=1, page_token=page.next_page_token)
    assert [v.version for v in rest.items] == [1] and rest.next_page_token is None
    assert [m.name for m in store.list_models(name_like=name).items] == [name]
    found = store.search_versions(f"name = '{name}' and metrics.nmae < 0.06")
    assert [v.version for v in found.items] == [2]


def test_aliases_move_with_an_audit_trail(stores) -> None:
    store, _ = stores
    name = _name()
    _register(stores, name)
    _register(stores, name, alpha=2.0)
    store.set_alias(name, "champion", 1, actor="contract")
    assert store.get_version(f"{name}@champion").version == 1
    change = store.set_alias(name, "champion", 2, actor="contract", reason="better nMAE")
    assert (change.previous_version, change.version) == (1, 2)
    assert store.get_model(name).aliases == {"champion": 2}
    history = store.alias_history(name, "champion")
    assert [(h.previous_version, h.version) for h in history][:2] in (
        [(None, 1), (1, 2)],
        [(1, 2), (None, 1)],
    )
    store.delete_alias(name, "champion", actor="contract")
    with pytest.raises(NotFound, match="has no alias 'champion'"):
        store.get_version(f"{name}@champion")
    with pytest.raises(NotFound):
        store.set_alias(name, "champion", 9, actor="contract")


def test_tags_are_set_and_removed(stores) -> None:
    store, _ = stores
    name = _name()
    _register(stores, name)
    store.set_version_tag(f"{name}:1", "stage", "shadow")
    store.set_model_tag(name, "team", "pv")
    assert store.get_version(f"{name}:1").tags == {"stage": "shadow"}
    assert store.get_model(name).tags == {"team": "pv"}
    store.set_version_tag(f"{name}:1", "stage", None)
    store.set_model_tag(name, "team", None)
    assert store.get_version(f"{name}:1").tags == {} and store.get_model(name).tags == {}


def test_archive_hides_without_deleting_and_refuses_an_aliased_version(stores) -> None:
    store, _ = stores
    name = _name()
    _register(stores, name)
    _register(stores, name, alpha=2.0)
    store.set_alias(name, "champion", 1, actor="contract")
    with pytest.raises(Conflict, match="still aliased as champion"):
        store.archive_version(f"{name}:1", actor="contract")
    assert store.archive_version(f"{name}:2", actor="contract").status == "archived"
    assert [v.version for v in store.list_versions(name, include_archived=False).items] == [1]
    assert store.get_version(f"{name}:2").status == "archived"  # still there by exact reference
    store.archive_model(name, actor="contract")
    assert store.list_models(name_like=name).items == []
    assert [m.name for m in store.list_models(name_like=name, include_archived=True).items] == [name]


def test_unarchive_undoes_archive_and_refuses_what_is_not_archived(stores) -> None:
    store, _ = stores
    name = _name()
    _register(stores, name)
    _register(stores, name, alpha=2.0)
    with pytest.raises(Conflict, match="is not archived"):
        store.unarchive_version(f"{name}:2", actor="contract")
    with pytest.raises(Conflict, match="is not archived"):
        store.unarchive_model(name, actor="contract")
    store.archive_version(f"{name}:2", actor="contract", reason="superseded")
    with pytest.raises(Conflict, match="archived and cannot take alias"):
        store.set_alias(name, "champion", 2, actor="contract")
    mv = store.unarchive_version(f"{name}:2", actor="contract", reason="compare it again")
    assert mv.status == "ready" and mv.version == 2
    assert [v.version for v in store.list_versions(name, include_archived=False).items] == [2, 1]
    assert store.set_alias(name, "champion", 2, actor="contract").version == 2  # it can serve again
    store.archive_model(name, actor="contract")
    store.unarchive_model(name, actor="contract", reason="back in service")
    assert [m.name for m in store.list_models(name_like=name).items] == [name]
    with pytest.raises(NotFound):
        store.unarchive_version(f"{name}:9", actor="contract")
    with pytest.raises(NotFound):
        store.unarchive_model(_name(), actor="contract")


def test_errors_are_the_same_types_everywhere(stores) -> None:
    store, _ = stores
    name = _name()
    with pytest.raises(NotFound, match=f"model '{name}' not found"):
        store.get_model(name)
    _register(stores, name)
    with pytest.raises(NotFound, match=f"version 7 of model '{name}' not found"):
        store.get_version(f"{name}:7")
    with pytest.raises(NotFound, match="has no alias 'nope'"):
        store.get_version(f"{name}@nope")
    with pytest.raises(InvalidInput):
        store.get_version("Not A Name")
    with pytest.raises(InvalidInput, match="parent_version 5"):
        _register(stores, name, parent_version=5)


# ---------------------------------------------------------------------------------- BlobStore
def _blob_store(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> ArtifactStore:
    """An `ArtifactStore` on `kind`, under a prefix of a fresh container/bucket (or a tmp folder)."""
    if kind == "file":
        return ArtifactStore(f"file://{tmp_path}/blobs")
    loc = request.getfixturevalue("azure_container" if kind == "azure" else "s3_bucket")
    options = dict(loc.storage_options)
    if kind == "azure":
        options["retry_total"] = 1
    return ArtifactStore(loc.path("models/prod"), options)


@pytest.fixture(params=["file", "azure", "s3"])
def blob_store(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactStore:
    """Each object store behind the `BlobStore` protocol."""
    return _blob_store(request, request.param, tmp_path)


@pytest.fixture(params=["file", "azure", "s3", "rest"])
def artifact_io(request: pytest.FixtureRequest, tmp_path: Path) -> ArtifactIO:
    """The artifact half a `Registry` uses: each `BlobStore`, and the REST server's artifacts."""
    if request.param == "rest":
        handle = request.getfixturevalue("rest_server")
        return RemoteArtifacts(RemoteSession(handle.url, token=handle.admin_token))
    return _blob_store(request, request.param, tmp_path)


DATA = b"maestrale contract \x00\x01" * 100


def test_put_get_and_hash_round_trip(artifact_io: ArtifactIO) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    obj = artifact_io.put_bytes(DATA)
    assert (obj.key, obj.sha256, obj.size) == (object_key(digest), digest, len(DATA))
    assert artifact_io.put_bytes(DATA) == obj  # content-addressed: the same bytes, the same object
    assert artifact_io.get_bytes(obj.key, digest, "contract:1") == DATA
    assert artifact_io.sha256(obj.key) == digest


def test_a_missing_object_is_artifact_missing(artifact_io: ArtifactIO) -> None:
    digest = hashlib.sha256(b"never stored " + uuid.uuid4().bytes).hexdigest()
    key = object_key(digest)
    with pytest.raises(ArtifactMissing, match=f"{key}"):
        artifact_io.get_bytes(key, digest, "contract:1")
    with pytest.raises(ArtifactMissing, match=f"{key}"):
        artifact_io.sha256(key)


def test_blob_store_sizes_lists_and_deletes(blob_store: BlobStore) -> None:
    assert isinstance(blob_store, BlobStore)
    obj = blob_store.put_bytes(DATA)
    assert blob_store.exists(obj.key) and blob_store.size(obj.key) == len(DATA)
    assert b"".join(blob_store.iter_chunks(obj.key, "contract:1")) == DATA
    assert [k for k, _ in blob_store.iter_objects()] == [obj.key]
    blob_store.delete(obj.key)
    assert not blob_store.exists(obj.key)
    with pytest.raises(ArtifactMissing):
        blob_store.size(obj.key)
    with pytest.raises(ArtifactMissing):
        next(iter(blob_store.iter_chunks(obj.key, "contract:1")))


def test_changed_bytes_are_an_integrity_error_with_both_digests(blob_store: ArtifactStore) -> None:
    obj = blob_store.put_bytes(DATA)
    tampered = b"tampered " + DATA
    blob_store.fs.pipe_file(f"{blob_store.root}/{obj.key}", tampered)
    actual = hashlib.sha256(tampered).hexdigest()
    with pytest.raises(IntegrityError, match="contract:1 is corrupted") as info:
        blob_store.get_bytes(obj.key, obj.sha256, "contract:1")
    assert (info.value.expected, info.value.actual) == (obj.sha256, actual)
    assert blob_store.sha256(obj.key) == actual


# ------------------------------------------------------------------------------------- Registry
@pytest.mark.parametrize("backend", ["sqlite_registry", "remote_registry"])
def test_verify_reports_both_digests_from_the_store(backend: str, request: pytest.FixtureRequest) -> None:
    """`Registry.verify` compares digests the blob store computed (no sha256 read out of a message)."""
    from sklearn.linear_model import Ridge

    reg = request.getfixturevalue(backend)
    mv = reg.register(_name(), Ridge().fit(np.arange(8.0).reshape(4, 2), [0.0, 1.0, 2.0, 3.0]))
    assert reg.verify(mv.ref).sha256_actual == mv.artifact.sha256
    if backend == "sqlite_registry":
        path = Path(reg._blobs.root) / mv.artifact.key
    else:
        path = request.getfixturevalue("server").home / "artifacts" / mv.artifact.key
    path.write_bytes(b"bit rot")
    result = reg.verify(mv.ref)
    assert not result.ok and result.sha256_expected == mv.artifact.sha256
    assert result.sha256_actual == hashlib.sha256(b"bit rot").hexdigest()
    path.unlink()
    result = reg.verify(mv.ref)
    assert not result.ok and result.sha256_actual is None and "missing" in result.detail
