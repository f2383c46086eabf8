"""Bearer tokens for the REST API and the model servers: random secrets stored only as sha256, with scopes.

Scopes nest: `read` ⊂ `predict` ⊂ `write` ⊂ `admin`. `predict` is a forecasting service's token: it
reads the registry, calls model servers (`maestrale serve`) and logs predictions and actuals, but
registers nothing and moves no alias.

>>> token = create_token("sqlite:////tmp/doc-registry.db", "pv-forecaster", "predict")  # doctest: +SKIP
>>> token[:4]  # doctest: +SKIP
'mst_'
>>> TokenCache("sqlite:////tmp/doc-registry.db").get(token).allows("read")  # doctest: +SKIP
True

Token lookups by servers go through `TokenCache`: a revoked token stops working within `CACHE_TTL_S`.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, insert, select, update

from maestrale.errors import InvalidInput, NotFound
from maestrale.platform.db import ensure_schema, writer
from maestrale.platform.tables import metadata

SCOPES = ("read", "predict", "write", "admin")  # each includes the ones before it
PREFIX = "mst_"
CACHE_TTL_S = 5.0

# The tokens' own table (on the shared metadata; the one Alembic history creates it).
tokens = Table(
    "tokens",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("created_by", String(128), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
    Column("revoked_by", String(128), nullable=True),  # the audit trail's actor (NULL before 0008)
    Index("ix_tokens_created_at", "created_at"),
)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token may do, without its secret."""

    id: int
    name: str
    scope: str
    prefix: str
    created_at: datetime
    revoked: bool

    def allows(self, needed: str) -> bool:
        """True if this token's scope includes `needed`."""
        return SCOPES.index(self.scope) >= SCOPES.index(needed)


def hash_token(token: str) -> str:
    """sha256 hex of a token: tokens are 256-bit random, so a fast hash is enough (no salt needed)."""
    return hashlib.sha256(token.encode()).hexdigest()


def _check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise InvalidInput(f"unknown scope {scope!r}; choose one of {', '.join(SCOPES)}")
    return scope


def create_token(database_url: str, name: str, scope: str = "read", created_by: str | None = None) -> str:
    """Create a token and return its secret (shown once; only its hash is stored)."""
    _check_scope(scope)
    if not name or len(name) > 128:
        raise InvalidInput("token name must be 1-128 characters, e.g. 'training-worker'")
    token = PREFIX + secrets.token_urlsafe(32)
    engine = writer(ensure_schema(database_url))
    with engine.begin() as conn:
        conn.execute(
            insert(tokens).values(
                name=name,
                token_hash=hash_token(token),
                prefix=token[:10],
                scopes=scope,
                created_at=datetime.now(UTC),
                created_by=created_by,
            )
        )
    return token


def lookup_token(database_url: str, token: str) -> TokenInfo | None:
    """The token's info if it exists and is not revoked, else None."""
    engine = ensure_schema(database_url)
    with engine.connect() as conn:
        row = conn.execute(select(tokens).where(tokens.c.token_hash == hash_token(token))).first()
    if row is None or row.revoked_at is not None:
        return None
    return TokenInfo(row.id, row.name, row.scopes, row.prefix, row.created_at, False)


def list_tokens(database_url: str) -> list[TokenInfo]:
    """Every token (secrets are never stored, so never listed)."""
    engine = ensure_schema(database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(tokens).order_by(tokens.c.id)).all()
    return [TokenInfo(r.id, r.name, r.scopes, r.prefix, r.created_at, r.revoked_at is not None) for r in rows]


class TokenCache:
    """Maps token hashes to their info for a short time, so each request costs no SQL round trip.

    Shared by the REST API and `maestrale serve`; unknown tokens are cached too (as None), so a
    flood of guesses costs one query per guess per `CACHE_TTL_S`, and the cache never outgrows
    10,000 entries.
    """

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._entries: dict[str, tuple[float, TokenInfo | None]] = {}
        self._lock = threading.Lock()

    def cached(self, token: str) -> tuple[bool, TokenInfo | None]:
        """(True, info) when the cache still holds this token's answer, else (False, None); no SQL.

        >>> TokenCache("sqlite://").cached("mst_x")
        (False, None)
        """
        hit = self._entries.get(hash_token(token))  # one dict read: atomic under the GIL
        if hit and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def get(self, token: str) -> TokenInfo | None:
        """The token's info, or None if unknown/revoked."""
        known, info = self.cached(token)
        if known:
            return info
        key, now = hash_token(token), time.monotonic()
        info = lookup_token(self.database_url, token)
        with self._lock:
            if len(self._entries) > 10_000:  # bound memory against token-guessing floods
                self._entries.clear()
            self._entries[key] = (now + CACHE_TTL_S, info)
        return info


def revoke_token(database_url: str, token_id: int, revoked_by: str | None = None) -> None:
    """Revoke a token by id; servers stop accepting it within their cache TTL (5 s).

    `revoked_by` is who did it, for the audit trail. Revoking a revoked token changes nothing (its
    first revocation stays the recorded one).
    """
    if revoked_by is not None and len(revoked_by) > 128:
        raise InvalidInput("revoked_by must be at most 128 characters")
    engine = writer(ensure_schema(database_url))
    with engine.begin() as conn:
        found = conn.execute(select(tokens.c.id).where(tokens.c.id == token_id)).first()
        conn.execute(
            update(tokens)
            .where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None))
            .values(revoked_at=datetime.now(UTC), revoked_by=revoked_by)
        )
    if found is None:
        raise NotFound(f"token {token_id} not found; list them with `maestrale token list`")


