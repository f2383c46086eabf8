"""Embedded means complete: with default settings (memory:// bus, no monitor in this process) the records of
`maestrale.log_predictions` / `log_actuals` land in the embedded monitor store, and `maestrale monitor status`
(the CLI, same home) sees them. Each record is checked on the client: a NaN prediction or a bad time is
reported with its row and never counted as logged.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text
from typer.testing import CliRunner

import maestrale
from maestrale.cli.main import app
from maestrale.monitoring.client import RejectedRecords
from maestrale.timeparse import TimeParseError

ISSUED = "2024-05-31T12:00:00Z"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh embedded home, and no other MAESTRALE_* setting: the defaults a new user has."""
    for var in [v for v in os.environ if v.startswith("MAESTRALE_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("MAESTRALE_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def forecast(n: int = 24) -> pd.DataFrame:
    idx = pd.date_range("2024-06-01", periods=n, freq="h", tz="Europe/Rome")
    return pd.DataFrame({"prediction": np.linspace(0.0, 5.0, n), "ghi": np.linspace(0, 800, n)}, index=idx)


def stored(home: Path) -> tuple[int, int]:
    """(predictions, actuals) in the embedded monitor store, read with SQL."""
    from sqlalchemy import create_engine

    if not (home / "registry.db").exists():
        return 0, 0  # nothing ever reached the store
    engine = create_engine(f"sqlite:///{home}/registry.db")
    try:
        with engine.connect() as c:
            return (
                c.execute(text("SELECT count(*) FROM predictions")).scalar_one(),
                c.execute(text("SELECT count(*) FROM actuals")).scalar_one(),
            )
    finally:
        engine.dispose()


def status(home: Path) -> list[dict]:
    result = CliRunner().invoke(app, ["monitor", "status", "--json"], env={"MAESTRALE_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_logged_records_land_in_the_embedded_store_and_status_sees_them(home: Path):
    assert maestrale.log_predictions(forecast(), model="pv-a", version=1, entity="a", issued_at=ISSUED) == 24
    actuals = pd.Series(np.ones(24), index=forecast().index)
    assert maestrale.log_actuals(actuals, entity="a") == 24
    assert stored(home) == (24, 24)
    [item] = status(home)
    assert item["model"] == "pv-a" and item["serving_version"] == 1
    # logging the same forecast again stores it once (record ids), and says so by its count
    assert maestrale.log_predictions(forecast(), model="pv-a", version=1, entity="a", issued_at=ISSUED) == 24
    assert stored(home) == (24, 24)


def test_a_nan_prediction_is_reported_with_its_row_and_never_counted(home: Path):
    bad = forecast()
    bad.iloc[3, 0] = np.nan
    with pytest.raises(RejectedRecords, match=r"1 of 24 prediction records.*nothing was logged: row 3: "
                       r"prediction is nan.*errors='skip'") as err:  # fmt: skip
        maestrale.log_predictions(bad, model="pv-a", version=1, entity="a", issued_at=ISSUED)
    assert [r.index for r in err.value.rejected] == [3]
    assert stored(home) == (0, 0)
    # errors="skip" logs the others and counts only them
    assert (
        maestrale.log_predictions(bad, model="pv-a", version=1, entity="a", issued_at=ISSUED, errors="skip")
        == 23
    )
    assert stored(home) == (23, 0)


def test_bad_times_are_refused_on_the_client_with_the_fix(home: Path):
    naive = forecast().tz_localize(None)
    with pytest.raises(TimeParseError, match=r"has no time zone.*timezone='Europe/Rome'"):
        maestrale.log_predictions(naive, model="pv-a", version=1, entity="a", issued_at=ISSUED)
    # the same naive local times with their zone declared: the fall-back hour of Rome kept apart
    local = pd.date_range("2024-10-27", periods=25, freq="h", tz="Europe/Rome").tz_localize(None)
    measured = pd.DataFrame({"target_time": local.strftime("%Y-%m-%d %H:%M"), "value": 1.0})
    assert maestrale.log_actuals(measured, entity="a", timezone="Europe/Rome") == 25
    garbled = measured.assign(target_time=[*measured["target_time"][:-1], "27/10/2024 23:00"])
    with pytest.raises(TimeParseError, match=r"'27/10/2024 23:00' at row 24"):
        maestrale.log_actuals(garbled, entity="b", timezone="Europe/Rome")
    assert stored(home) == (0, 25)
