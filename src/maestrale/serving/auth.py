"""Bearer tokens on `maestrale serve`: from the registry's token store, or from a mounted token file.

>>> resolve_auth("auto", "0.0.0.0"), resolve_auth("auto", "127.0.0.1"), resolve_auth("on", "::1")
(True, False, True)
>>> source = token_source(settings)  # the tokens table of MAESTRALE_DATABASE_URL  # doctest: +SKIP
>>> source.describe()  # doctest: +SKIP
'the token store in postgresql+psycopg://maestrale:***@db:5432/maestrale'

`MAESTRALE_SERVE_AUTH` (`maestrale serve --auth`): `on`, `off`, or `auto` (the default) = on whenever
the server listens beyond loopback. With auth on, the V2 metadata routes need a `read` token and
inference (`…/infer`, `/models/{name}/predict`) a `predict` token; `/v2/health/live|ready` and
`/metrics` stay open, for probes and Prometheus.

Tokens come from the tokens table of `MAESTRALE_DATABASE_URL` (the same tokens as the REST API,
created with `maestrale token create NAME --scope predict`, revoked within 5 s), or from a file
(`MAESTRALE_SERVE_TOKEN_FILE`, `--token-file`): one token per line, `#` starts a comment, and a
comment after a token names it (`mst_… # pv-forecaster`; unnamed tokens are `token-file:` and the
first 8 hex digits of their sha256). File tokens carry the `predict` scope. Only their sha256
hashes are kept, and the file is re-read when it changes (checked at most once a second), so a
rotated Kubernetes Secret takes effect without a restart.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from maestrale.config import Settings
from maestrale.errors import BackendUnavailable, ConfigError, Forbidden, Unauthorized
from maestrale.tokens import TokenCache, TokenInfo, hash_token, list_tokens

log = logging.getLogger("maestrale.serving.auth")
FILE_SCOPE = "predict"
MIN_TOKEN_LENGTH = 16  # a guessable secret in a file is refused, not served
RECHECK_S = 1.0  # how often a token file's stat is compared with the last one read
BEARER = HTTPBearer(auto_error=False, description="A token with scope `predict` (`read` for metadata).")


def resolve_auth(mode: str, host: str) -> bool:
    """Whether a server listening on `host` requires tokens under `MAESTRALE_SERVE_AUTH=mode`.

    `auto` is off only on a loopback address (127.0.0.0/8, ::1, localhost): a wildcard (0.0.0.0,
    ::), an interface address or a host name reaches beyond this machine.
    """
    if mode not in ("auto", "on", "off"):
        raise ConfigError(f"MAESTRALE_SERVE_AUTH must be auto, on or off, not {mode!r}")
    if mode != "auto":
        return mode == "on"
    if host.strip("[]").lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return True  # a host name: it may resolve to anything


class TokenSource(Protocol):
    """Where a model server checks bearer tokens."""

    def get(self, token: str) -> TokenInfo | None:
        """The token's info, or None when it is unknown or revoked."""
        ...

    def describe(self) -> str:
        """Where the tokens come from, for the start-up line (never a secret)."""
        ...


class StoreTokens:
    """The tokens table of the registry's database, through the REST API's `TokenCache`."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.cache = TokenCache(database_url)

    def get(self, token: str) -> TokenInfo | None:
        """Cached for 5 s; a database that does not answer is a 503, not an unexplained 500."""
        try:
            return self.cache.get(token)
        except Exception as exc:
            log.exception("token store unreachable")
            raise BackendUnavailable(
                f"cannot check the bearer token: the token store does not answer ({type(exc).__name__}); "
                "retry later"
            ) from None

    def describe(self) -> str:
        from sqlalchemy.engine import make_url

        return f"the token store in {make_url(self.database_url).render_as_string(hide_password=True)}"

    def usable(self) -> int:
        """Active tokens that may call inference (0 means every request will get a 401)."""
        return sum(1 for t in list_tokens(self.database_url) if not t.revoked and t.allows(FILE_SCOPE))


class TokenFile:
    """Tokens in a file (a mounted Secret), kept as sha256 hashes and re-read when the file changes.

    >>> TokenFile(Path("/etc/maestrale/serve-tokens")).get("mst_…").name  # doctest: +SKIP
    'pv-forecaster'
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._checked = time.monotonic()
        try:
            self._stamp = _stamp(self.path)
            self._tokens = _read_tokens(self.path)
        except OSError as exc:
            raise ConfigError(
                f"cannot read the token file {self.path} ({exc.strerror or exc}): mount the Secret "
                "there or fix MAESTRALE_SERVE_TOKEN_FILE / --token-file"
            ) from None
        if not self._tokens:
            raise ConfigError(
                f"the token file {self.path} holds no token: write one per line, at least 32 random "
                "characters each (e.g. from `openssl rand -base64 32`), a name after # if you like"
            )

    def __len__(self) -> int:
        return len(self._tokens)

    def get(self, token: str) -> TokenInfo | None:
        """The token's info (scope `predict`), or None; re-reads the file first if it changed."""
        self._refresh()
        return self._tokens.get(hash_token(token))

    def describe(self) -> str:
        return f"the token file {self.path} ({len(self._tokens)} token(s), re-read when it changes)"

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < RECHECK_S:
            return
        with self._lock:
            if now - self._checked < RECHECK_S:
                return
            self._checked = now
            try:
                stamp = _stamp(self.path)
                if stamp == self._stamp:
                    return
                tokens = _read_tokens(self.path)
            except (OSError, ConfigError) as exc:
                # mid-rotation or a bad edit: keep serving with the tokens last read
                log.warning("token file %s not re-read, keeping %d token(s): %s", self.path, len(self), exc)
                return
            self._stamp, self._tokens = stamp, tokens
            log.info("token file %s re-read: %d token(s)", self.path, len(tokens))
            if not tokens:
                log.warning("token file %s holds no token: every inference request gets a 401", self.path)


