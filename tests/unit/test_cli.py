"""The `maestrale` command line against an embedded registry in a temporary MAESTRALE_HOME."""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from maestrale.cli.main import app

_MAESTRALE_VARS = (
    "MAESTRALE_HOME",
    "MAESTRALE_DATABASE_URL",
    "MAESTRALE_STORAGE_URL",
    "MAESTRALE_REGISTRY_URL",
    "MAESTRALE_TOKEN",
    "MAESTRALE_AUTH",
)
_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # a developer's own MAESTRALE_* settings must not leak into these tests
    for var in _MAESTRALE_VARS:
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def cli(home: Path):
    """Run `maestrale ARGS…` in-process with MAESTRALE_HOME=home and a wide terminal."""
    runner = CliRunner()

    def run(*args: str) -> Result:
        return runner.invoke(app, list(args), env={"MAESTRALE_HOME": str(home), "COLUMNS": "200"})

    return run


def run_json(cli: Any, *args: str) -> Any:
    result = cli(*args, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def reg(home: Path):
    """The Python API on the same embedded registry the CLI opens from MAESTRALE_HOME."""
    from maestrale import Registry

    return Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=(home / "artifacts").as_uri())


@pytest.fixture
def populated(reg):
    """pv-forecast versions 1-3 (nmae = 0.0612345 * alpha), champion → 2, version tag site=p50."""
    import numpy as np
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 3))
    y = X @ np.array([1.0, 2.0, 3.0])
    for alpha in (0.1, 1.0, 10.0):
        reg.register(
            "pv-forecast",
            Ridge(alpha=alpha).fit(X, y),
            params={"alpha": alpha},
            metrics={"nmae": 0.0612345 * alpha, "rmse": 12.3456789},
            tags={"site": "p50"},
        )
    reg.set_alias("pv-forecast", "champion", 2, reason="best backtest")
    return reg


# -- models ------------------------------------------------------------------------------------
def test_models_list_human_and_json(cli, populated):
    result = cli("models", "list")
    assert result.exit_code == 0, result.output
    assert "pv-forecast" in result.stdout and "champion→2" in result.stdout
    assert _TIMESTAMP.search(result.stdout)
    items = run_json(cli, "models", "list")
    assert [(m["name"], m["latest_version"], m["aliases"]) for m in items] == [
        ("pv-forecast", 3, {"champion": 2})
    ]


def test_models_list_empty_home_says_how_to_start(cli):
    result = cli("models", "list")
    assert result.exit_code == 0
    assert result.stdout == "" and "no models yet" in result.stderr
    assert run_json(cli, "models", "list") == []


def test_models_show(cli, populated):
    populated.set_tag("pv-forecast", "owner", "ops")
    model = run_json(cli, "models", "show", "pv-forecast")
    assert model["aliases"] == {"champion": 2} and model["tags"] == {"owner": "ops"}
    assert model["latest_version"] == 3
    human = cli("models", "show", "pv-forecast").stdout
    assert "latest version" in human and "champion" in human and "owner" in human and "ops" in human


def test_models_versions_rounds_metrics_and_shortens_sha(cli, populated):
    versions = run_json(cli, "models", "versions", "pv-forecast")
    assert [v["version"] for v in versions] == [3, 2, 1]
    assert versions[1]["aliases"] == ["champion"] and versions[1]["metrics"]["nmae"] == pytest.approx(
        0.0612345
    )
    assert versions[0]["params"] == {"alpha": 10.0} and len(versions[0]["artifact"]["sha256"]) == 64
    assert len(run_json(cli, "models", "versions", "pv-forecast", "--limit", "2")) == 2
    human = cli("models", "versions", "pv-forecast").stdout
    # one column per metric, rounded
    assert re.search(r"nmae\s.*rmse", human) and "0.06123" in human and "12.35" in human
    assert "0.0612345" not in human
    assert versions[0]["artifact"]["sha256"][:12] in human and versions[0]["artifact"]["sha256"] not in human
    assert _TIMESTAMP.search(human)


