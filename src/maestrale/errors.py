"""Errors a user can cause, each naming the cause and the fix.

Every error carries an HTTP status so the REST API and the remote client map them both ways
without a table per endpoint.
"""

from __future__ import annotations


class MaestraleError(Exception):
    """Base class of every error Maestrale raises on purpose."""

    status_code: int = 500
    code: str = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def fields(self) -> dict[str, str]:
        """Typed details beside the message, sent in the REST error envelope and rebuilt by the client."""
        return {}


class ConfigError(MaestraleError):
    """A setting is missing or malformed; the message names it and shows a valid example."""

    status_code = 500
    code = "config"


class InvalidInput(MaestraleError):
    """The caller passed something malformed (a bad name, reference, filter or payload)."""

    status_code = 400
    code = "invalid"


class InvalidName(InvalidInput):
    """A model name, alias or tag key breaks the naming rule."""

    code = "invalid_name"


class NotFound(MaestraleError):
    """A model, version, alias or object does not exist."""

    status_code = 404
    code = "not_found"


class NoHoldout(NotFound):
    """A version has no (readable) holdout series: trained before they were stored, or registered bare."""

    code = "no_holdout"


class Conflict(MaestraleError):
    """The request contradicts the current state (e.g. aliasing an archived version)."""

    status_code = 409
    code = "conflict"


class UnsupportedModel(InvalidInput):
    """The object cannot be stored in a safe format."""

    code = "unsupported_model"


class UntrustedArtifact(MaestraleError):
    """Loading the artifact would execute code the caller did not say it trusts."""

    status_code = 403
    code = "untrusted"


class IntegrityError(MaestraleError):
    """An artifact's bytes no longer match the sha256 recorded at registration."""

    status_code = 500
    code = "integrity"

    def __init__(self, message: str, expected: str | None = None, actual: str | None = None) -> None:
        super().__init__(message)
        self.expected, self.actual = expected, actual

    def fields(self) -> dict[str, str]:
        """The registered (`expected`) and found (`actual`) sha256, when known."""
        return {k: v for k, v in (("expected", self.expected), ("actual", self.actual)) if v}


class ArtifactMissing(IntegrityError):
    """The artifact object recorded for a version (or asked for by digest) is absent from storage.

    A 404 like `NotFound`, but still an `IntegrityError` (`Registry.verify` reports it as a failed
    check) and deliberately not a `NotFound`: callers treat `NotFound` as "no such model or version",
    while a missing object behind an existing version is damage to repair.
    """

    status_code = 404
    code = "artifact_missing"


class Unauthorized(MaestraleError):
    """No token, or a token that is unknown or revoked."""

    status_code = 401
    code = "unauthorized"


class Forbidden(MaestraleError):
    """The token is valid but lacks the scope the operation needs."""

    status_code = 403
    code = "forbidden"


class PayloadTooLarge(InvalidInput):
    """An upload exceeds the configured maximum."""

    status_code = 413
    code = "too_large"


class BackendUnavailable(MaestraleError):
    """The database, the blob store or the remote server cannot be reached."""

    status_code = 503
    code = "unavailable"


_BY_CODE: dict[str, type[MaestraleError]] = {
    cls.code: cls
    for cls in (
        MaestraleError,
        ConfigError,
        InvalidInput,
        InvalidName,
        NotFound,
        NoHoldout,
        Conflict,
        UnsupportedModel,
        UntrustedArtifact,
        IntegrityError,
        ArtifactMissing,
        Unauthorized,
        Forbidden,
        PayloadTooLarge,
        BackendUnavailable,
    )
}


def error_from_code(code: str, message: str, fields: dict[str, object] | None = None) -> MaestraleError:
    """Rebuild the typed error a server reported, so remote callers catch the same classes.

    >>> error_from_code("integrity", "corrupted", {"expected": "ab", "actual": "cd"}).actual
    'cd'
    """
    cls = _BY_CODE.get(code, MaestraleError)
    if issubclass(cls, IntegrityError):
        expected, actual = (fields or {}).get("expected"), (fields or {}).get("actual")
        return cls(
            message,
            expected if isinstance(expected, str) else None,
            actual if isinstance(actual, str) else None,
        )
    return cls(message)
