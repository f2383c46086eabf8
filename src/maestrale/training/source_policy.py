"""What a spec from REST or the bus may read: the folders, URL prefixes and `${VAR}`s the admin allows.

>>> from maestrale.training.specio import spec_from_data
>>> policy = SourcePolicy(folders=("/srv/pv",), prefixes=("abfs://lake/pv",), env=("PV_*",))
>>> spec = spec_from_data({"name": "pv", "data": {"uri": "/etc/shadow"}, "target": "y",
...                        "features": ["x"], "estimator": "ridge"})
>>> [issue.path for issue in policy.problems(spec)]
['data.uri']

A user training locally (`maestrale train --local`, `train(...)`) is trusted and reads what they like.
A request is not: whoever holds a write token could otherwise make a worker read `/etc/…`, its
mounted secrets, or any URL its credentials reach, and see values in the error messages. The worker
applies this policy to every request before reading anything (the authoritative check); the REST
API applies it too, for an early 400. Settings:

- `MAESTRALE_DATA_SOURCES`: local folders and URL prefixes, comma-separated, e.g.
  `/srv/pv-data,abfs://lake/pv,postgresql+psycopg://pv@db:5432/pv`. Default: the worker's working
  directory (never `/`, which cannot be listed either).
- `MAESTRALE_SPEC_ENV`: names or globs of the environment variables such specs may use as `${VAR}`,
  e.g. `PV_DB_URL,PV_LAKE_*`. Default: none.

Rules (each refusal names its rule and the setting to change, and shows values only as written):

1. A local path (plain, `file://`, `local://`, `~`) must resolve, symlinks and `..` included, inside
   an allowed folder. `dvc.repo` likewise; `dvc.path` must stay inside the repository.
2. A URL must start with an allowed prefix on a path-segment boundary (`abfs://lake/pv` admits
   `abfs://lake/pv/a.parquet`, not `abfs://lake/pv-private/…`), without `..` segments or `::` chains.
3. `sql.url`, once expanded and without its password, likewise (a query string only if the allowed
   prefix has it); a SQLite file follows rule 1.
4. `${VAR}` only for allowed variables; every `storage_options` value must be such a reference (a
   literal could point the worker at another endpoint or account).
5. `read_options` only from `READ_OPTIONS`, pandas options that parse, never open or execute.
6. Packaged datasets (`dataset: nrel_system50`) are always allowed.
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote

from maestrale.errors import ConfigError
from maestrale.training.datasource import DatasetSource, DvcSource, SqlSource, UriSource
from maestrale.training.fleet import mask_secrets
from maestrale.training.specio import members_of

if TYPE_CHECKING:
    from maestrale.config import Settings
    from maestrale.training.spec import SpecIssue, TrainingSpec

#: pandas.read_csv / read_parquet keywords a request may pass: they shape parsing, nothing else.
READ_OPTIONS = frozenset(
    {
        "sep", "delimiter", "decimal", "thousands", "header", "names", "index_col", "usecols", "dtype",
        "parse_dates", "date_format", "dayfirst", "na_values", "keep_default_na", "true_values",
        "false_values", "skiprows", "nrows", "comment", "quotechar", "encoding", "skip_blank_lines",
        "columns", "filters",
    }
)  # fmt: skip
DATA_SOURCES, SPEC_ENV = "MAESTRALE_DATA_SOURCES", "MAESTRALE_SPEC_ENV"
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_WHOLE_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_LOCAL = (None, "file", "local")


def _protocol(url: str) -> str | None:
    """fsspec's reading of a URL's protocol (None: a local path)."""
    if "://" in url:
        protocol = url.split("://", 1)[0]
        if len(protocol) > 1:  # "C://x" is a Windows path
            return protocol
    return "data" if url.startswith("data:") else None


def _local_path(url: str) -> str:
    """The absolute, symlink-resolved path fsspec would open for a local URL (`~` and `file:` included)."""
    from fsspec.implementations.local import LocalFileSystem

    return os.path.realpath(LocalFileSystem._strip_protocol(url))


def _under(url: str, prefix: str) -> bool:
    """True when `url` is `prefix` or below it on a `/` boundary."""
    base = prefix.rstrip("/")
    return url == base or url.startswith(base + "/")


def _without_password(url: str) -> str:
    """A database URL as the policy compares it: rendered by SQLAlchemy, the password left out."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url)._replace(password=None).render_as_string(hide_password=False)
    except Exception:  # not a database URL (e.g. abfs://…): compared as written
        return url