def test_models_alias_set_delete_and_history(cli, populated):
    change = run_json(cli, "models", "alias", "pv-forecast", "champion", "3", "--reason", "fresher data")
    assert (change["version"], change["previous_version"], change["reason"]) == (3, 2, "fresher data")
    result = cli("models", "alias", "pv-forecast", "challenger", "1")
    assert result.exit_code == 0 and "pv-forecast@challenger → version 1" in result.stdout
    removed = run_json(cli, "models", "alias", "pv-forecast", "challenger", "--delete")
    assert removed["version"] is None and removed["previous_version"] == 1
    assert populated.get_model("pv-forecast").aliases == {"champion": 3}

    history = run_json(cli, "models", "history", "pv-forecast")
    assert [(h["alias"], h["previous_version"], h["version"]) for h in history] == [
        ("champion", None, 2),
        ("champion", 2, 3),
        ("challenger", None, 1),
        ("challenger", 1, None),
    ]
    only = run_json(cli, "models", "history", "pv-forecast", "--alias", "champion")
    assert [h["reason"] for h in only] == ["best backtest", "fresher data"]
    human = cli("models", "history", "pv-forecast").stdout
    assert "fresher data" in human and "removed" in human and _TIMESTAMP.search(human)


def test_user_text_is_printed_as_typed_not_as_rich_markup(cli, populated):
    populated.set_alias("pv-forecast", "champion", 1, reason="rollback [/bold] [red]now")
    result = cli("models", "history", "pv-forecast")
    assert result.exit_code == 0 and "[/bold]" in result.stdout and "[red]now" in result.stdout
    tagged = cli("models", "tag", "pv-forecast:1", "note", "[/x]")
    assert tagged.exit_code == 0 and "note=[/x]" in tagged.stdout


def test_models_alias_needs_exactly_one_of_version_and_delete(cli, populated):
    assert cli("models", "alias", "pv-forecast", "champion").exit_code == 2
    assert cli("models", "alias", "pv-forecast", "champion", "1", "--delete").exit_code == 2


def test_models_tag_version_via_alias_model_and_delete(cli, populated):
    out = run_json(cli, "models", "tag", "pv-forecast@champion", "validated", "yes")
    assert out == {"target": "pv-forecast:2", "key": "validated", "value": "yes"}
    assert populated.get_version("pv-forecast:2").tags == {"site": "p50", "validated": "yes"}
    result = cli("models", "tag", "pv-forecast", "owner", "ops")
    assert result.exit_code == 0 and "tagged pv-forecast owner=ops" in result.stdout
    assert populated.get_model("pv-forecast").tags == {"owner": "ops"}
    assert cli("models", "tag", "pv-forecast:2", "site", "--delete").exit_code == 0
    assert populated.get_version("pv-forecast:2").tags == {"validated": "yes"}


def test_models_archive_version_and_model(cli, populated):
    archived = run_json(cli, "models", "archive", "pv-forecast:1")
    assert archived["status"] == "archived" and archived["version"] == 1
    refused = cli("models", "archive", "pv-forecast:2")
    assert refused.exit_code == 1 and "champion" in refused.stderr
    assert cli("models", "archive", "pv-forecast").exit_code == 0
    assert run_json(cli, "models", "list") == []
    assert [m["name"] for m in run_json(cli, "models", "list", "--archived")] == ["pv-forecast"]
    back = run_json(cli, "models", "unarchive", "pv-forecast:1", "--reason", "compare it")
    assert back["status"] == "ready" and back["version"] == 1
    again = cli("models", "unarchive", "pv-forecast:1")
    assert again.exit_code == 1 and "is not archived" in again.stderr
    assert cli("models", "unarchive", "pv-forecast").exit_code == 0
    assert [m["name"] for m in run_json(cli, "models", "list")] == ["pv-forecast"]


def test_models_download_writes_verified_bytes(cli, populated, tmp_path):
    mv = populated.get_version("pv-forecast@champion")
    out = run_json(cli, "models", "download", "pv-forecast", "-o", str(tmp_path))
    path = Path(out["path"])
    assert path == tmp_path / "pv-forecast-2.skops"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == mv.artifact.sha256 == out["sha256"]
    assert out["size"] == mv.artifact.size == path.stat().st_size and out["ref"] == "pv-forecast:2"

    again = cli("models", "download", "pv-forecast:2", "-o", str(path))
    assert again.exit_code == 1 and "--force" in again.stderr
    forced = cli("models", "download", "pv-forecast:2", "-o", str(path), "--force")
    assert forced.exit_code == 0 and mv.artifact.sha256 in forced.stdout and str(path) in forced.stdout

    piped = cli("models", "download", "pv-forecast:2", "-o", "-")
    assert piped.exit_code == 0 and hashlib.sha256(piped.stdout_bytes).hexdigest() == mv.artifact.sha256


