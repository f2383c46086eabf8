"""`maestrale serve`: registered on the root command, with the documented options and plain errors."""

from __future__ import annotations

from typer.testing import CliRunner

from maestrale.cli.main import app


def test_serve_is_registered_with_its_options():
    result = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--no-log", "--reload-poll", "--workers", "NAME@ALIAS..."):
        assert option in result.output


def test_a_bad_reference_is_a_one_line_error(tmp_path):
    env = {"MAESTRALE_HOME": str(tmp_path), "MAESTRALE_BROKER_URL": "memory://"}
    result = CliRunner().invoke(app, ["serve", "Not A Name@champion"], env=env)
    assert result.exit_code == 1
    assert "error: invalid model name 'Not A Name'" in result.output