def _dot_segments(url: str) -> bool:
    rest = url.split("://", 1)[-1]
    return any(part in ("..", ".") for part in unquote(rest).replace("\\", "/").split("/"))


@dataclass(frozen=True)
class SourcePolicy:
    """Allowed local folders (resolved), URL prefixes and `${VAR}` names or globs."""

    folders: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    env: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> SourcePolicy:
        """The policy of `settings`; `ConfigError` for an entry that would open the whole machine.

        >>> from maestrale.config import Settings
        >>> SourcePolicy.from_settings(Settings(data_sources=["abfs://lake/pv"])).prefixes
        ('abfs://lake/pv',)
        """
        if settings.data_sources is None:
            cwd = os.path.realpath(os.getcwd())
            return cls(folders=() if cwd == os.sep else (cwd,), env=tuple(settings.spec_env))
        folders, prefixes = [], []
        for entry in settings.data_sources:
            if "::" in entry:
                raise ConfigError(f"{DATA_SOURCES}: {entry!r} chains URLs with '::'; list the storage itself")
            if _protocol(entry) not in _LOCAL:
                prefixes.append(entry)
                continue
            folder = _local_path(entry)
            if folder == os.sep:
                raise ConfigError(
                    f"{DATA_SOURCES}: {entry!r} is the root of the file system, which would let any "
                    "request read any file of the worker: list the data folders, e.g. /srv/pv-data"
                )
            folders.append(folder)
        return cls(tuple(folders), tuple(prefixes), tuple(settings.spec_env))

    # -- the rules -------------------------------------------------------------------------------
    def _env_allowed(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.env)

    def _expand(self, value: str, where: str, out: list[SpecIssue]) -> str | None:
        """`value` with its `${VAR}`s expanded, or None (and an issue) if one is not allowed or unset."""
        from maestrale.training.spec import SpecIssue

        for name in dict.fromkeys(_ENV_REF.findall(value)):
            if not self._env_allowed(name):
                out.append(SpecIssue(path=where, message=(
                    f"uses ${{{name}}}, an environment variable that specs sent over REST or the bus may "
                    f"not read: the admin lists those they may use in {SPEC_ENV} (names or globs)"
                )))  # fmt: skip
                return None
            if name not in os.environ:
                out.append(SpecIssue(path=where, message=(
                    f"uses ${{{name}}}, which is not set on this worker: set it in the worker's environment"
                )))  # fmt: skip
                return None
        return _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)

    def _local_ok(self, path: str) -> bool:
        return any(path == f or path.startswith(f.rstrip(os.sep) + os.sep) for f in self.folders)

    def _location(self, value: str, where: str, out: list[SpecIssue], *, git: bool = False) -> None:
        """Rules 1 and 2 for a file URI or a DVC repository, as written in the spec (`value`)."""
        from maestrale.training.spec import SpecIssue

        expanded = self._expand(value, where, out)
        if expanded is None:
            return
        shown = repr(mask_secrets(value))

        def refuse(message: str) -> None:
            out.append(SpecIssue(path=where, message=f"{shown} {message}"))

        protocol = _protocol(expanded)
        if "::" in expanded:
            refuse(
                "chains URLs with '::', which specs sent over REST or the bus may not: name the file itself"
            )
        elif git and protocol is None and ":" in expanded:
            refuse(
                "is an scp-style git address: write it as ssh://… or https://…, under a prefix of "
                + DATA_SOURCES
            )
        elif protocol in _LOCAL:
            if not self._local_ok(_local_path(expanded)):
                refuse(
                    "is outside the folders this worker lets requests read (symlinks and '..' count): move "
                    f"the data into one, or have the admin add its folder to {DATA_SOURCES} (default: the "
                    "worker's working directory)"
                )
        elif _dot_segments(expanded):
            refuse("has a '.' or '..' segment: write the URL without it")
        elif not any(_under(expanded, prefix) for prefix in self.prefixes):
            refuse(
                "is not under a URL prefix this worker lets requests read: have the admin add the prefix "
                f"(e.g. abfs://lake/pv) to {DATA_SOURCES}"
            )

    def _sql(self, source: SqlSource, out: list[SpecIssue]) -> None:
        """Rule 3: the database URL, without its password, under an allowed prefix (SQLite: a file)."""
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        from maestrale.training.spec import SpecIssue

        where, shown = "data.sql.url", repr(mask_secrets(source.sql.url))
        expanded = self._expand(source.sql.url, where, out)
        if expanded is None:
            return
        try:
            url = make_url(expanded)
        except (ArgumentError, ValueError, TypeError):
            out.append(SpecIssue(path=where, message=f"{shown} is not a SQLAlchemy URL once expanded"))
            return
        if url.get_backend_name() == "sqlite":
            database = url.database or ""
            if url.query or (database not in ("", ":memory:") and not self._local_ok(_local_path(database))):
                out.append(SpecIssue(path=where, message=(
                    f"{shown} is a SQLite file outside the folders this worker lets requests read (or has "
                    f"URL options): have the admin add its folder to {DATA_SOURCES}"
                )))  # fmt: skip
            return
        if not any(_under(_without_password(expanded), _without_password(p)) for p in self.prefixes):
            out.append(SpecIssue(path=where, message=(
                f"{shown} is not a database this worker lets requests query: have the admin add its URL "
                f"without the password (e.g. postgresql+psycopg://pv@db:5432/pv) to {DATA_SOURCES}"
            )))  # fmt: skip

    def _options(self, source: UriSource | DvcSource, out: list[SpecIssue]) -> None:
        """Rules 4 (storage_options) and 5 (read_options)."""
        from maestrale.training.spec import SpecIssue

        for key, value in (getattr(source, "storage_options", None) or {}).items():
            where = f"data.storage_options.{key}"
            ref = _WHOLE_REF.match(value) if isinstance(value, str) else None
            if ref is None:
                out.append(SpecIssue(path=where, message=(
                    "is a literal value: in a spec sent over REST or the bus every storage option is a "
                    "${VAR} reference (a literal could point the worker at another endpoint or account), "
                    f"e.g. {key}: ${{LAKE_{str(key).upper()}}}, with the variable listed in {SPEC_ENV}"
                )))  # fmt: skip
            else:
                self._expand(value, where, out)
        for key in source.read_options:
            if key not in READ_OPTIONS:
                out.append(SpecIssue(path=f"data.read_options.{key}", message=(
                    f"is not a read option specs sent over REST or the bus may set; they may set: "
                    f"{', '.join(sorted(READ_OPTIONS))}"
                )))  # fmt: skip

    def problems(self, spec: TrainingSpec) -> list[SpecIssue]:
        """Every rule the spec (each member of a fleet) breaks, as issues naming the field."""
        from maestrale.training.spec import SpecIssue

        if spec.fleet is not None:
            out: list[SpecIssue] = []
            for member in members_of(spec):
                out += [
                    SpecIssue(path=i.path, line=i.line, message=f"fleet member {member.name}: {i.message}")
                    for i in self.problems(member)
                ]
            return out
        out = []
        data = spec.data
        if isinstance(data, UriSource):
            self._location(data.uri, "data.uri", out)
            self._options(data, out)
        elif isinstance(data, DvcSource):
            self._location(data.dvc.repo, "data.dvc.repo", out, git=True)
            path = PurePosixPath(data.dvc.path)
            if path.is_absolute() or ".." in path.parts or ":" in data.dvc.path:
                out.append(SpecIssue(path="data.dvc.path", message=(
                    f"{data.dvc.path!r} leaves the repository: give a path relative to the repo root, "
                    "without '..'"
                )))  # fmt: skip
            self._options(data, out)
        elif isinstance(data, SqlSource):
            self._sql(data, out)
        else:
            assert isinstance(data, DatasetSource)  # packaged with Maestrale: always allowed
        return out

    def check(self, spec: TrainingSpec, source: str = "<request>") -> None:
        """Raise `SpecError` (HTTP 400; on a worker, `train.failed` at once) listing every problem."""
        from maestrale.training.spec import SpecError

        issues = self.problems(spec)
        if issues:
            raise SpecError(source, issues)


__all__ = ["DATA_SOURCES", "READ_OPTIONS", "SPEC_ENV", "SourcePolicy"]
