"""The registry over REST: the methods of `SqlStore` and `ArtifactStore`, spoken to `maestrale server`."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

import httpx
import urllib3

from maestrale.errors import (
    ArtifactMissing,
    BackendUnavailable,
    IntegrityError,
    InvalidInput,
    MaestraleError,
    NoHoldout,
    error_from_code,
)
from maestrale.refs import ModelRef, validate_name
from maestrale.registry.artifacts import StoredObject, object_key
from maestrale.registry.types import (
    AliasChange,
    ArtifactInfo,
    ModelVersion,
    Page,
    RegisteredModel,
    VersionCreate,
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A GET's answer: what callers read of an `httpx.Response` (status, headers, body)."""

    status_code: int
    headers: Mapping[str, str]  # case-insensitive (urllib3's HTTPHeaderDict)
    content: bytes

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)


def _query(params: Mapping[str, Any] | None) -> str:
    """A query string as httpx writes it: booleans as true/false, None left out."""
    if not params:
        return ""
    pairs = [
        (k, ("true" if v else "false") if isinstance(v, bool) else v)
        for k, v in params.items()
        if v is not None
    ]
    return "?" + urlencode(pairs) if pairs else ""


class ReadPool:
    """Keep-alive GETs to one server (urllib3, thread-safe): `ReadPool(url, headers, 60).get(path)`."""

    def __init__(self, base_url: str, headers: Mapping[str, str], timeout: float) -> None:
        self.base_url, self.headers = base_url, dict(headers)
        # as httpx's HTTPTransport(retries=2): connection attempts are retried, requests never are
        retries = urllib3.Retry(
            total=None, connect=2, read=0, redirect=0, status=0, other=0, raise_on_status=False
        )
        self.pool = urllib3.PoolManager(maxsize=8, retries=retries, timeout=urllib3.Timeout(timeout))

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Reply:
        r = self.pool.request(
            "GET",
            self.base_url + path + _query(params),
            headers=self.headers,
            redirect=False,
            preload_content=True,
        )
        return Reply(r.status, r.headers, r.data)


