"""Rules every `maestrale` command keeps, checked on the `--help` of each one.

- a flag shows no value type (Typer's rich help prints `<bool>` unless told otherwise);
- `-n` means `--limit`, wherever it appears;
- every option and argument says what it is for, and so does every command;
- the two servers' default ports are deliberate, and `serve --help` says why they differ.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from maestrale.cli.main import app


def commands() -> Iterator[tuple[list[str], Any]]:
    """`(path, command)` of the root, every group and every command below them."""

    def walk(command: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
        yield path, command
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


ALL = list(commands())


def _help(path: list[str]) -> str:
    result = CliRunner().invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    return result.stdout


def test_the_walk_sees_every_command() -> None:
    names = {" ".join(path) for path, _ in ALL}
    assert {"info", "models show", "models compare", "deploy render", "serve", "server", "train"} <= names
    assert len(names) > 30


@pytest.mark.parametrize("path", [p for p, _ in ALL], ids=lambda p: " ".join(p) or "maestrale")
def test_help_shows_no_bool_metavar(path: list[str]) -> None:
    text = _help(path)
    assert "<bool>" not in text and "BOOLEAN" not in text


@pytest.mark.parametrize(("path", "command"), ALL, ids=lambda x: " ".join(x) if isinstance(x, list) else "")
def test_options_are_consistent_and_documented(path: list[str], command: Any) -> None:
    where = " ".join(["maestrale", *path])
    assert (command.help or "").strip(), f"{where} has no help text"
    for param in command.params:
        names = [*param.opts, *getattr(param, "secondary_opts", [])]
        if "-n" in names:
            assert "--limit" in names, f"{where}: -n is {names}, but -n means --limit everywhere"
        assert (getattr(param, "help", None) or "").strip(), f"{where}: {names} has no help text"


def _default(path: list[str], option: str) -> Any:
    command = dict((tuple(p), c) for p, c in ALL)[tuple(path)]
    (param,) = [p for p in command.params if option in p.opts]
    return param.default


def test_server_and_serve_ports_are_deliberate() -> None:
    # the registry's REST API: 8080, as the Helm chart's Service; a model server: 8000, so both
    # run side by side on a laptop (manifests and the chart always pass --port to `serve`)
    assert _default(["server"], "--port") == 8080
    assert _default(["serve"], "--port") == 8000
    text = " ".join(_help(["serve"]).split())
    assert "not the 8080 of `maestrale server`" in text
