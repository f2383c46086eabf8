"""Settings from `MAESTRALE_*` environment variables: every backend is a URL; and where the home is.

The embedded home (SQLite database, artifacts, admin token) is `MAESTRALE_HOME` when set; else the
nearest project folder, i.e. the first `.maestrale` directory found walking up from the working
directory (as git finds `.git`); else the per-user data directory (`~/.local/share/maestrale` on
Linux). So `maestrale models list` answers from the same registry in any folder of a project, and
outside any project from one registry per user, never from a new empty one made in passing.

>>> from maestrale.config import Settings
>>> Settings(home="/tmp/m").database_url
'sqlite:////tmp/m/registry.db'
>>> find_home(environ={"MAESTRALE_HOME": "/srv/m"}).source
'env'
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from maestrale.errors import ConfigError
from maestrale.vocabulary import parse_duration

_DB_SCHEMES = ("sqlite", "postgresql", "postgresql+psycopg", "postgresql+psycopg2", "mysql+pymysql")
_STORAGE_SCHEMES = ("file", "abfs", "abfss", "az", "s3", "gs", "gcs", "memory")
_BROKER_SCHEMES = ("memory", "amqp", "amqps")
#: The shortest retention a setting accepts, and why (a shorter one would lose events or apply one twice).
_DURATION_FLOORS = {
    "outbox_retention": (timedelta(0), "0s (published events are then deleted at the next pruning)"),
    "processed_retention": (timedelta(hours=1), "1h, longer than any redelivery, e.g. 30D"),
    "prune_every": (timedelta(seconds=10), "10s, e.g. 10min"),
}

EXAMPLES = {
    "database_url": "sqlite:///./.maestrale/registry.db or postgresql+psycopg://user@host:5432/maestrale",
    "storage_url": "file:///var/lib/maestrale/artifacts, abfs://models/prod or s3://bucket/prefix",
    "broker_url": "memory:// or amqp://user:pass@rabbitmq:5672/vhost",
    "registry_url": "http://maestrale:8080",
    "storage_options": '{"connection_string": "DefaultEndpointsProtocol=https;..."}',
}


HOME_ENV = "MAESTRALE_HOME"
#: The project marker: a folder holding a `.maestrale` directory is a project, and that is its home.
PROJECT_HOME = ".maestrale"
HomeSource = Literal["env", "project", "user", "argument"]


@dataclass(frozen=True, slots=True)
class HomeChoice:
    """Where the embedded home is and why: `MAESTRALE_HOME`, a project folder, the user directory.

    >>> HomeChoice(Path("/srv/p/.maestrale"), "project").describe()
    'the project folder /srv/p'
    """

    path: Path
    source: HomeSource

    def describe(self) -> str:
        """Where the choice came from, to follow "from" (what `maestrale info` and `-v` print)."""
        if self.source == "env":
            return HOME_ENV
        if self.source == "project":
            return f"the project folder {self.path.parent}"
        if self.source == "user":
            return "the user data directory"
        return "the caller's settings (home=…)"


def user_home() -> Path:
    """The per-user home, `platformdirs.user_data_dir("maestrale")` (`~/.local/share/maestrale` on Linux)."""
    import platformdirs  # imported here: the settings of a server never need it

    return Path(platformdirs.user_data_dir("maestrale", appauthor=False))


def find_home(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> HomeChoice:
    """The embedded home: `MAESTRALE_HOME`, else the nearest project folder, else the user directory.

    A project folder is the working directory or one of its parents holding a `.maestrale`
    directory (`mkdir .maestrale` makes one); nothing is created here.

    >>> find_home(Path("/"), environ={}).source in ("project", "user")
    True
    """
    env = os.environ if environ is None else environ
    if explicit := env.get(HOME_ENV, "").strip():
        return HomeChoice(Path(explicit).expanduser().resolve(), "env")
    start = (cwd or Path.cwd()).resolve()
    for folder in (start, *start.parents):
        if (folder / PROJECT_HOME).is_dir():
            return HomeChoice(folder / PROJECT_HOME, "project")
    return HomeChoice(user_home().resolve(), "user")


def home_choice(settings: Settings) -> HomeChoice:
    """How `settings.home` was chosen: as `find_home` would now, or passed explicitly (`home=…`)."""
    found = find_home()
    return found if found.path == settings.home else HomeChoice(settings.home, "argument")


def _default_home() -> Path:
    return find_home().path


def _check_scheme(setting: str, url: str, allowed: tuple[str, ...]) -> str:
    scheme = urlsplit(url).scheme
    if scheme not in allowed:
        raise ValueError(
            f"unsupported scheme {scheme!r} in {url!r}; supported: {', '.join(allowed)} "
            f"(e.g. {EXAMPLES[setting]})"
        )
    return url


class Settings(BaseSettings):
    """Validated configuration; build with `Settings()` (environment) or keyword overrides."""

    model_config = SettingsConfigDict(env_prefix="MAESTRALE_", extra="ignore", validate_default=True)

    home: Path = Field(
        default_factory=_default_home,
        description="Folder for embedded defaults: MAESTRALE_HOME, else the nearest project folder's "
        ".maestrale, else the user data directory (see `find_home`).",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL of the metadata store.")
    storage_url: str | None = Field(default=None, description="fsspec URL of the artifact store.")
    storage_options: dict[str, Any] = Field(
        default_factory=dict, description="JSON object of extra fsspec options (credentials, endpoints)."
    )
    broker_url: str = Field(default="memory://", description="Event bus URL.")
    bus_namespace: str = Field(
        default="maestrale", description="Exchange and queue prefix on the broker (one per environment)."
    )
    registry_url: str | None = Field(default=None, description="Remote Maestrale server for the CLI.")
    token: str | None = Field(default=None, description="Bearer token for a remote server.")
    max_upload_mb: int = Field(default=2048, ge=1, description="Largest artifact the server accepts.")
    auth: bool = Field(default=True, description="Require bearer tokens on the REST API.")
    ui: bool = Field(default=True, description="Serve the web UI at / from `maestrale server`.")
    auto_upgrade: bool = Field(
        default=True, description="Let embedded mode create/upgrade its schema on first use."
    )
    # -- trust boundaries (docs/security.md) ---------------------------------------------------------
    max_body_mb: float = Field(
        default=16, gt=0, description="Largest JSON/YAML request body the REST API reads (uploads excepted)."
    )
    serve_max_body_mb: float = Field(
        default=32, gt=0, description="Largest request body a model server (`maestrale serve`) reads."
    )
    serve_auth: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Bearer tokens on `maestrale serve`: auto = on whenever it listens beyond loopback.",
    )
    serve_token_file: Path | None = Field(
        default=None, description="Mounted secret with one token per line, instead of the token store."
    )
    data_sources: Annotated[list[str] | None, NoDecode] = Field(
        default=None,
        description=(
            "Where specs that arrive over REST or the bus may read data: URL prefixes and local folders, "
            "comma-separated (default: the working directory of the worker)."
        ),
    )
    spec_env: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Environment variables (names or globs) that such specs may reference as ${VAR}.",
    )
    estimator_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Module prefixes the admin trusts besides scikit-learn, LightGBM and XGBoost: specs may name "
            "estimator classes or factories and feature-set functions defined in them (comma-separated)."
        ),
    )

    # -- training workers (maestrale.training.threads) ----------------------------------------------
    train_threads: int | None = Field(
        default=None, ge=1, le=1024,
        description="OpenMP/BLAS threads per training job; default: the worker's cores ÷ training slots on "
        "the host (or pod).",
    )  # fmt: skip
    train_slots_dir: Path | None = Field(
        default=None,
        description="Folder where live workers hold one lock file per training slot, counted for the "
        "thread budget (default: /dev/shm/maestrale-training-slots).",
    )

    # -- growth bounds (maestrale.platform.pruning: run by the outbox relay and transactional consumers) --
    outbox_retention: timedelta = Field(
        default=timedelta(days=7),
        description="How long published outbox events are kept, e.g. 7D (unsent ones stay until published).",
    )
    processed_retention: timedelta = Field(
        default=timedelta(days=30),
        description="How long consumers remember the ids of processed events, e.g. 30D: longer than any "
        "redelivery (a forgotten id is applied again).",
    )
    prune_every: timedelta = Field(
        default=timedelta(minutes=10),
        description="How often a service prunes the outbox and the processed-event ids, e.g. 10min.",
    )

    @field_validator("outbox_retention", "processed_retention", "prune_every", mode="before")
    @classmethod
    def _duration(cls, v: Any) -> Any:
        # the one duration syntax (7D, 36h, 10min); an ISO 8601 one (P7D, from model_dump) too
        if isinstance(v, str) and not v.strip().upper().startswith(("P", "-P")):
            return parse_duration(v)
        return v

    @field_validator("outbox_retention", "processed_retention", "prune_every")
    @classmethod
    def _long_enough(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        floor, why = _DURATION_FLOORS[info.field_name or ""]
        if v < floor:
            raise ValueError(f"{v} is too short: at least {why}")
        return v

    @field_validator("data_sources", "spec_env", "estimator_modules", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        # env values are plain text: "abfs://lake/pv,/srv/data"; a JSON list works too
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return v

    @field_validator("database_url")
    @classmethod
    def _db(cls, v: str | None) -> str | None:
        return v if v is None else _check_scheme("database_url", v, _DB_SCHEMES)

    @field_validator("storage_url")
    @classmethod
    def _storage(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "://" not in v:  # a plain path is a local folder: accept it, as users will type one
            return Path(v).expanduser().resolve().as_uri()
        return _check_scheme("storage_url", v, _STORAGE_SCHEMES)

    @field_validator("broker_url")
    @classmethod
    def _broker(cls, v: str) -> str:
        return _check_scheme("broker_url", v, _BROKER_SCHEMES)

    @field_validator("registry_url")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        return v if v is None else _check_scheme("registry_url", v, ("http", "https"))

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        home = self.home.expanduser().resolve()
        self.home = home
        if self.database_url is None:
            self.database_url = f"sqlite:///{home / 'registry.db'}"
        if self.storage_url is None:
            self.storage_url = (home / "artifacts").as_uri()
        return self


def load_settings(**overrides: Any) -> Settings:
    """Build `Settings`, turning validation errors into a `ConfigError` that names the variable.

    >>> load_settings(database_url="sqlite:///r.db").database_url
    'sqlite:///r.db'
    """
    clean = {k: v for k, v in overrides.items() if v is not None}
    try:
        return Settings(**clean)
    except SettingsError as exc:  # raised for unparseable JSON in complex fields
        field = str(exc).split('field "', 1)[-1].split('"', 1)[0]
        example = EXAMPLES.get(field, "")
        raise ConfigError(
            f"MAESTRALE_{field.upper()} is not valid JSON"
            + (f"; e.g. MAESTRALE_{field.upper()}={example}" if example else "")
        ) from None
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            field = str(err["loc"][0]) if err["loc"] else "?"
            env = f"MAESTRALE_{field.upper()}"
            sample = EXAMPLES.get(field)
            hint = f"; e.g. {env}={sample}" if sample and "e.g." not in err["msg"] else ""
            lines.append(f"{env}: {err['msg']}{hint}")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(lines)) from None