def _token_event(r: Any, action: str) -> dict[str, Any]:
    when = r.created_at if action == "created" else r.revoked_at
    return {
        "time": when if when.tzinfo else when.replace(tzinfo=UTC),  # SQLite hands back naive UTC
        "kind": "token",
        "model": None,
        "version": None,
        "actor": r.created_by if action == "created" else r.revoked_by,
        "reason": None,
        "details": {"action": action, "id": r.id, "name": r.name, "scope": r.scopes, "prefix": r.prefix},
    }


def token_events(
    database_url: str,
    *,
    actor: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Token creations and revocations, newest first, `limit` at most (the audit trail's `token` kind).

    Entries: `{time, kind: "token", model: None, version: None, actor, reason: None, details}`, details
    holding `action` (created | revoked), the token's `id`, `name`, `scope` and `prefix` (never
    the secret). `since` is inclusive, `until` exclusive.

    >>> [e["details"]["action"] for e in token_events(url, limit=2)]  # doctest: +SKIP
    ['revoked', 'created']
    """
    engine = ensure_schema(database_url)
    out: list[dict[str, Any]] = []
    with engine.connect() as conn:
        for action, at, by in (
            ("created", tokens.c.created_at, tokens.c.created_by),
            ("revoked", tokens.c.revoked_at, tokens.c.revoked_by),
        ):
            q = select(tokens).where(at.is_not(None))
            # UTC: SQLite compares the stored text, which is UTC without an offset
            if since is not None:
                q = q.where(at >= since.astimezone(UTC))
            if until is not None:
                q = q.where(at < until.astimezone(UTC))
            if actor is not None:
                q = q.where(by == actor)
            rows = conn.execute(q.order_by(at.desc(), tokens.c.id.desc()).limit(limit))
            out += [_token_event(r, action) for r in rows]
    out.sort(key=lambda e: e["time"], reverse=True)
    return out[:limit]


# -- browser sessions -----------------------------------------------------------------------------
# The web UI never sees a token after sign-in: the browser holds a random session secret in an
# HttpOnly cookie, and the server keeps only its sha256, the token it stands for, and the session's
# CSRF secret. Revoking the token ends its sessions (the lookup joins the token's row).
ui_sessions = Table(
    "ui_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("token_id", Integer, nullable=True),  # NULL: an anonymous session (auth off)
    Column("csrf", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Index("ix_ui_sessions_expires", "expires_at"),
)


@dataclass(frozen=True, slots=True)
class Session:
    """A signed-in browser: its CSRF secret and the token it acts with (None when auth is off)."""

    id_hash: str
    csrf: str
    token: TokenInfo | None
    expires_at: datetime


def create_session(database_url: str, token: TokenInfo | None, ttl_s: float) -> tuple[str, Session]:
    """Open a session for `token`; returns the cookie's secret (shown once) and the session.

    >>> secret, session = create_session(url, info, ttl_s=8 * 3600)  # doctest: +SKIP
    >>> lookup_session(url, secret).csrf == session.csrf  # doctest: +SKIP
    True
    """
    from datetime import timedelta

    secret = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    session = Session(hash_token(secret), secrets.token_urlsafe(32), token, now + timedelta(seconds=ttl_s))
    engine = writer(ensure_schema(database_url))
    with engine.begin() as conn:
        # expired sessions go when new ones come: the table stays as small as the active sessions
        conn.execute(ui_sessions.delete().where(ui_sessions.c.expires_at < now))
        conn.execute(
            insert(ui_sessions).values(
                id_hash=session.id_hash, token_id=token.id if token else None, csrf=session.csrf,
                created_at=now, expires_at=session.expires_at,
            )
        )  # fmt: skip
    return secret, session


def lookup_session(database_url: str, secret: str) -> Session | None:
    """The live session of a cookie's secret; None if unknown, expired, or its token was revoked."""
    if not secret or len(secret) > 128:
        return None
    engine = ensure_schema(database_url)
    t = tokens.c
    q = (
        select(ui_sessions, t.name, t.scopes, t.prefix, t.created_at.label("t_created"), t.revoked_at)
        .select_from(ui_sessions.outerjoin(tokens, t.id == ui_sessions.c.token_id))
        .where(ui_sessions.c.id_hash == hash_token(secret))
    )
    with engine.connect() as conn:
        row = conn.execute(q).first()
    if row is None:
        return None
    expires = row.expires_at if row.expires_at.tzinfo else row.expires_at.replace(tzinfo=UTC)
    if expires < datetime.now(UTC):
        return None
    token = None
    if row.token_id is not None:
        if row.name is None or row.revoked_at is not None:
            return None
        token = TokenInfo(row.token_id, row.name, row.scopes, row.prefix, row.t_created, False)
    return Session(row.id_hash, row.csrf, token, expires)


def end_session(database_url: str, secret: str) -> None:
    """Sign out: the cookie's session stops working at once."""
    engine = writer(ensure_schema(database_url))
    with engine.begin() as conn:
        conn.execute(ui_sessions.delete().where(ui_sessions.c.id_hash == hash_token(secret)))
