"""`make demo`'s job end to end: the closed loop on the real NREL series, as a newcomer runs it.

A shortened replay (mid-June to end of July 2012) keeps the suite fast; `make demo` itself runs the
default replay, whose figures go in the README and the closing notes.
"""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from maestrale.cli.main import app

SHORT = ["--start", "2012-06-15", "--end", "2012-07-31"]


def run(tmp_path, *args: str) -> tuple[dict, str]:
    summary = tmp_path / "summary.json"
    home = tmp_path / "demo"
    out = CliRunner().invoke(app, ["demo", "--home", str(home), *SHORT, "--summary", str(summary), *args])
    assert out.exit_code == 0, out.output
    return json.loads(summary.read_text()), out.output


def check_fault_run(s: dict, tmp_path) -> None:
    assert s["fault_start"] == "2012-07-02"
    # detected on the real series within 3 days of faulty actuals
    assert s["detections"] and s["detection_delay_days"] <= 3
    assert s["retrains"] and s["retrains"][0] >= "2012-07-02"
    assert s["promotions"], "the retrained challenger was not promoted"
    assert s["promotions"][0]["version"] >= 2 and s["promotions"][0]["date"] > s["retrains"][0]
    # the fault hurts; the loop brings the error back to the pre-fault level (measured: 0.022 → 0.04 → 0.02)
    assert s["nmae_after_fault"] > 1.3 * s["nmae_before_fault"]
    assert s["nmae_after_promotion"] < s["nmae_after_fault"]
    assert (tmp_path / "demo" / "demo-loop.png").stat().st_size > 20_000
    report = (tmp_path / "demo" / "report-pv-nrel-50.html").read_text()
    assert "data:image/png;base64," in report and "promoted" in report


def test_demo_detects_the_fault_retrains_and_promotes(tmp_path):
    s, output = run(tmp_path, "--fault-start", "2012-07-02", "--fault-loss", "0.2")
    check_fault_run(s, tmp_path)
    assert "shortfall" in output and "promoted" in output
    # alerts are episodes: the timeline prints a breach when its episode opens (or it retrains),
    # not every day a condition keeps firing
    assert 0 < s["alert_episodes"] < s["breach_days"] + s["alert_days"]
    printed = [line for line in output.splitlines() if "  breach  " in line]
    assert len(printed) <= s["alert_episodes"] + len(s["retrains"]) < s["breach_days"] + s["alert_days"]
    # the forecasts came from the V2 model server, which hot-reloaded each promoted version
    assert s["served"]["equal"] is True
    assert s["served"]["model_version"] == s["promotions"][-1]["version"]
    assert "the model server answers with v2" in output


def test_clean_run_does_not_retrain(tmp_path):
    s, _ = run(tmp_path, "--no-fault")
    assert s["fault_start"] is None
    assert s["retrains"] == [] and s["promotions"] == []
    assert s["nmae_overall"] < 0.04


@pytest.mark.postgres
def test_demo_on_rabbitmq_and_postgresql(tmp_path, fresh_pg, monkeypatch):
    from maestrale.bus.transport import get_transport
    from tests.integration.conftest import AMQP_URL, rabbit_up

    if not rabbit_up():
        pytest.fail(f"RabbitMQ at {AMQP_URL} is not reachable; start it with `rabbitmq-server -detached`")
    namespace = f"demo-{uuid.uuid4().hex[:8]}"
    # a database of its own: tests that count outbox events read the session's shared one
    monkeypatch.setenv("MAESTRALE_DATABASE_URL", fresh_pg)
    monkeypatch.setenv("MAESTRALE_BROKER_URL", AMQP_URL)
    monkeypatch.setenv("MAESTRALE_BUS_NAMESPACE", namespace)
    try:
        s, output = run(tmp_path, "--fault-start", "2012-07-02")
    finally:
        bus = get_transport(AMQP_URL, namespace)
        bus.delete()
        bus.close()
    assert "amqp://" in output and "postgresql" in output
    check_fault_run(s, tmp_path)