def test_models_verify_ok_then_corrupted(cli, populated, home):
    results = run_json(cli, "models", "verify", "--all", "pv-forecast")
    assert [(r["ref"], r["ok"]) for r in results] == [(f"pv-forecast:{v}", True) for v in (3, 2, 1)]
    assert cli("models", "verify", "pv-forecast@champion").exit_code == 0

    key = populated.get_version("pv-forecast:2").artifact.key
    (home / "artifacts" / key).write_bytes(b"tampered")
    bad = cli("models", "verify", "--all", "pv-forecast")
    assert bad.exit_code == 1
    assert "pv-forecast:2" in bad.stderr and "FAILED" in bad.stdout and "corrupted" in bad.stdout
    one = cli("models", "verify", "pv-forecast:2", "--json")
    assert one.exit_code == 1
    [result] = json.loads(one.stdout)
    assert result["ok"] is False and result["sha256_actual"] == hashlib.sha256(b"tampered").hexdigest()
    download = cli("models", "download", "pv-forecast:2")
    assert download.exit_code == 1 and "pv-forecast:2 is corrupted" in download.stderr


def test_models_search(cli, populated):
    found = run_json(cli, "models", "search", "metrics.nmae < 0.1", "--order-by", "metrics.nmae")
    assert [v["version"] for v in found] == [1, 2]
    assert [v["version"] for v in run_json(cli, "models", "search", "tags.site = 'p50'", "--limit", "1")] == [
        3
    ]
    human = cli("models", "search", "params.alpha >= 1", "--order-by", "version")
    assert human.exit_code == 0 and "pv-forecast" in human.stdout and "0.6123" in human.stdout
    bad = cli("models", "search", "metrics.nmae <<< 1")
    assert bad.exit_code == 1 and bad.stderr.startswith("error: ")


# -- errors ------------------------------------------------------------------------------------
def test_unknown_model_is_a_one_line_error(cli, populated):
    result = cli("models", "show", "nope")
    assert result.exit_code == 1
    assert "'nope'" in result.stderr and "not found" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    assert cli("models", "versions", "nope").exit_code == 1


UNKNOWN = [
    ("models", "show", "nope"),
    ("models", "show", "nope:1"),
    ("models", "show", "pv-forecast:9"),
    ("models", "show", "pv-forecast@staging"),
    ("models", "versions", "nope"),
    ("models", "versions", "nope", "--json"),
    ("models", "history", "nope"),
    ("models", "compare", "pv-forecast:1", "nope:1"),
    ("models", "alias", "nope", "champion", "1"),
    ("models", "tag", "nope:1", "site", "p50"),
    ("models", "archive", "nope"),
    ("models", "download", "nope:1", "-o", "model.bin"),
    ("models", "verify", "nope"),
    ("deploy", "render", "nope@champion"),
]