def _stamp(path: Path) -> tuple[int, int, int]:
    # follows symlinks: a Kubernetes Secret update swaps the `..data` link, so the inode changes
    st = os.stat(path)
    return st.st_ino, st.st_mtime_ns, st.st_size


def _read_tokens(path: Path) -> dict[str, TokenInfo]:
    """sha256 → info of each token in `path`; ConfigError naming the line of a malformed one."""
    created = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    tokens: dict[str, TokenInfo] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        secret, _, comment = line.partition("#")
        secret = secret.strip()
        if not secret:
            continue
        if len(secret.split()) > 1:
            raise ConfigError(
                f"line {number} of the token file {path} holds more than one word: write one token per "
                "line, and a name after # (e.g. `mst_… # pv-forecaster`)"
            )
        if len(secret) < MIN_TOKEN_LENGTH:
            raise ConfigError(
                f"line {number} of the token file {path} holds a token of {len(secret)} characters: use "
                f"at least {MIN_TOKEN_LENGTH} random ones (e.g. from `openssl rand -base64 32`)"
            )
        digest = hash_token(secret)
        name = comment.strip()[:128] or f"token-file:{digest[:8]}"
        tokens[digest] = TokenInfo(0, name, FILE_SCOPE, "", created, False)
    return tokens


def token_source(settings: Settings) -> TokenSource:
    """The token file when `serve_token_file` is set, else the token store of `database_url`.

    Raises ConfigError when there is none: a server that reads the registry over REST
    (`MAESTRALE_REGISTRY_URL`) has no database to check tokens in.
    """
    if settings.serve_token_file is not None:
        return TokenFile(settings.serve_token_file)
    if settings.registry_url:
        raise ConfigError(
            "model server auth is on but there is no token source: this server reads the registry over "
            f"REST ({settings.registry_url}), so it cannot check tokens in the database; give it a token "
            "file (--token-file / MAESTRALE_SERVE_TOKEN_FILE, one token per line), or --auth off on a "
            "trusted network"
        )
    assert settings.database_url
    return StoreTokens(settings.database_url)


def describe(source: TokenSource | None) -> str:
    """The start-up line: whether auth is on and where tokens come from."""
    if source is None:
        return "auth off: anyone who reaches the port may call inference (--auth on to require tokens)"
    text = f"auth on: bearer tokens from {source.describe()}; inference needs scope predict"
    if isinstance(source, StoreTokens) and not source.usable():
        text += (
            " (no active token allows it yet: create one with `maestrale token create NAME --scope predict`)"
        )
    return text


def authorize(source: TokenSource | None, token: str | None, scope: str) -> TokenInfo | None:
    """The info of `token` (a bearer token, None when absent) if it allows `scope`: REST and gRPC's check.

    None when auth is off (`source` None); `Unauthorized` (401) without a token or with an unknown or
    revoked one, `Forbidden` (403) when its scope is too narrow.
    """
    if source is None:
        return None
    if token is None or not token.strip():
        raise Unauthorized(
            "missing bearer token: send 'Authorization: Bearer <token>' (a token with scope "
            f"{scope}: `maestrale token create NAME --scope {scope}`)"
        )
    info = source.get(token.strip())
    if info is None:
        raise Unauthorized(
            f"unknown or revoked token; ask for a token with scope {scope} "
            f"(`maestrale token create NAME --scope {scope}`)"
        )
    if not info.allows(scope):
        raise Forbidden(f"token {info.name!r} has scope {info.scope!r}; this operation needs {scope!r}")
    return info


def require(scope: str) -> Callable[..., TokenInfo | None]:
    """A dependency: the caller's token info (None when auth is off), or 401/403 in the app's envelope."""

    def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(BEARER)
    ) -> TokenInfo | None:
        source: TokenSource | None = request.app.state.auth
        return authorize(source, credentials.credentials if credentials else None, scope)

    return dependency
