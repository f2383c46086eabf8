"""`maestrale train list | status | cancel` on the embedded database (no bus, no worker needed)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.config import load_settings
from maestrale.training.requests import TrainingRequests

SPEC = {
    "name": "pv-{site}",
    "data": {"dataset": "nrel_system50", "freq": "1h"},
    "target": "power_kw",
    "feature_set": "pv_features",
    "estimator": "ridge",
    "train_window": {"start": "2011-06-01", "end": "2011-07-31"},
    "split": {"holdout": {"test_start": "2011-07-15"}},
    "capacity": 3.4,
}


@pytest.fixture
def requests(tmp_path, monkeypatch) -> TrainingRequests:
    home = tmp_path / "home"
    monkeypatch.setenv("MAESTRALE_HOME", str(home))
    return TrainingRequests(load_settings(home=home).database_url)


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_train_group_lists_its_commands_and_keeps_the_short_form():
    result = run("train", "--help")
    assert result.exit_code == 0
    for command in ("run", "list", "status", "cancel"):
        assert command in result.stdout
    missing = run("train", "no-such-spec.yaml", "--local")  # still `train SPEC.yaml`, not an unknown command
    assert missing.exit_code != 0 and "no-such-spec.yaml" in missing.output


def test_list_status_and_cancel_a_fleet_and_a_request(requests):
    assert "no training requests yet" in run("train", "list").stderr
    fleet = requests.submit({**SPEC, "fleet": {"site": ["a", "b"]}}, requested_by="ops")
    [single] = requests.submit({**SPEC, "name": "pv-c"})

    listed = run("train", "list")
    assert listed.exit_code == 0 and listed.stdout.count("queued") == 3, listed.output
    assert single.id[:8] in listed.stdout and single.id[:9] not in listed.stdout  # 8 characters shown

    one = run("train", "status", single.id[:8])
    assert one.exit_code == 0 and single.id in one.stdout and "pv-c" in one.stdout
    members = run("train", "status", fleet[0].fleet_id)
    assert members.exit_code == 0 and "2 request(s), 2 queued" in members.stdout, members.output

    cancelled = run("train", "cancel", fleet[0].fleet_id)
    assert cancelled.exit_code == 0, cancelled.output
    assert (
        "pv-a: cancelled; it will not be trained" in cancelled.stdout
        and "pv-b: cancelled" in cancelled.stdout
    )
    again = run("train", "cancel", fleet[1].id)
    assert again.exit_code == 1 and "already cancelled" in again.stderr, again.output
    assert "only a queued or started request can be cancelled" in again.stderr

    only = json.loads(run("train", "list", "--status", "cancelled", "--json").stdout)
    assert sorted(r["name"] for r in only) == ["pv-a", "pv-b"]
    assert {r["error"] for r in only} == {f"cancelled by {__import__('getpass').getuser()}"}
    assert requests.get(single.id).status == "queued"  # the other request is untouched


def test_mistakes_say_what_to_do(requests):
    requests.submit({**SPEC, "name": "pv-x"})
    bad_status = run("train", "list", "--status", "lost")
    assert bad_status.exit_code != 0
    assert "unknown training status 'lost': use one of queued, started, completed" in bad_status.stderr
    unknown = run("train", "status", "feedfacecafe")
    assert unknown.exit_code != 0 and "`maestrale train list` shows their ids" in unknown.stderr
    short = run("train", "cancel", "abc")
    assert short.exit_code != 0 and "at least 6" in short.stderr, short.output
