"""`maestrale monitor import`: CSV and Parquet into the monitor's store, row by row (SQLite, PostgreSQL)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime

import pandas as pd
import pytest
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.errors import InvalidInput
from maestrale.monitoring.importer import ColumnMap, import_file
from maestrale.monitoring.store import MonitorStore
from maestrale.timeparse import TimeParseError

# Local Rome times across the October 2024 fall-back: 02:00 and 02:30 come twice (summer, then winter)
ROME = ["2024-10-27 01:00", "2024-10-27 02:00", "2024-10-27 02:30", "2024-10-27 02:00", "2024-10-27 02:30",
        "2024-10-27 03:00"]  # fmt: skip


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path) -> MonitorStore:
    if request.param == "sqlite":
        return MonitorStore(f"sqlite:///{tmp_path}/m.db")
    s = MonitorStore(request.getfixturevalue("pg_url"))
    with s._writer.begin() as conn:
        for table in ("predictions", "actuals", "monitor_state"):
            conn.exec_driver_sql(f"DELETE FROM {table}")
    return s


def write_csv(path, rows: list[list[str]]) -> None:
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def test_actuals_csv_in_local_time_across_dst_with_bad_rows_named(store, tmp_path):
    path = tmp_path / "p50.csv"
    rows = [["timestamp", "power_kw"]] + [[t, str(i + 1.0)] for i, t in enumerate(ROME)]
    rows[3][1] = "n/a"  # row 3: not a number
    rows.append(["27/10/2024 04:00", "7.0"])  # row 7: day/month/year without --time-format
    write_csv(path, rows)
    rejects = tmp_path / "bad.csv"
    m = ColumnMap(time="timestamp", value="power_kw", entity="p50", timezone="Europe/Rome")
    result = import_file(store, "actuals", path, m, rejects_path=rejects, chunk_rows=4)  # two chunks
    assert (result.rows, result.stored, result.rejected_count) == (7, 5, 2)
    assert [(r.row, r.column) for r in result.rejects] == [(3, "power_kw"), (7, "timestamp")]
    assert "not a number: 'n/a'" in result.rejects[0].reason
    assert "day/month/year" in result.rejects[1].reason and "--time-format" in result.rejects[1].reason
    assert rejects.read_text().splitlines()[1].startswith("3,power_kw,")
    got = store.actual_series(["p50"], datetime(2024, 10, 26, tzinfo=UTC), datetime(2024, 10, 28, tzinfo=UTC))
    # the repeated hour is two distinct instants (summer +02:00, then winter +01:00): nothing merged
    # (row 3, the summer 02:30 = 00:30Z, is the one rejected for its value)
    expected = pd.to_datetime(["2024-10-26T23:00Z", "2024-10-27T00:00Z", "2024-10-27T01:00Z",
                               "2024-10-27T01:30Z", "2024-10-27T02:00Z"], utc=True)  # fmt: skip
    assert list(got.sort_values("target_time")["target_time"]) == list(expected)
    again = import_file(store, "actuals", path, m)  # idempotent: the same actuals replace themselves
    assert (
        again.stored == 5
        and len(store.actual_series(["p50"], expected[0], expected[-1] + pd.Timedelta("1h"))) == 5
    )


def test_naive_times_without_a_zone_and_missing_columns_stop_the_import(store, tmp_path):
    path = tmp_path / "a.csv"
    write_csv(path, [["time", "value"], ["2024-06-01 10:00", "1.0"]])
    with pytest.raises(
        TimeParseError, match=r"column 'time' of a.csv has no time zone.*--timezone Europe/Rome"
    ):
        import_file(store, "actuals", path, ColumnMap(time="time", entity="p1"))
    with pytest.raises(
        InvalidInput, match=r"no column for value \(--value-col\): 'power'.*its columns are time, value"
    ):
        import_file(
            store, "actuals", path, ColumnMap(time="time", value="power", entity="p1", timezone="UTC")
        )
    with pytest.raises(InvalidInput, match="--entity-col COLUMN or --entity NAME"):
        import_file(store, "actuals", path, ColumnMap(time="time", timezone="UTC"))


def test_predictions_parquet_with_features_and_issue_times(store, tmp_path):
    times = pd.date_range("2024-06-01T00:00Z", periods=48, freq="h")
    frame = pd.DataFrame({
        "target": times, "issued": times.floor("D") - pd.Timedelta("12h"), "site": "p1",
        "forecast": [float(i) for i in range(48)], "ghi": 500.0, "temp_air": 20.0, "note": "ok",
    })  # fmt: skip
    frame.loc[5, "forecast"] = float("nan")  # row 6: no forecast
    path = tmp_path / "f.parquet"
    frame.to_parquet(path)
    m = ColumnMap(time="target", prediction="forecast", entity_col="site", issued_at_col="issued")
    result = import_file(store, "predictions", path, m, model="pv-imp", version=2, chunk_rows=20)
    assert (result.rows, result.stored, result.rejected_count) == (48, 47, 1)
    assert (result.rejects[0].row, result.rejects[0].column) == (6, "forecast")
    logged = store.logged("pv-imp", times[0].to_pydatetime(), times[-1].to_pydatetime() + pd.Timedelta("1h"))
    assert len(logged) == 47 and set(logged["version"]) == {2}
    assert {"ghi", "temp_air"} <= set(logged.columns) and "note" not in logged.columns  # text is no input
    assert import_file(store, "predictions", path, m, model="pv-imp", version=2).duplicates == 47


def test_cli_import_then_backfill_on_sqlite(tmp_path):
    env = {
        "MAESTRALE_DATABASE_URL": f"sqlite:///{tmp_path}/m.db",
        "MAESTRALE_STORAGE_URL": f"file://{tmp_path}/a",
    }
    path = tmp_path / "p.csv"
    write_csv(path, [["t", "kw"], ["01/06/2024 10:00", "1.5"], ["01/06/2024 11:00", "x"]])  # day first
    runner = CliRunner()
    base = [
        "monitor",
        "import",
        "actuals",
        str(path),
        "--time-col",
        "t",
        "--value-col",
        "kw",
        "--entity",
        "p1",
    ]
    res = runner.invoke(app, base, env=env)  # no time readable: the format is the mistake, not the rows
    assert res.exit_code == 1 and "--time-format '%d/%m/%Y %H:%M'" in res.stderr
    res = runner.invoke(app, [*base, "--time-format", "%d/%m/%Y %H:%M"], env=env)
    assert res.exit_code == 1 and "has no time zone" in res.stderr
    assert "--timezone Europe/Rome" in res.stderr
    rejects = tmp_path / "r.csv"
    zone = ["--timezone", "Europe/Rome", "--time-format", "%d/%m/%Y %H:%M"]
    res = runner.invoke(app, [*base, *zone, "--rejects", str(rejects)], env=env)
    assert res.exit_code == 0, res.output
    assert "p.csv: 2 rows: 1 actuals stored, 0 already stored, 1 rejected" in res.stdout
    assert "row 2, column 'kw': not a number: 'x'" in res.stderr and rejects.exists()
    res = runner.invoke(app, ["monitor", "import", "predictions", str(path), "--time-col", "t"], env=env)
    assert res.exit_code == 2 and "--model NAME --version N" in res.output