class RemoteSession:
    """An HTTP session that turns server errors back into Maestrale's typed errors."""

    def __init__(self, base_url: str, token: str | None = None, timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = timeout
        self.client = self._connect()

    def _connect(self) -> httpx.Client:
        self.reads = ReadPool(self.base_url, self._headers, self._timeout)
        self._pid = os.getpid()
        return httpx.Client(
            base_url=self.base_url,
            headers=self._headers,
            timeout=self._timeout,
            transport=httpx.HTTPTransport(retries=2),
        )

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response | Reply:
        """Send a request; raise the typed error the server reported, or BackendUnavailable.

        A GET goes through `reads` (urllib3): reads are what dashboards and services repeat, and
        httpx's request and response objects cost 0.5-0.9 ms a call on a 64 KB page of search
        results, more than the server's work. Writes and uploads keep httpx.
        """
        if self._pid != os.getpid():
            # forked: the pool's keep-alive sockets are the parent's; a fresh pool (the old one is
            # left alone: closing it would shut the parent's connections down)
            self.client = self._connect()
        try:
            if method == "GET" and kwargs.keys() <= {"params"}:
                resp: httpx.Response | Reply = self.reads.get(path, kwargs.get("params"))
            else:
                resp = self.client.request(method, path, **kwargs)
        except (httpx.TransportError, urllib3.exceptions.HTTPError) as exc:
            raise BackendUnavailable(
                f"cannot reach the Maestrale server at {self.base_url} ({type(exc).__name__}: {exc}); "
                "is `maestrale server` running and MAESTRALE_REGISTRY_URL right?"
            ) from None
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                raise error_from_code(err["code"], err["message"], err)
            except (ValueError, KeyError, TypeError):
                raise MaestraleError(  # noqa: B904 - the decoding failure itself is not the story
                    f"server answered {resp.status_code} to {method} {path}: {resp.text[:300]}"
                )
        return resp

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        """Send a request and decode its JSON body."""
        return self.request(method, path, **kwargs).json()


def _q(part: str) -> str:
    return quote(part, safe="")


class RemoteStore:
    """Registry metadata through the REST API: a `RegistryStore`, as `SqlStore` is."""

    remote = True  # the server owns the database and the storage

    def __init__(self, session: RemoteSession) -> None:
        self.s = session

    def referenced_keys(self) -> set[str]:
        """Not available over REST: `gc` compares the database with the storage, on the server's side."""
        raise InvalidInput("gc runs next to the storage: run `maestrale gc` where the server's settings are")

    def get_model(self, name: str) -> RegisteredModel:
        return RegisteredModel.model_validate(self.s.json("GET", f"/api/v1/models/{_q(validate_name(name))}"))

    def list_models(
        self,
        limit: int = 100,
        page_token: str | None = None,
        name_like: str | None = None,
        include_archived: bool = False,
    ) -> Page[RegisteredModel]:
        params = {
            "limit": limit,
            "page_token": page_token,
            "name_like": name_like,
            "include_archived": include_archived,
        }
        data = self.s.json("GET", "/api/v1/models", params={k: v for k, v in params.items() if v is not None})
        return Page[RegisteredModel].model_validate(data)

    def set_model_tag(self, name: str, key: str, value: str | None) -> None:
        path = f"/api/v1/models/{_q(name)}/tags/{_q(key)}"
        if value is None:
            self.s.request("DELETE", path)
        else:
            self.s.request("PUT", path, json={"value": value})

    # the server records its caller's token as the actor: `actor` is for the embedded store
    def archive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None:
        self.s.request("POST", f"/api/v1/models/{_q(validate_name(name))}/archive", json={"reason": reason})

    def unarchive_model(self, name: str, actor: str | None = None, reason: str | None = None) -> None:
        self.s.request("POST", f"/api/v1/models/{_q(validate_name(name))}/unarchive", json={"reason": reason})

    def create_version(
        self, name: str, new: VersionCreate, trusted_types: list[str] | None = None
    ) -> ModelVersion:
        headers = {"content-type": "application/json"}
        if trusted_types:  # the server vets skops archives; these are the caller's own classes
            headers["X-Maestrale-Trusted-Types"] = " ".join(trusted_types)
        data = self.s.json(
            "POST",
            f"/api/v1/models/{_q(validate_name(name))}/versions",
            content=new.model_dump_json(),
            headers=headers,
        )
        return ModelVersion.model_validate(data)

    def holdout(self, ref: str | ModelRef) -> dict[str, Any] | None:
        from maestrale.registry.holdout import NONE_PREFIX, check_holdout

        r = ModelRef.parse(ref)
        version = r.version if r.version is not None else self.get_version(r).version
        try:
            doc = self.s.json("GET", f"/api/v1/models/{_q(r.name)}/versions/{version}/holdout")
        except NoHoldout as exc:
            if str(exc).startswith(NONE_PREFIX):
                return None  # the server's answer for a version that never had one
            raise
        try:
            return check_holdout(doc)
        except ValueError as exc:
            raise NoHoldout(
                f"the server sent a malformed holdout series for {r.name}:{version}: {exc}"
            ) from None

    def get_version(self, ref: str | ModelRef) -> ModelVersion:
        r = ModelRef.parse(ref)
        if r.version is not None:
            path = f"/api/v1/models/{_q(r.name)}/versions/{r.version}"
        else:
            path = f"/api/v1/models/{_q(r.name)}/aliases/{_q(r.alias or '')}"
        return ModelVersion.model_validate_json(self.s.request("GET", path).content)

    def artifact_of(self, ref: str | ModelRef) -> tuple[str, int, ArtifactInfo]:
        mv = self.get_version(ref)
        return mv.name, mv.version, mv.artifact

    def fetch_artifact(self, ref: str | ModelRef) -> tuple[str, int, ArtifactInfo, bytes]:
        """Resolve a reference and download its artifact in one request; the digest is checked here."""
        r = ModelRef.parse(ref)
        where = f"versions/{r.version}" if r.version is not None else f"aliases/{_q(r.alias or '')}"
        resp = self.s.request("GET", f"/api/v1/models/{_q(r.name)}/{where}/artifact")
        h = resp.headers
        version = int(h["x-model-version"])
        info = ArtifactInfo(
            key=object_key(h["x-content-sha256"]),
            sha256=h["x-content-sha256"],
            size=len(resp.content),
            format=h["x-artifact-format"],
            flavor=h["x-artifact-flavor"],
        )
        return r.name, version, info, verified(resp.content, info.key, info.sha256, f"{r.name}:{version}")

    def list_versions(
        self,
        name: str,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = True,
        full: bool = False,
    ) -> Page[ModelVersion]:
        params: dict[str, Any] = {"limit": limit, "include_archived": include_archived, "full": full}
        if page_token:
            params["page_token"] = page_token
        resp = self.s.request("GET", f"/api/v1/models/{_q(validate_name(name))}/versions", params=params)
        return Page[ModelVersion].model_validate_json(resp.content)

    def search_versions(
        self,
        filter: str | None = None,
        order_by: str | None = None,
        limit: int = 100,
        page_token: str | None = None,
        include_archived: bool = False,
        full: bool = False,
    ) -> Page[ModelVersion]:
        params = {
            "filter": filter,
            "order_by": order_by,
            "limit": limit,
            "page_token": page_token,
            "include_archived": include_archived,
            "full": full,
        }
        resp = self.s.request(
            "GET", "/api/v1/versions", params={k: v for k, v in params.items() if v is not None}
        )
        return Page[ModelVersion].model_validate_json(resp.content)

    def set_version_tag(self, ref: str, key: str, value: str | None) -> None:
        r = ModelRef.parse(ref)
        number = r.version if r.version is not None else self.get_version(r).version
        path = f"/api/v1/models/{_q(r.name)}/versions/{number}/tags/{_q(key)}"
        if value is None:
            self.s.request("DELETE", path)
        else:
            self.s.request("PUT", path, json={"value": value})

    def archive_version(self, ref: str, actor: str | None = None, reason: str | None = None) -> ModelVersion:
        return self._archiving(ref, "archive", reason)

    def unarchive_version(
        self, ref: str, actor: str | None = None, reason: str | None = None
    ) -> ModelVersion:
        return self._archiving(ref, "unarchive", reason)

    def _archiving(self, ref: str, action: str, reason: str | None) -> ModelVersion:
        r = ModelRef.parse(ref)
        number = r.version if r.version is not None else self.get_version(r).version
        path = f"/api/v1/models/{_q(r.name)}/versions/{number}/{action}"
        return ModelVersion.model_validate(self.s.json("POST", path, json={"reason": reason}))

    def set_alias(
        self, name: str, alias: str, version: int, actor: str | None = None, reason: str | None = None
    ) -> AliasChange:
        data = self.s.json(
            "PUT",
            f"/api/v1/models/{_q(validate_name(name))}/aliases/{_q(alias)}",
            json={"version": version, "reason": reason},
        )
        return AliasChange.model_validate(data)

    def delete_alias(self, name: str, alias: str, actor: str | None = None) -> AliasChange:
        return AliasChange.model_validate(
            self.s.json("DELETE", f"/api/v1/models/{_q(validate_name(name))}/aliases/{_q(alias)}")
        )

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        params = {"alias": alias} if alias else {}
        data = self.s.json("GET", f"/api/v1/models/{_q(validate_name(name))}/alias-history", params=params)
        return [AliasChange.model_validate(x) for x in data]


class RemoteArtifacts:
    """Artifact upload and verified download through the REST API (mirrors `ArtifactStore`)."""

    def __init__(self, session: RemoteSession) -> None:
        self.s = session

    def check(self) -> None:
        self.s.request("GET", "/readyz")

    def sha256(self, key: str) -> str:
        """The digest of the bytes the server holds under `key` (downloaded and hashed here)."""
        digest = key.rsplit("/", 1)[-1]
        try:
            data = self.s.request("GET", f"/api/v1/artifacts/{_q(digest)}").content
        except ArtifactMissing:
            raise ArtifactMissing(f"object {key} is missing on the server {self.s.base_url}") from None
        except IntegrityError as exc:
            if exc.actual is None:  # a server too old to say which digest it found
                raise
            return exc.actual  # the server checked a small object before sending it and says what it found
        return hashlib.sha256(data).hexdigest()

    def put_bytes(self, data: bytes) -> StoredObject:
        digest = hashlib.sha256(data).hexdigest()
        out = self.s.json(
            "POST",
            "/api/v1/artifacts",
            content=data,
            headers={"content-type": "application/octet-stream", "x-content-sha256": digest},
        )
        return StoredObject(out["key"], out["sha256"], out["size"])

    def get_bytes(self, key: str, sha256: str, what: str) -> bytes:
        try:
            data = self.s.request("GET", f"/api/v1/artifacts/{sha256}").content
        except ArtifactMissing:
            raise ArtifactMissing(f"artifact of {what} is missing on the server: object {key}") from None
        return verified(data, key, sha256, what)


def verified(data: bytes, key: str, sha256: str, what: str) -> bytes:
    """`data` if its digest is `sha256` (checked on the client: end to end, not only at the server)."""
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        raise IntegrityError(
            f"artifact of {what} is corrupted: object {key} has sha256 {actual}, "
            f"registered {sha256}; refusing to load it",
            expected=sha256,
            actual=actual,
        )
    return data
