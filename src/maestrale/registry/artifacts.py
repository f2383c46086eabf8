"""Content-addressed artifact storage over fsspec: `file://`, `abfs://` (Azure Blob), `s3://`, `gs://`.

Objects live at `<storage_url>/objects/sha256/<aa>/<digest>`: identical bytes are stored once, a
key never changes meaning, and a half-finished upload can never be mistaken for a version.

>>> store = ArtifactStore("file:///tmp/doc-artifacts")
>>> store.put_bytes(b"model").sha256[:8]
'e2b9c5d1'
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from maestrale.errors import ArtifactMissing, BackendUnavailable, ConfigError, IntegrityError

CHUNK = 1 << 20
_PROTOCOL_EXTRAS = {"abfs": "azure", "abfss": "azure", "az": "azure", "s3": "s3", "gs": "gcs", "gcs": "gcs"}


@dataclass(frozen=True, slots=True)
class StoredObject:
    """An object written to the store."""

    key: str
    sha256: str
    size: int


def object_key(sha256: str) -> str:
    """The key of the object holding bytes whose digest is `sha256`."""
    return f"objects/sha256/{sha256[:2]}/{sha256}"


class ArtifactStore:
    """Reads and writes immutable, content-addressed objects under one storage URL (a `BlobStore`)."""

    def __init__(self, url: str, storage_options: dict[str, Any] | None = None) -> None:
        import fsspec

        self.url = url.rstrip("/")
        proto = self.url.split("://", 1)[0]
        try:
            if proto in ("abfs", "abfss", "az"):
                from maestrale.registry.azure import azure_filesystem

                self.fs = azure_filesystem(storage_options or {})
                self.root = self.fs._strip_protocol(self.url)
            else:
                self.fs, self.root = fsspec.core.url_to_fs(self.url, **(storage_options or {}))
        except ImportError as exc:
            extra = _PROTOCOL_EXTRAS.get(proto, proto)
            raise ConfigError(
                f"MAESTRALE_STORAGE_URL={self.url!r} needs an optional package ({exc}): "
                f"pip install 'maestrale[{extra}]'"
            ) from None
        except ValueError as exc:
            raise ConfigError(f"MAESTRALE_STORAGE_URL={self.url!r} is not usable: {exc}") from None
        self.root = self.root.rstrip("/")
        self._local = self.fs.protocol in ("file", "local") or "file" in tuple(self.fs.protocol)

    def _path(self, key: str) -> str:
        return f"{self.root}/{key}"

    def check(self) -> None:
        """Raise `BackendUnavailable` unless the store answers (used at start and by /readyz)."""
        try:
            if self._local:
                os.makedirs(self.root, exist_ok=True)
                return
            bucket = self.root.split("/", 1)[0]
            # a listing, not exists(): adlfs' exists() swallows connection errors and answers False
            try:
                self.fs.ls(bucket, refresh=True)
            except FileNotFoundError:
                self.fs.mkdir(bucket)  # the container/bucket: Maestrale owns its prefix, so it may create it
                self.fs.ls(bucket, refresh=True)
        except FileNotFoundError:
            raise BackendUnavailable(
                f"storage {self.url!r}: the container or bucket does not exist and could not be created; "
                "create it, or check the credentials in MAESTRALE_STORAGE_OPTIONS"
            ) from None
        except Exception as exc:
            raise BackendUnavailable(
                f"cannot reach storage {self.url!r}: {type(exc).__name__}: {exc}"
            ) from None

    def put_bytes(self, data: bytes) -> StoredObject:
        """Store `data` under its digest; rewrites an object whose bytes no longer match (a repair).

        >>> store.put_bytes(b"model").size  # doctest: +SKIP
        5
        """
        digest = hashlib.sha256(data).hexdigest()
        key = object_key(digest)
        path = self._path(key)
        try:
            if self._local:
                if not self._intact_local(path, digest, len(data)):
                    self._replace_local(path, [data])
            else:
                self.fs.pipe_file(path, data)  # see `_intact_local` for why remote objects are rewritten
        except OSError as exc:
            raise BackendUnavailable(f"cannot write {key} to {self.url!r}: {exc}") from None
        return StoredObject(key, digest, len(data))

    def put_file(self, fh: IO[bytes]) -> StoredObject:
        """Store a seekable file (e.g. a spooled HTTP upload) without holding it in memory."""
        sha = hashlib.sha256()
        size = 0
        fh.seek(0)
        while block := fh.read(CHUNK):
            sha.update(block)
            size += len(block)
        digest = sha.hexdigest()
        key = object_key(digest)
        path = self._path(key)
        fh.seek(0)
        chunks = iter(lambda: fh.read(CHUNK), b"")
        try:
            if self._local:
                if not self._intact_local(path, digest, size):
                    self._replace_local(path, chunks)
            else:
                with self.fs.open(path, "wb") as out:  # one PUT (or a committed multipart upload)
                    for block in chunks:
                        out.write(block)
        except OSError as exc:
            raise BackendUnavailable(f"cannot write {key} to {self.url!r}: {exc}") from None
        return StoredObject(key, digest, size)

    @staticmethod
    def _intact_local(path: str, digest: str, size: int) -> bool:
        """True when `path` already holds exactly these bytes (then only its mtime is refreshed).

        A size check first (a truncated or padded object costs one stat), the hash only when sizes
        match. An intact object gets a fresh mtime, so `gc` cannot remove it between this upload and
        the version that will reference it. Remote objects are always rewritten instead: hashing
        one would download as many bytes as the PUT uploads, and the PUT also refreshes its age.
        """
        try:
            if os.path.getsize(path) != size:
                return False
            sha = hashlib.sha256()
            with open(path, "rb") as fh:
                while block := fh.read(CHUNK):
                    sha.update(block)
        except FileNotFoundError:
            return False
        if sha.hexdigest() != digest:
            return False
        os.utime(path)
        return True

    @staticmethod
    def _replace_local(path: str, chunks: Any) -> None:
        # write-then-rename: readers see the old object or the new one, never a partial one
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as out:
                for block in chunks:
                    out.write(block)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def size(self, key: str) -> int:
        """Bytes of a stored object; `ArtifactMissing` (404) when there is none."""
        try:
            return int(self.fs.size(self._path(key)))
        except FileNotFoundError:
            raise ArtifactMissing(f"object {key} not found in {self.url}; upload it first") from None

    def iter_chunks(self, key: str, what: str) -> Iterator[bytes]:
        """Stream an object in 1 MiB chunks (the reader checks the digest at the end)."""
        try:
            fh = self.fs.open(self._path(key), "rb")
        except FileNotFoundError:
            raise ArtifactMissing(
                f"artifact of {what} is missing: object {key} not found in {self.url}"
            ) from None
        with fh:
            while block := fh.read(CHUNK):
                yield block

    def get_bytes(self, key: str, sha256: str, what: str) -> bytes:
        """Read an object and check its digest; `what` names the version in error messages."""
        path = self._path(key)
        try:
            if self._local:
                with open(path, "rb") as fh:
                    data = fh.read()
            else:
                data = self.fs.cat_file(path)
        except FileNotFoundError:
            raise ArtifactMissing(
                f"artifact of {what} is missing: object {key} not found in {self.url}; "
                "restore it from backup or archive the version"
            ) from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {key} from {self.url!r}: {exc}") from None
        actual = hashlib.sha256(data).hexdigest()
        if actual != sha256:
            raise IntegrityError(
                f"artifact of {what} is corrupted: object {key} has sha256 {actual}, "
                f"registered {sha256}; refusing to load it",
                expected=sha256,
                actual=actual,
            )
        return data

    def sha256(self, key: str) -> str:
        """The digest of the bytes stored under `key` now, streamed (`ArtifactMissing` when absent).

        >>> store.sha256(store.put_bytes(b"model").key)[:8]  # doctest: +SKIP
        'e2b9c5d1'
        """
        sha = hashlib.sha256()
        try:
            with self.fs.open(self._path(key), "rb") as fh:
                while block := fh.read(CHUNK):
                    sha.update(block)
        except FileNotFoundError:
            raise ArtifactMissing(f"object {key} not found in {self.url}") from None
        except OSError as exc:
            raise BackendUnavailable(f"cannot read {key} from {self.url!r}: {exc}") from None
        return sha.hexdigest()

    def exists(self, key: str) -> bool:
        """True when the object is present."""
        return bool(self.fs.exists(self._path(key)))

    def delete(self, key: str) -> None:
        """Remove an object (only `gc` does this, for unreferenced objects)."""
        self.fs.rm_file(self._path(key))

    def iter_objects(self) -> Iterator[tuple[str, datetime | None]]:
        """Yield `(key, modified_at)` for every stored object."""
        base = self._path("objects")
        try:
            found = self.fs.find(base, detail=True)
        except FileNotFoundError:
            return
        for path, info in found.items():
            # leftover ".tmp-" files of a crashed local write are listed too, so gc removes them
            yield path[len(self.root) + 1 :], _mtime(info)


def _mtime(info: dict[str, Any]) -> datetime | None:
    # each fsspec backend names the modification time differently
    for field in ("mtime", "last_modified", "LastModified", "updated", "created"):
        value = info.get(field)
        if value is None:
            continue
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, tz=UTC)
        if isinstance(value, datetime):
            return value if value.tzinfo else value.replace(tzinfo=UTC)
        if isinstance(value, str):
            try:
                parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None
