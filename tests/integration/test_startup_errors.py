"""A backend that is down or misnamed fails at start with a message naming it; nothing is written."""

from __future__ import annotations

import time

import pytest

from maestrale import Registry
from maestrale.errors import BackendUnavailable, ConfigError


def test_unreachable_postgres_fails_fast_and_names_the_url(tmp_path):
    start = time.monotonic()
    with pytest.raises(BackendUnavailable, match="cannot reach the database .*127.0.0.1:1"):
        Registry(database_url="postgresql+psycopg://u@127.0.0.1:1/none", storage_url=f"file://{tmp_path}")
    assert time.monotonic() - start < 10


def test_unknown_postgres_database_is_reported(tmp_path):
    with pytest.raises(BackendUnavailable, match="does_not_exist_xyz"):
        Registry(
            database_url="postgresql+psycopg://postgres@127.0.0.1:5432/does_not_exist_xyz",
            storage_url=f"file://{tmp_path}",
        )


def test_missing_storage_extra_names_the_pip_extra(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_gcsfs(name, *args, **kwargs):
        if name.startswith("gcsfs"):
            raise ImportError("No module named 'gcsfs'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_gcsfs)
    with pytest.raises(ConfigError, match=r"pip install 'maestrale\[gcs\]'"):
        Registry(database_url=f"sqlite:///{tmp_path}/r.db", storage_url="gs://bucket/models")


def test_unwritable_local_storage_is_reported(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(BackendUnavailable, match="cannot reach storage"):
        Registry(database_url=f"sqlite:///{tmp_path}/r.db", storage_url=f"file://{blocker}/artifacts")


def test_old_schema_without_auto_upgrade_says_how_to_fix(tmp_path):
    from maestrale.config import load_settings

    settings = load_settings(home=tmp_path, auto_upgrade=False)
    with pytest.raises(ConfigError, match="run `maestrale db upgrade`"):
        Registry(settings=settings)
    from maestrale.platform.db import HEAD_REVISION, upgrade

    assert upgrade(settings.database_url) == HEAD_REVISION
    Registry(settings=settings)  # now fine
