"""`make demo`'s job end to end, on embedded defaults, as a newcomer runs it."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from maestrale.cli.main import app


def test_demo_trains_through_the_service_promotes_and_serves(tmp_path):
    summary = tmp_path / "summary.json"
    out = CliRunner().invoke(app, ["demo", "--home", str(tmp_path / "demo"), "--summary", str(summary)])
    assert out.exit_code == 0, out.output
    result = json.loads(summary.read_text())
    assert result["versions"] == {"ridge": 1, "gbm": 2}
    best = min(result["holdout_nmae"], key=result["holdout_nmae"].get)
    assert result["champion"] == result["versions"][best]
    assert 0 < result["holdout_nmae"][best] < 0.06  # NREL system 50, July 2011: ~0.03 measured
    assert result["remote_equal"] is True  # the same champion through the REST API
    assert (tmp_path / "demo" / "demo-forecast.png").stat().st_size > 10_000
    assert "promoted pv-nrel-50" in out.output and "training requests" in out.output
