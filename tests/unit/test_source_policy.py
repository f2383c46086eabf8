"""The data-source policy for specs that arrive over REST or the bus (`maestrale.training.source_policy`).

Real folders, files and symlinks in tmp_path; the same rules against a running worker are in
`tests/integration/test_training_trust.py`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from maestrale.config import Settings
from maestrale.errors import ConfigError
from maestrale.training.source_policy import SourcePolicy
from maestrale.training.spec import SpecError, TrainingSpec
from maestrale.training.specio import spec_from_data

SECRET = "s3cr3t-value-never-shown"


def spec(data: dict[str, Any], **extra: Any) -> TrainingSpec:
    base = {"name": "pv", "data": data, "target": "power_kw", "features": ["ghi"], "estimator": "ridge"}
    return spec_from_data({**base, **extra})


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    folder = tmp_path / "lake"
    folder.mkdir()
    (folder / "pv.csv").write_text("time,ghi,power_kw\n")
    (tmp_path / "secret.csv").write_text("not for requests\n")
    return folder


@pytest.fixture
def policy(lake: Path, monkeypatch: pytest.MonkeyPatch) -> SourcePolicy:
    monkeypatch.setenv("PV_LAKE", str(lake))
    monkeypatch.setenv("PV_KEY", SECRET)
    monkeypatch.setenv("PV_DB_URL", f"postgresql+psycopg://pv:{SECRET}@db:5432/pv")
    monkeypatch.setenv("SECRET_TOKEN", SECRET)
    sources = [str(lake), "abfs://lake/pv", "postgresql+psycopg://pv@db:5432/pv"]
    return SourcePolicy.from_settings(Settings(data_sources=sources, spec_env=["PV_*"]))


def problems(policy: SourcePolicy, data: dict[str, Any]) -> dict[str, str]:
    """{field path: message} of every rule `data` breaks; no expanded secret in any message."""
    found = {i.path: i.message for i in policy.problems(spec(data))}
    assert SECRET not in str(found)
    return found


def test_local_files_inside_an_allowed_folder_are_allowed(policy: SourcePolicy, lake: Path):
    for uri in (str(lake / "pv.csv"), f"file://{lake}/pv.csv", "${PV_LAKE}/pv.csv", f"{lake}/sub/../pv.csv"):
        assert problems(policy, {"uri": uri}) == {}, uri


@pytest.mark.parametrize(
    "uri",
    [
        "/etc/passwd",
        "file:///etc/passwd",
        "local:///etc/passwd",
        "file:/etc/passwd",
        "~/.ssh/id_rsa",
        "{lake}/../secret.csv",
        "file://{lake}/../secret.csv",
    ],
)
def test_local_paths_outside_the_folders_are_refused(policy: SourcePolicy, lake: Path, uri: str):
    uri = uri.format(lake=lake)
    found = problems(policy, {"uri": uri})
    assert "is outside the folders this worker lets requests read" in found["data.uri"]
    assert "MAESTRALE_DATA_SOURCES" in found["data.uri"] and repr(uri) in found["data.uri"]


def test_a_symlink_out_of_the_folder_is_refused(policy: SourcePolicy, lake: Path):
    (lake / "escape.csv").symlink_to(lake.parent / "secret.csv")
    (lake / "alias.csv").symlink_to(lake / "pv.csv")
    assert "symlinks and '..' count" in problems(policy, {"uri": str(lake / "escape.csv")})["data.uri"]
    assert problems(policy, {"uri": str(lake / "alias.csv")}) == {}


@pytest.mark.parametrize(
    ("uri", "rule"),
    [
        ("abfs://lake/pv-private/a.parquet", "is not under a URL prefix"),
        ("abfs://lake/pv/../private/a.parquet", "'..' segment"),
        ("abfs://lake/pv/%2E%2E/private/a.parquet", "'..' segment"),
        ("s3://other-bucket/pv.csv", "is not under a URL prefix"),
        ("https://attacker.example/pv.csv", "is not under a URL prefix"),
        ("http://169.254.169.254/latest/meta-data", "is not under a URL prefix"),
        ("simplecache::abfs://lake/pv/a.parquet", "chains URLs with '::'"),
        ("zip://x.csv::file:///etc/a.zip", "chains URLs with '::'"),
        ("data:text/csv,a,b", "is not under a URL prefix"),
    ],
)
def test_urls_must_be_under_an_allowed_prefix(policy: SourcePolicy, uri: str, rule: str):
    assert rule in problems(policy, {"uri": uri})["data.uri"]


def test_urls_under_a_prefix_are_allowed(policy: SourcePolicy):
    assert problems(policy, {"uri": "abfs://lake/pv/2024/plant.parquet"}) == {}
    assert problems(policy, {"uri": "abfs://lake/pv"}) == {}


def test_environment_variables_only_from_spec_env_and_never_shown(policy: SourcePolicy):
    message = problems(policy, {"uri": "${SECRET_TOKEN}"})["data.uri"]
    assert "${SECRET_TOKEN}" in message and "MAESTRALE_SPEC_ENV" in message
    message = problems(policy, {"uri": "${PV_UNSET_VAR}/x.csv"})["data.uri"]
    assert "${PV_UNSET_VAR}, which is not set on this worker" in message


def test_an_allowed_variable_is_expanded_then_checked(policy: SourcePolicy, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("PV_LAKE", "/etc")
    message = problems(policy, {"uri": "${PV_LAKE}/passwd"})["data.uri"]
    assert "'${PV_LAKE}/passwd' is outside the folders" in message and "/etc/passwd" not in message


def test_storage_options_are_references_to_allowed_variables(policy: SourcePolicy):
    url = "abfs://lake/pv/a.parquet"
    assert problems(policy, {"uri": url, "storage_options": {"account_key": "${PV_KEY}"}}) == {}
    found = problems(policy, {"uri": url, "storage_options": {"endpoint_url": "http://attacker.example"}})
    assert "is a literal value" in found["data.storage_options.endpoint_url"]
    assert "attacker" not in found["data.storage_options.endpoint_url"]
    found = problems(policy, {"uri": url, "storage_options": {"anon": True, "key": "${SECRET_TOKEN}"}})
    assert (
        "literal" in found["data.storage_options.anon"]
        and "MAESTRALE_SPEC_ENV" in found["data.storage_options.key"]
    )


def test_read_options_are_a_harmless_set(policy: SourcePolicy, lake: Path):
    uri = str(lake / "pv.csv")
    assert problems(policy, {"uri": uri, "read_options": {"sep": ";", "parse_dates": ["time"]}}) == {}
    found = problems(policy, {"uri": uri, "read_options": {"engine": "python", "storage_options": {}}})
    assert set(found) == {"data.read_options.engine", "data.read_options.storage_options"}
    assert "usecols" in found["data.read_options.engine"]  # the message lists what is allowed


def test_dvc_repos_follow_the_folder_rules_and_paths_stay_inside(policy: SourcePolicy, lake: Path):
    assert problems(policy, {"dvc": {"repo": str(lake), "path": "data/pv.csv"}}) == {}
    assert (
        "outside the folders" in problems(policy, {"dvc": {"repo": "/srv", "path": "x.csv"}})["data.dvc.repo"]
    )
    for path in ("../secret.csv", "/etc/passwd", "data/../../x.csv"):
        assert (
            "leaves the repository"
            in problems(policy, {"dvc": {"repo": str(lake), "path": path}})["data.dvc.path"]
        )
    scp = problems(policy, {"dvc": {"repo": "git@attacker.example:org/repo.git", "path": "x.csv"}})
    assert "scp-style" in scp["data.dvc.repo"]
    https = problems(policy, {"uri": "dvc://github.com/org/repo.git?path=x.csv"})
    assert "is not under a URL prefix" in https["data.dvc.repo"]


def test_sql_urls_must_match_an_allowed_database(policy: SourcePolicy, lake: Path):
    query = "SELECT 1"
    assert problems(policy, {"sql": {"url": "${PV_DB_URL}", "query": query}}) == {}  # password ignored
    assert problems(policy, {"sql": {"url": "postgresql+psycopg://pv:pw@db:5432/pv", "query": query}}) == {}
    for url in (
        "postgresql+psycopg://pv@db:5432/other",
        "postgresql+psycopg://pv@db:5432/pv?host=attacker.example",  # libpq: the query overrides the host
        "postgresql+psycopg://admin@db:5432/pv",
        "sqlite:////etc/x.db",
        f"sqlite:///{lake}/pv.db?mode=ro&uri=true",
    ):
        assert "data.sql.url" in problems(policy, {"sql": {"url": url, "query": query}}), url
    assert problems(policy, {"sql": {"url": f"sqlite:///{lake}/pv.db", "query": query}}) == {}
    assert (
        "SECRET_TOKEN"
        in problems(policy, {"sql": {"url": "${SECRET_TOKEN}", "query": query}})["data.sql.url"]
    )


def test_packaged_datasets_are_always_allowed():
    assert SourcePolicy().problems(spec({"dataset": "nrel_system50"})) == []


def test_a_fleet_member_cannot_smuggle_a_source(policy: SourcePolicy, lake: Path):
    fleet = spec(
        {"uri": str(lake / "pv.csv")}, name="pv-{site}",
        fleet=[{"site": "a"}, {"site": "b", "data": {"uri": "/etc/passwd"}}],
    )  # fmt: skip
    [issue] = policy.problems(fleet)
    assert issue.path == "data.uri" and issue.message.startswith("fleet member pv-b: '/etc/passwd'")
    with pytest.raises(SpecError, match="training spec <request> has 1 problem"):
        policy.check(fleet)


def test_settings_never_open_the_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    with pytest.raises(ConfigError, match="MAESTRALE_DATA_SOURCES: '/' is the root of the file system"):
        SourcePolicy.from_settings(Settings(data_sources=["/srv/x", "/"]))
    with pytest.raises(ConfigError, match="root"):
        SourcePolicy.from_settings(Settings(data_sources=["file:///tmp/.."]))
    monkeypatch.chdir(tmp_path)
    assert SourcePolicy.from_settings(Settings()).folders == (os.path.realpath(tmp_path),)  # default: cwd
    monkeypatch.chdir("/")
    assert SourcePolicy.from_settings(Settings()).folders == ()  # a worker started in / reads no file
    policy = SourcePolicy.from_settings(Settings(data_sources="abfs://lake/pv, ~/pv-data"))
    assert policy.prefixes == ("abfs://lake/pv",) and policy.folders == (os.path.expanduser("~/pv-data"),)
