"""`maestrale info`: which registry, monitor store, bus and home this shell uses, and why.

The same description feeds `maestrale -v …` (one line on stderr before any command), the note
after a "not found" error, and the note when a command creates a new home. Nothing here connects
to a backend or creates a folder: `info` is safe to run anywhere.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["info", "--json"]).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

import os
import platform
import re
from collections.abc import Callable
from importlib import metadata
from typing import TYPE_CHECKING, Any

import typer

from maestrale.cli.output import STATE, JsonFlag, fields, note, print_json

if TYPE_CHECKING:
    from maestrale.config import Settings

#: Shown by `maestrale info`: the core stack, then the optional extras (missing ones say so).
PACKAGES = (
    "pydantic", "sqlalchemy", "typer", "numpy", "pandas", "scikit-learn", "skops",
    "fastapi", "uvicorn", "pika", "psycopg", "lightgbm", "xgboost", "onnxruntime", "matplotlib",
)  # fmt: skip
_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")


def mask_url(url: str | None) -> str | None:
    """A URL with its password replaced by `***`.

    >>> mask_url("amqp://guest:s3cret@rabbitmq:5672/")
    'amqp://guest:***@rabbitmq:5672/'
    """
    return None if url is None else _PASSWORD.sub(r"\1***\3", url)


def _origin(env: str, default: str) -> str:
    return env if os.environ.get(env) else default


def describe(settings: Settings) -> dict[str, Any]:
    """What this process would use, each with where it came from; secrets masked.

    >>> describe(load_settings())["home"]["source"]  # doctest: +SKIP
    'project'
    """
    from maestrale.config import home_choice

    home = home_choice(settings)
    db = settings.database_url or ""
    registry: dict[str, Any]
    if settings.registry_url:
        registry = {
            "mode": "remote",
            "url": mask_url(settings.registry_url),
            "from": "MAESTRALE_REGISTRY_URL",
            "token": "set" if settings.token else "not set (MAESTRALE_TOKEN)",
        }
    else:
        registry = {
            "mode": "embedded",
            "database_url": mask_url(db),
            "database_from": _origin("MAESTRALE_DATABASE_URL", "default: registry.db in the home"),
            "storage_url": settings.storage_url,
            "storage_from": _origin("MAESTRALE_STORAGE_URL", "default: artifacts/ in the home"),
        }
    return {
        "home": {
            "path": str(home.path),
            "source": home.source,
            "from": home.describe(),
            "exists": home.path.is_dir(),
        },
        "registry": registry,
        # the monitor keeps its records in the registry's database (tables monitor_*)
        "monitor_store": {"database_url": mask_url(db), "from": "the registry's database"},
        "bus": {
            "url": mask_url(settings.broker_url),
            "from": _origin("MAESTRALE_BROKER_URL", "default: in-process only"),
            "namespace": settings.bus_namespace,
        },
        "versions": versions(),
    }


def versions() -> dict[str, str]:
    """Versions of Python, maestrale and the packages it runs on (`not installed` for missing extras)."""
    out = {"python": platform.python_version()}
    for dist in ("maestrale", *PACKAGES):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = "not installed"
    return out


def registry_line(settings: Settings) -> str:
    """One line: the registry in use and the home it lives in, with their origins."""
    from maestrale.config import home_choice

    if STATE.registry and STATE.registry != _location(settings):  # a command's --registry won
        return f"registry: {mask_url(STATE.registry)} (--registry)"
    if settings.registry_url:
        return f"registry: {mask_url(settings.registry_url)} (MAESTRALE_REGISTRY_URL)"
    home = home_choice(settings)
    return (
        f"registry: {mask_url(settings.database_url)} + {settings.storage_url} "
        f"(home {home.path}, from {home.describe()})"
    )


def _location(settings: Settings) -> str:
    # as `Registry.location` spells it
    return settings.registry_url or f"{settings.database_url} + {settings.storage_url}"


def note_registry() -> None:
    """Print `registry_line` on stderr; never fails (it runs after errors, too)."""
    from maestrale.config import load_settings
    from maestrale.errors import MaestraleError

    try:
        note(registry_line(load_settings()))
    except MaestraleError as exc:  # bad settings are reported by the command itself
        note(f"registry: unknown ({exc.message})")


def home_watch() -> Callable[[], None]:
    """A callback for the end of a command: says so if the command created the home or its registry.

    Runs after the command, so it only speaks when a folder or database was really created.
    """
    from maestrale.config import find_home

    choice = find_home()
    database = choice.path / "registry.db"
    before = (choice.path.exists(), database.exists())

    def after() -> None:
        created = choice.path.exists() and not before[0]
        if not (created or (database.exists() and not before[1])):
            return
        what = "home" if created else "registry"
        hint = (
            ": no folder above the working directory has a .maestrale directory (`mkdir .maestrale` "
            "in a project folder gives the project a registry of its own)"
        )
        note(
            f"created a new, empty Maestrale {what} in {choice.path}, from {choice.describe()}"
            + (hint if choice.source == "user" else "")
            + "; `maestrale info` shows what each command uses"
        )

    return after


def info(json_output: JsonFlag = False) -> None:
    """Show the registry, monitor store, bus and home this shell uses, where each came from, and versions.

    The home is MAESTRALE_HOME, else the nearest folder above the working directory that has a
    .maestrale directory (a project), else the user data directory. Passwords are masked.

    Example: maestrale info --json
    """
    from maestrale.config import load_settings

    about = describe(load_settings())
    if json_output:
        print_json(about)
        return
    home, reg, bus = about["home"], about["registry"], about["bus"]
    rows = [
        ("home", f"{home['path']}" + ("" if home["exists"] else " (not created yet)")),
        ("  from", home["from"]),
    ]
    if reg["mode"] == "remote":
        rows += [("registry", reg["url"]), ("  from", reg["from"]), ("  token", reg["token"])]
    else:
        rows += [
            ("registry", reg["database_url"]),
            ("  from", reg["database_from"]),
            ("artifacts", reg["storage_url"]),
            ("  from", reg["storage_from"]),
        ]
    rows += [
        ("monitor store", about["monitor_store"]["database_url"]),
        ("  from", about["monitor_store"]["from"]),
        ("bus", f"{bus['url']} (namespace {bus['namespace']})"),
        ("  from", bus["from"]),
        ("versions", " ".join(f"{k} {v}" for k, v in about["versions"].items() if v != "not installed")),
        ("not installed", " ".join(k for k, v in about["versions"].items() if v == "not installed") or "-"),
    ]
    fields(None, rows)


def register(app: typer.Typer) -> None:
    """Attach `info` to the root app."""
    app.command("info")(info)