@pytest.mark.parametrize("args", UNKNOWN, ids=" ".join)
def test_every_command_exits_1_on_an_unknown_model_or_version(cli, populated, args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # `download -o` must not write into the checkout
    result = cli(*args)
    assert result.exit_code == 1, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and ("not found" in first or "has no alias 'staging'" in first)
    assert "Traceback" not in result.output and not (tmp_path / "model.bin").exists()
    assert "registry: sqlite:///" in result.stderr  # which registry was asked: the usual cause


def test_invalid_name_states_the_naming_rule(cli):
    result = cli("models", "show", "Bad/Name")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: invalid model name 'Bad/Name'")
    assert "lowercase letters, digits" in result.stderr and "Traceback" not in result.output


def test_console_script_main_prints_error_without_traceback(home):
    env = {**os.environ, "MAESTRALE_HOME": str(home)}
    proc = subprocess.run(
        [sys.executable, "-m", "maestrale.cli.main", "models", "show", "nope"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    # the error, then which registry answered (and, this first time, that the home is new)
    first, *notes = proc.stderr.strip().splitlines()
    assert first == "error: model 'nope' not found; list models with `maestrale models list`"
    assert "Traceback" not in proc.stderr and str(home) in notes[0]


def test_cli_import_is_light():
    code = (
        "import sys, maestrale.cli.main\n"
        "names = ('fastapi', 'uvicorn', 'sqlalchemy', 'maestrale.registry.client')\n"
        "heavy = [m for m in names if m in sys.modules]\n"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout.startswith("maestrale ")


# -- admin -------------------------------------------------------------------------------------
def test_token_create_list_revoke(cli, home):
    from maestrale.tokens import lookup_token

    db = f"sqlite:///{home}/registry.db"
    result = cli("token", "create", "ci", "--scope", "write")
    assert result.exit_code == 0, result.output
    secret = result.stdout.strip()
    assert secret.startswith("mst_") and "not shown again" in result.stderr
    info = lookup_token(db, secret)
    assert info is not None and info.name == "ci" and info.scope == "write" and info.allows("write")

    created = run_json(cli, "token", "create", "reader")
    assert created["scope"] == "read" and lookup_token(db, created["token"]).id == created["id"]
    listed = run_json(cli, "token", "list")
    assert [(t["name"], t["scope"], t["revoked"]) for t in listed] == [
        ("ci", "write", False),
        ("reader", "read", False),
    ]
    assert all("token" not in t and secret not in json.dumps(t) for t in listed)

    assert cli("token", "revoke", str(info.id)).exit_code == 0
    assert lookup_token(db, secret) is None
    missing = cli("token", "revoke", "999")
    assert missing.exit_code == 1 and "token 999 not found" in missing.stderr
    bad_scope = cli("token", "create", "x", "--scope", "root")
    assert bad_scope.exit_code == 1 and "read, predict, write, admin" in bad_scope.stderr


def test_db_upgrade_is_idempotent(cli, home):
    from maestrale.platform.db import HEAD_REVISION

    before = run_json(cli, "db", "current")
    assert before["revision"] is None and before["up_to_date"] is False
    first = run_json(cli, "db", "upgrade")
    assert first["from"] is None and first["revision"] == HEAD_REVISION
    second = cli("db", "upgrade")
    assert second.exit_code == 0 and "already at revision" in second.stdout
    assert run_json(cli, "db", "current") == {
        "database_url": f"sqlite:///{home}/registry.db",
        "revision": HEAD_REVISION,
        "head": HEAD_REVISION,
        "up_to_date": True,
    }


def test_gc_dry_run_lists_orphan_then_gc_deletes_only_it(cli, populated, home):
    orphan = populated._blobs.put_bytes(b"orphan")
    young = cli("gc", "--dry-run")  # default grace: 1 hour, so a fresh upload is kept
    assert young.exit_code == 0 and orphan.key not in young.stdout
    listed = run_json(cli, "gc", "--dry-run", "--grace-hours", "0")
    assert listed == {"dry_run": True, "objects": [orphan.key]}
    assert (home / "artifacts" / orphan.key).exists()
    deleted = cli("gc", "--grace-hours", "0")
    assert deleted.exit_code == 0 and orphan.key in deleted.stdout and "deleted 1" in deleted.stderr
    assert not (home / "artifacts" / orphan.key).exists()
    assert all(r["ok"] for r in run_json(cli, "models", "verify", "--all", "pv-forecast"))


# -- server ------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_server_serves_with_bootstrapped_admin_token(home):
    import httpx

    port = _free_port()
    env = {**os.environ, "MAESTRALE_HOME": str(home)}
    cmd = [sys.executable, "-m", "maestrale.cli.main", "server", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.communicate()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "maestrale server did not answer /healthz"
            time.sleep(0.1)
        token_file = home / "admin.token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        assert httpx.get(f"{url}/api/v1/models", timeout=5).status_code == 401
        ok = httpx.get(f"{url}/api/v1/models", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert ok.status_code == 200 and ok.json()["items"] == []
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=20)
    assert str(token_file) in out


# -- monitoring ------------------------------------------------------------------------------------
POLICY = """
name: cli-test
conditions:
  - {name: accuracy, metric: nmae, window: 2D, ratio_to_training: 1.3, min_samples: 24}
actions: [breach]
"""


def test_policy_check_prints_the_normalised_policy(cli, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    result = cli("policy", "check", str(path))
    assert result.exit_code == 0, result.output
    assert "policy 'cli-test' is valid" in result.stdout
    assert "accuracy: nmae over 2D > 1.3 × training (n ≥ 24) → breach" in result.stdout
    assert "cooldown: 7D" in result.stdout  # defaults are filled in
    normalised = run_json(cli, "policy", "check", str(path))
    assert normalised["conditions"][0]["ratio_to_training"] == 1.3
    assert normalised["promotion"]["margin"] == 0.05


def test_policy_check_names_each_invalid_field_and_exits_2(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(POLICY.replace("metric: nmae", "metric: nmea") + "cooldown: soon\n")
    result = cli("policy", "check", str(path))
    assert result.exit_code == 2 and result.stdout == ""
    assert f"{path} is invalid" in result.stderr
    assert "conditions.0: unknown metric 'nmea'" in result.stderr and "cooldown:" in result.stderr
    missing = cli("policy", "check", str(tmp_path / "nope.yaml"))
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_monitor_without_subcommand_prints_help(cli):
    result = cli("monitor")
    assert "status" in result.output and "evaluate" in result.output and "Traceback" not in result.output


def test_monitor_evaluate_then_status_breaches_on_sqlite(cli, home, reg, tmp_path):
    """Predictions 10% too high on a 4 kW plant: nMAE 2D is ~10× the registered 0.01, a breach."""
    from datetime import UTC, datetime, timedelta

    import numpy as np
    import pandas as pd
    from sklearn.linear_model import Ridge

    from maestrale.monitoring.store import MonitorStore

    rng = np.random.default_rng(5)
    times = pd.date_range(datetime(2012, 6, 1, tzinfo=UTC), periods=72, freq="h")
    ghi = rng.uniform(0, 1, 72)
    power = 4 * ghi
    reg.register("pv-mon", Ridge().fit(ghi[:, None], power), metrics={"nmae": 0.01}, spec={"capacity": 4.0})
    reg.set_alias("pv-mon", "champion", 1)
    store = MonitorStore(f"sqlite:///{home}/registry.db")
    records = [
        {"record_id": f"p/{t.isoformat()}", "entity": "p", "issued_at": (t - timedelta(hours=24)).isoformat(),
         "target_time": t.isoformat(), "features": {"ghi": g}, "prediction": 1.1 * p}
        for t, g, p in zip(times, ghi, power, strict=True)
    ]  # fmt: skip
    assert store.log_predictions("pv-mon", 1, records).stored == 72
    actuals = [
        {"entity": "p", "target_time": t.isoformat(), "value": p} for t, p in zip(times, power, strict=True)
    ]
    store.log_actuals(actuals)

    # nothing evaluated yet: the status says so
    (before,) = run_json(cli, "monitor", "status")
    assert before["model"] == "pv-mon" and before["serving_version"] == 1 and before["as_of"] is None

    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    evaluated = run_json(cli, "monitor", "evaluate", "pv-mon", "--policy", str(policy))
    expected = float(np.mean(0.1 * power[-48:]) / 4.0)
    assert evaluated["as_of"] == times[-1].isoformat()
    assert evaluated["performance"]["2D"]["overall"]["nmae"] == pytest.approx(expected)
    assert [b["condition"] for b in evaluated["breaches"]] == ["accuracy"]

    (status,) = run_json(cli, "monitor", "status", "pv-mon")
    assert status["champion"] == 1 and status["open_breaches"] == 1 and status["breaches_total"] == 1
    assert status["performance"]["2D"]["n"] == 48
    assert status["performance"]["2D"]["ratios"]["nmae"] == pytest.approx(expected / 0.01, rel=1e-5)
    table = cli("monitor", "status")
    assert table.exit_code == 0 and "pv-mon" in table.stdout and "(n=48, 2D)" in table.stdout
    assert "1 open / 1" in table.stdout

    (breach,) = run_json(cli, "monitor", "breaches", "pv-mon")
    assert breach["metric"] == "nmae" and breach["n"] == 48 and breach["threshold"] == pytest.approx(0.013)
    assert run_json(cli, "monitor", "decisions", "pv-mon") == []
    assert "no champion/challenger decisions" in cli("monitor", "decisions", "pv-mon").stdout

    unknown = cli("monitor", "status", "pv-nope")
    assert unknown.exit_code == 1 and "nothing monitored for 'pv-nope'" in unknown.stderr
    naive = cli("monitor", "evaluate", "pv-mon", "--as-of", "2012-06-03T00:00")
    assert naive.exit_code == 2 and "time zone" in naive.output
