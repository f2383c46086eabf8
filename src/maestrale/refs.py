"""Model references (`NAME`, `NAME@ALIAS`, `NAME:VERSION`) and the naming rule."""

from __future__ import annotations

import re
from dataclasses import dataclass

from maestrale.errors import InvalidInput, InvalidName
from maestrale.limits import MAX_VERSION

NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
# Tag and param keys are looser (people write `site_id`, `Capacity`), but still no path tricks.
_KEY_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-/]{0,249}$")
DEFAULT_ALIAS = "champion"


def validate_name(name: str, what: str = "model name") -> str:
    """Return `name` if it matches the naming rule, else raise `InvalidName` saying why.

    >>> validate_name("pv-forecast")
    'pv-forecast'
    """
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidName(
            f"invalid {what} {name!r}: use 1-128 characters of lowercase letters, digits, '.', '_' "
            f"or '-', starting with a letter or digit, and no '..' (e.g. 'pv-forecast')"
        )
    return name


def validate_key(key: str, what: str = "tag key") -> str:
    """Return `key` if it is a usable tag/param/metric key, else raise `InvalidName`."""
    if not isinstance(key, str) or not _KEY_RE.match(key) or ".." in key:
        raise InvalidName(
            f"invalid {what} {key!r}: use 1-250 characters of letters, digits, '_', '.', '-' or '/', "
            "starting with a letter, digit or '_'"
        )
    return key


@dataclass(frozen=True, slots=True)
class ModelRef:
    """A parsed reference: exactly one of `alias` and `version` is set.

    >>> ModelRef.parse("pv-forecast:3")
    ModelRef(name='pv-forecast', alias=None, version=3)
    """

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, ref: str | ModelRef) -> ModelRef:
        """Parse `NAME`, `NAME@ALIAS` or `NAME:VERSION`; a bare name means `NAME@champion`."""
        if isinstance(ref, ModelRef):
            return ref
        if not isinstance(ref, str) or not ref:
            raise InvalidInput(f"invalid model reference {ref!r}: use NAME, NAME@ALIAS or NAME:VERSION")
        if "@" in ref:
            name, _, alias = ref.partition("@")
            return cls(validate_name(name), alias=validate_name(alias, "alias"))
        if ":" in ref:
            name, _, ver = ref.partition(":")
            # ASCII digits only ("²".isdigit() is True), and within the INTEGER column's range
            if not (ver.isascii() and ver.isdigit()) or not 1 <= int(ver) <= MAX_VERSION:
                raise InvalidInput(
                    f"invalid version in {ref!r}: versions are integers from 1 to {MAX_VERSION} "
                    f"(e.g. '{name}:3')"
                )
            return cls(validate_name(name), version=int(ver))
        return cls(validate_name(ref), alias=DEFAULT_ALIAS)

    def __str__(self) -> str:
        return f"{self.name}:{self.version}" if self.version is not None else f"{self.name}@{self.alias}"
