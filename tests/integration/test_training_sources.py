"""Training data sources on real backends: local files, fsspec URLs, SQLite, PostgreSQL, packaged datasets.

DVC has its own module (test_training_dvc.py): it builds real git + DVC repositories.
"""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from maestrale.errors import InvalidInput
from maestrale.registry.metadata import fingerprint
from maestrale.training.sources import load_data, sha256_bytes
from maestrale.training.spec import load_spec
from maestrale.training.trainer import load_for
from maestrale.training.validate import DataError, prepare


@pytest.fixture(scope="module")
def pv() -> pd.DataFrame:
    """Two weeks of real NREL system 50 data with the time as a column, as a CSV or table holds it."""
    from maestrale.datasets import nrel_system50

    df = nrel_system50("1h").loc["2011-06-01":"2011-06-14", ["ghi", "temp_air", "power_kw"]]
    return df.reset_index()


def spec_for(data: str, extra: str = "") -> str:
    return (
        f"name: pv-src\ndata: {data}\ntime_column: time\ntarget: power_kw\nfeatures: [ghi, temp_air]\n"
        f"estimator: ridge\n{extra}"
    )


def test_csv_by_path_records_bytes_fingerprint_and_mtime(pv: pd.DataFrame, tmp_path: Path):
    path = tmp_path / "site.csv"
    pv.to_csv(path, index=False)
    spec = load_spec(spec_for(f"{{uri: {path}}}"))
    got = load_data(spec.data)
    assert got.version.kind == "file" and got.version.uri == str(path)
    assert got.version.fingerprint == sha256_bytes(path.read_bytes())
    assert got.version.size == path.stat().st_size and got.version.mtime and got.version.rows == len(pv)
    prepared = prepare(spec, got)
    assert len(prepared.X) == len(pv) and str(prepared.times.tz) == "UTC"
    before = got.version.fingerprint
    pv.assign(power_kw=pv.power_kw + 0.001).to_csv(path, index=False)
    assert load_data(spec.data).version.fingerprint != before  # any change of content shows


def test_parquet_and_gzip_csv(pv: pd.DataFrame, tmp_path: Path):
    pv.to_parquet(tmp_path / "site.parquet")
    pv.to_csv(tmp_path / "site.csv.gz", index=False)
    a = load_data(load_spec(spec_for(f"{{uri: {tmp_path / 'site.parquet'}}}")).data)
    b = load_data(load_spec(spec_for(f"{{uri: {tmp_path / 'site.csv.gz'}}}")).data)
    assert a.frame.shape == b.frame.shape == pv.shape
    np.testing.assert_allclose(a.frame["power_kw"], b.frame["power_kw"])


def test_fsspec_url_with_storage_options_from_the_environment(
    pv: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
):
    # the memory filesystem is a real fsspec backend: the same code path as abfs:// or s3://
    with fsspec.open("memory://bucket/pv/site.parquet", "wb") as fh:
        pv.to_parquet(fh)
    monkeypatch.setenv("MAESTRALE_STORAGE_OPTIONS", json.dumps({"skip_instance_cache": True}))
    got = load_data(load_spec(spec_for("{uri: 'memory://bucket/pv/site.parquet'}")).data)
    assert got.version.uri == "memory://bucket/pv/site.parquet" and len(got.frame) == len(pv)
    monkeypatch.setenv("MAESTRALE_STORAGE_OPTIONS", "{not json")
    with pytest.raises(InvalidInput, match="MAESTRALE_STORAGE_OPTIONS is not valid JSON"):
        load_data(load_spec(spec_for("{uri: 'memory://bucket/pv/site.parquet'}")).data)


def test_file_errors_are_clear(tmp_path: Path):
    with pytest.raises(InvalidInput, match="data file .*nope.csv' not found"):
        load_data(load_spec(spec_for(f"{{uri: {tmp_path / 'nope.csv'}}}")).data)
    (tmp_path / "site.dat").write_text("a,b\n")
    with pytest.raises(InvalidInput, match="add `format: csv`"):
        load_data(load_spec(spec_for(f"{{uri: {tmp_path / 'site.dat'}}}")).data)
    with pytest.raises(InvalidInput, match="environment variable NO_SUCH_DIR .*data.uri.* is not set"):
        load_data(load_spec(spec_for("{uri: '${NO_SUCH_DIR}/x.csv'}")).data)


def _write_table(url: str, pv: pd.DataFrame) -> None:
    engine = sa.create_engine(url)
    try:
        pv.to_sql("pv_hourly", engine, if_exists="replace", index=False)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/pv.db"
    return request.getfixturevalue("pg_url")


