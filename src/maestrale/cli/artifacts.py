"""`maestrale models download|verify`: an artifact's bytes, checked against their registered sha256."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Annotated

import typer

from maestrale.cli.models import RegistryUrl, Token, open_registry
from maestrale.cli.output import JsonFlag, error, fmt_size, note, print_json, say, table, usage_error
from maestrale.errors import Conflict

_EXTENSIONS = {"skops": ".skops", "lightgbm": ".txt", "xgboost": ".ubj", "onnx": ".onnx", "pickle": ".pkl"}


def download(
    ref: Annotated[
        str,
        typer.Argument(metavar="REF", help="NAME, NAME@ALIAS or NAME:VERSION (NAME means NAME@champion)."),
    ],
    output: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", help="File or folder to write to; '-' for stdout. Default: ./NAME-VERSION.EXT"
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", "-f", help="Overwrite an existing file.")] = False,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Download a version's artifact bytes after checking their sha256 (the model is not unpickled).

    Examples: maestrale models download pv-forecast@champion -o models/
              maestrale models download pv-forecast:3 -o - | sha256sum
    """
    reg = open_registry(registry, token)
    # The registry has no public "bytes of a version" call; these are the stores `Registry.load` uses.
    name, version, info, data = reg.artifact_bytes(ref)
    report = {"ref": f"{name}:{version}", "size": len(data), "sha256": info.sha256, "format": info.format}
    if output == "-":
        typer.get_binary_stream("stdout").write(data)
        note(f"{name}:{version}: {fmt_size(len(data))}, sha256 {info.sha256}")
        return
    filename = f"{name}-{version}{_EXTENSIONS.get(info.format, '.bin')}"
    path = Path(output or filename).expanduser()
    if path.is_dir() or (output or "").endswith(("/", os.sep)):  # "models/" names a folder, even a new one
        path = path / filename
    if path.exists() and not force:
        raise Conflict(f"{path} already exists; pass --force to overwrite it")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # readers never see a half-written model
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if json_output:
        print_json({**report, "path": str(path.resolve())})
    else:
        say(f"wrote {name}:{version} to {path} ({fmt_size(len(data))}, sha256 {info.sha256})")


def verify(
    ref: Annotated[
        str | None, typer.Argument(metavar="REF", help="NAME:VERSION, NAME@ALIAS or NAME (= NAME@champion).")
    ] = None,
    all_of: Annotated[
        str | None, typer.Option("--all", metavar="NAME", help="Every version of NAME.")
    ] = None,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Re-read artifacts and compare their sha256 with the registered one; exit 1 if any fails.

    Examples: maestrale models verify pv-forecast@champion
              maestrale models verify --all pv-forecast --json
    """
    if (ref is None) == (all_of is None):
        raise usage_error("give a REF or --all NAME")
    reg = open_registry(registry, token)
    if ref is not None:
        refs = [ref]
    else:
        assert all_of is not None
        refs, page_token = [], None
        while True:
            page = reg.list_versions(all_of, limit=1000, page_token=page_token)
            refs += [mv.ref for mv in page.items]
            if not (page_token := page.next_page_token):
                break
    results = [reg.verify(r) for r in refs]
    failed = [r for r in results if not r.ok]
    if json_output:
        print_json(results)
    elif not results:
        note(f"model {all_of!r} has no versions")
    else:
        rows = [[r.ref, "ok" if r.ok else "FAILED", r.sha256_expected[:12], r.detail or "-"] for r in results]
        table(None, ["version", "result", "sha256", "detail"], rows, no_wrap=["version", "result", "sha256"])
    if failed:
        error(f"{len(failed)} of {len(results)} failed verification: {', '.join(r.ref for r in failed)}")
        raise typer.Exit(1)


def register(models_app: typer.Typer) -> None:
    """Attach `download` and `verify` to the `models` group."""
    models_app.command("download")(download)
    models_app.command("verify")(verify)
