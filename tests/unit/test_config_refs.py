"""Settings validation, references and the search filter language."""

from __future__ import annotations

import pytest

from maestrale.config import load_settings
from maestrale.errors import ConfigError, InvalidInput, InvalidName
from maestrale.refs import ModelRef
from maestrale.registry.search import compile_filter, compile_order, decode_token, encode_token


def test_embedded_defaults_live_under_home(tmp_path):
    s = load_settings(home=tmp_path)
    assert s.database_url == f"sqlite:///{tmp_path}/registry.db"
    assert s.storage_url == f"file://{tmp_path}/artifacts"
    assert s.broker_url == "memory://"


def test_environment_is_read(monkeypatch, tmp_path):
    monkeypatch.setenv("MAESTRALE_DATABASE_URL", "postgresql+psycopg://u@db:5432/m")
    monkeypatch.setenv("MAESTRALE_STORAGE_URL", "abfs://models/prod")
    monkeypatch.setenv("MAESTRALE_STORAGE_OPTIONS", '{"account_name": "acme"}')
    monkeypatch.setenv("MAESTRALE_BROKER_URL", "amqp://u:p@rabbit:5672/prod")
    s = load_settings()
    assert (s.database_url, s.storage_url, s.broker_url) == (
        "postgresql+psycopg://u@db:5432/m",
        "abfs://models/prod",
        "amqp://u:p@rabbit:5672/prod",
    )
    assert s.storage_options == {"account_name": "acme"}


@pytest.mark.parametrize(
    ("var", "value", "expected"),
    [
        (
            "MAESTRALE_DATABASE_URL",
            "mongodb://x",
            "MAESTRALE_DATABASE_URL: .*unsupported scheme 'mongodb'.*postgresql",
        ),
        (
            "MAESTRALE_STORAGE_URL",
            "ftp://host/x",
            "MAESTRALE_STORAGE_URL: .*unsupported scheme 'ftp'.*abfs://",
        ),
        ("MAESTRALE_BROKER_URL", "kafka://k", "MAESTRALE_BROKER_URL: .*unsupported scheme 'kafka'.*amqp://"),
        ("MAESTRALE_MAX_UPLOAD_MB", "lots", "MAESTRALE_MAX_UPLOAD_MB: .*integer"),
        ("MAESTRALE_STORAGE_OPTIONS", "{not json", "MAESTRALE_STORAGE_OPTIONS"),
    ],
)
def test_bad_settings_name_the_variable_and_an_example(monkeypatch, var, value, expected):
    monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError, match=expected):
        load_settings()


def test_plain_path_storage_becomes_a_file_url(tmp_path):
    assert load_settings(storage_url=str(tmp_path)).storage_url == tmp_path.as_uri()


@pytest.mark.parametrize(
    ("ref", "parsed"),
    [
        ("pv-forecast", ModelRef("pv-forecast", alias="champion")),
        ("pv-forecast@challenger", ModelRef("pv-forecast", alias="challenger")),
        ("pv.p50_v2:12", ModelRef("pv.p50_v2", version=12)),
    ],
)
def test_references(ref, parsed):
    assert ModelRef.parse(ref) == parsed
    assert str(parsed) in (ref, f"{ref}@champion")


@pytest.mark.parametrize("ref", ["pv:0", "pv:x", "pv:-1", "Pv", "pv@Champ", "../pv", "pv@", ""])
def test_bad_references(ref):
    with pytest.raises(InvalidInput):
        ModelRef.parse(ref)


def test_bad_name_error_says_the_rule():
    with pytest.raises(InvalidName, match="lowercase letters, digits, '.', '_' or '-'.*e.g. 'pv-forecast'"):
        ModelRef.parse("PV Forecast")


def test_filter_compiles_each_field_kind():
    cond = compile_filter(
        "name like 'pv-%' and metrics.nmae <= 0.1 and params.alpha > 1 and "
        "tags.site = 'p50' and version >= 2 and status = 'ready'"
    )
    sql = str(cond.compile(compile_kwargs={"literal_binds": True}))
    for fragment in (
        "models.name LIKE 'pv-%'",
        "version_metrics.value <= 0.1",
        "version_params.value_num > 1",
        "version_tags.value = 'p50'",
        "versions.version >= 2",
        "versions.status = 'ready'",
    ):
        assert fragment in sql
    assert compile_filter("  ") is None


def test_quoted_and_inside_values_is_not_a_separator():
    sql = str(compile_filter("tags.note = 'wind and solar'").compile(compile_kwargs={"literal_binds": True}))
    assert "'wind and solar'" in sql


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("metrics.nmae < 'low'", "metrics are numbers"),
        ("foo.bar = 1", "unknown field"),
        ("name == 'x'", "cannot parse"),
        ("name = 'a' or name = 'b'", "'or' is not supported"),
        ("metrics.nmae like 0.1", "needs a quoted pattern"),
    ],
)
def test_filter_errors_explain_the_syntax(text, message):
    with pytest.raises(InvalidInput, match=message):
        compile_filter(text)


def test_order_and_page_tokens():
    assert len(compile_order("metrics.nmae asc, version desc")) == 3
    with pytest.raises(InvalidInput, match="cannot order by"):
        compile_order("weight")
    assert decode_token(encode_token(300)) == 300
    with pytest.raises(InvalidInput, match="page_token"):
        decode_token("b2s6LTE=")