def test_sql_query_with_window_bounds(sql_url: str, pv: pd.DataFrame, monkeypatch: pytest.MonkeyPatch):
    _write_table(sql_url, pv)
    monkeypatch.setenv("PV_DB_URL", sql_url)
    query = "SELECT time, ghi, temp_air, power_kw FROM pv_hourly"
    query += " WHERE time >= :start AND time < :end ORDER BY time"
    spec = load_spec(
        spec_for(
            json.dumps({"sql": {"url": "${PV_DB_URL}", "query": query}}),
            # SQLite keeps no zone (the stamps come back naive): the spec says which one they are in
            "train_window: {start: 2011-06-03, end: 2011-06-09}\ntimezone: UTC\n",
        )
    )
    got = load_for(spec)
    prepared = prepare(spec, got)
    assert str(prepared.times.tz) == "UTC"
    assert prepared.times[0] == pd.Timestamp("2011-06-03", tz="UTC")
    assert prepared.times[-1] == pd.Timestamp("2011-06-09 23:00", tz="UTC")  # a date `end` covers its day
    assert got.version.kind == "sql" and got.version.uri == "${PV_DB_URL}" and got.version.query == query
    assert got.version.fingerprint == fingerprint(got.frame) and got.version.rows == 7 * 24
    assert "time" in spec.to_record()["data"]["sql"]["query"]


def test_sql_errors_say_what_to_fix(sql_url: str, pv: pd.DataFrame):
    _write_table(sql_url, pv)
    unordered = load_spec(
        spec_for(
            json.dumps({"sql": {"url": sql_url, "query": "SELECT * FROM pv_hourly ORDER BY ghi"}}),
            "timezone: UTC\n",
        )
    )
    with pytest.raises(DataError, match=r"not increasing.*ORDER BY the time column"):
        prepare(unordered, load_for(unordered))
    bad = load_spec(spec_for(json.dumps({"sql": {"url": sql_url, "query": "SELECT * FROM no_such_table"}})))
    with pytest.raises(InvalidInput, match="the query failed .*fix data.sql.query"):
        load_for(bad)
    unbound = load_spec(
        spec_for(
            json.dumps({"sql": {"url": sql_url, "query": "SELECT * FROM pv_hourly WHERE time >= :start"}})
        )
    )
    with pytest.raises(InvalidInput, match="uses :start but the spec has no train_window.start"):
        load_for(unbound)


def test_sql_password_never_reaches_the_record(pg_url: str, pv: pd.DataFrame):
    url = pg_url.replace("postgres@", "postgres:not-the-password@")
    spec = load_spec(spec_for(json.dumps({"sql": {"url": url, "query": "SELECT 1"}})))
    assert "not-the-password" not in json.dumps(spec.to_record())


def test_packaged_datasets_are_read_once_and_fingerprinted():
    spec = load_spec(spec_for("{dataset: nrel_system50, freq: 1h}").replace("time_column: time\n", ""))
    a, b = load_for(spec), load_for(spec)
    assert a is b  # cached: a fleet on one dataset reads it once
    assert a.version.uri == "maestrale://datasets/nrel_system50?freq=1h" and a.version.rev
    tmy = load_for(
        load_spec(spec_for("{dataset: pvgis_italy_tmy, year: 2021}").replace("time_column: time\n", ""))
    )
    assert tmy.frame.index.is_monotonic_increasing and tmy.version.rows == 8760


@pytest.fixture(
    params=[
        pytest.param("azure_container", marks=pytest.mark.azurite),
        pytest.param("s3_bucket", marks=pytest.mark.s3),
    ]
)
def blob(request: pytest.FixtureRequest):
    """A real object store: Azure Blob (Azurite) or S3 (moto server)."""
    return request.getfixturevalue(request.param)


def test_object_store_url_records_etag_and_keeps_secrets_out(blob, pv: pd.DataFrame, monkeypatch):
    url = blob.path("pv", "site.parquet")
    with fsspec.open(url, "wb", **blob.storage_options) as fh:
        pv.to_parquet(fh)
    # secrets from the environment through ${VAR}: the recorded spec keeps the reference, not the value
    options = {
        k: f"${{BLOB_OPT_{k.upper()}}}" if isinstance(v, str) else v for k, v in blob.storage_options.items()
    }
    for k, v in blob.storage_options.items():
        if isinstance(v, str):
            monkeypatch.setenv(f"BLOB_OPT_{k.upper()}", v)
    spec = load_spec(spec_for(json.dumps({"uri": url, "storage_options": options})))
    got = load_for(spec)
    assert len(got.frame) == len(pv) and got.version.uri == url
    assert got.version.etag and got.version.version == f"etag:{got.version.etag}"
    assert json.dumps(spec.to_record()).count("${BLOB_OPT_") == sum(
        isinstance(v, str) for v in options.values()
    )
    literal = load_spec(spec_for(json.dumps({"uri": url, "storage_options": blob.storage_options})))
    recorded = json.dumps(literal.to_record())
    for key in ("account_key", "connection_string", "secret", "key"):
        value = blob.storage_options.get(key)
        if isinstance(value, str):
            assert value not in recorded, key
