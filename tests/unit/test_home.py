"""Where the embedded home is: MAESTRALE_HOME, else the nearest project folder, else the user directory.

And what the CLI says about it: `maestrale info`, `maestrale -v …`, the note when a command creates
a new home, and the registry named after a "not found" error. The user data directory is sent to a
temporary folder (XDG_DATA_HOME), so no test touches the real one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from maestrale.cli.main import app
from maestrale.config import HomeChoice, find_home, home_choice, load_settings

_VARS = (
    "MAESTRALE_HOME",
    "MAESTRALE_DATABASE_URL",
    "MAESTRALE_STORAGE_URL",
    "MAESTRALE_REGISTRY_URL",
    "MAESTRALE_TOKEN",
    "MAESTRALE_BROKER_URL",
)


@pytest.fixture
def user_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The per-user home (platformdirs honours XDG_DATA_HOME), with no MAESTRALE_* set."""
    for var in _VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    return (tmp_path / "xdg" / "maestrale").resolve()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a `.maestrale` directory and a nested subfolder."""
    root = tmp_path / "pv-italia"
    (root / ".maestrale").mkdir(parents=True)
    (root / "notebooks" / "foggia").mkdir(parents=True)
    return root.resolve()


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200", **(env or {})})


# -- resolution ------------------------------------------------------------------------------------
def test_env_wins(tmp_path: Path, project: Path) -> None:
    choice = find_home(project, environ={"MAESTRALE_HOME": str(tmp_path / "elsewhere")})
    assert choice == HomeChoice((tmp_path / "elsewhere").resolve(), "env")


def test_nearest_project_folder_from_any_subfolder(project: Path, user_dir: Path) -> None:
    for where in (project, project / "notebooks", project / "notebooks" / "foggia"):
        assert find_home(where, environ={}) == HomeChoice(project / ".maestrale", "project")


def test_outside_any_project_the_user_directory(tmp_path: Path, user_dir: Path) -> None:
    lone = tmp_path / "downloads"
    lone.mkdir()
    choice = find_home(lone, environ={})
    assert choice == HomeChoice(user_dir, "user")
    assert not (lone / ".maestrale").exists()  # nothing is created by looking


def test_settings_follow_the_working_directory_and_say_why(
    project: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(project / "notebooks")
    settings = load_settings()
    assert settings.home == project / ".maestrale"
    assert settings.database_url == f"sqlite:///{project}/.maestrale/registry.db"
    assert home_choice(settings).describe() == f"the project folder {project}"
    explicit = load_settings(home=tmp_path / "given")
    assert home_choice(explicit).source == "argument"


# -- the CLI ---------------------------------------------------------------------------------------
def test_models_list_from_another_folder_uses_the_user_registry(
    tmp_path: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    first = cli("models", "list")
    assert first.exit_code == 0, first.output
    assert not (elsewhere / ".maestrale").exists()  # no new empty registry in whatever folder we are in
    assert (user_dir / "registry.db").exists()
    assert f"created a new, empty Maestrale home in {user_dir}" in first.stderr
    assert "mkdir .maestrale" in first.stderr and str(user_dir) in first.stderr
    again = cli("models", "list")
    assert again.exit_code == 0 and "created" not in again.stderr  # said once


def test_a_project_registry_is_found_from_a_subfolder(
    project: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np
    from sklearn.linear_model import Ridge

    from maestrale import Registry

    monkeypatch.chdir(project)
    X = np.arange(12.0).reshape(6, 2)
    Registry().register("pv-foggia", Ridge().fit(X, X.sum(axis=1)))
    monkeypatch.chdir(project / "notebooks" / "foggia")
    listed = cli("models", "list", "--json")
    assert [m["name"] for m in json.loads(listed.stdout)] == ["pv-foggia"]
    assert not user_dir.exists()


def test_info_names_each_backend_and_where_it_came_from(
    project: Path, user_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(project / "notebooks")
    broker = "amqp://ops:hunter2@rabbitmq:5672/prod"
    env = {"MAESTRALE_BROKER_URL": broker, "MAESTRALE_BUS_NAMESPACE": "pv-prod"}
    about = json.loads(cli("info", "--json", env=env).stdout)
    assert about["home"] == {
        "path": str(project / ".maestrale"),
        "source": "project",
        "from": f"the project folder {project}",
        "exists": True,
    }
    registry = about["registry"]
    assert registry["mode"] == "embedded"
    assert registry["database_url"] == f"sqlite:///{project}/.maestrale/registry.db"
    assert registry["database_from"].startswith("default")
    assert registry["storage_url"] == (project / ".maestrale" / "artifacts").as_uri()
    assert about["monitor_store"]["database_url"] == registry["database_url"]
    assert about["bus"] == {
        "url": "amqp://ops:***@rabbitmq:5672/prod",
        "from": "MAESTRALE_BROKER_URL",
        "namespace": "pv-prod",
    }
    assert about["versions"]["maestrale"] and about["versions"]["python"]
    human = cli("info", env=env)
    assert human.exit_code == 0 and "hunter2" not in human.output
    assert f"the project folder {project}" in human.stdout and "monitor store" in human.stdout
    assert not (project / ".maestrale" / "registry.db").exists()  # info looks, it creates nothing


def test_info_masks_a_database_password(user_dir: Path, tmp_path: Path) -> None:
    env = {"MAESTRALE_DATABASE_URL": "postgresql+psycopg://pv:s3cret@db:5432/maestrale"}
    about = json.loads(cli("info", "--json", env=env).stdout)
    assert about["registry"]["database_url"] == "postgresql+psycopg://pv:***@db:5432/maestrale"
    assert about["registry"]["database_from"] == "MAESTRALE_DATABASE_URL"
    assert about["home"]["source"] == "user" and "s3cret" not in json.dumps(about)


def test_verbose_says_which_registry_before_the_command(tmp_path: Path, user_dir: Path) -> None:
    home = tmp_path / "home"
    result = cli("-v", "models", "list", env={"MAESTRALE_HOME": str(home)})
    assert result.exit_code == 0
    first = result.stderr.splitlines()[0]
    assert first == (
        f"registry: sqlite:///{home}/registry.db + {(home / 'artifacts').as_uri()} "
        f"(home {home}, from MAESTRALE_HOME)"
    )
    quiet = cli("models", "list", env={"MAESTRALE_HOME": str(home)})
    assert "registry:" not in quiet.stderr


def test_not_found_names_the_registry_that_was_asked(tmp_path: Path, user_dir: Path) -> None:
    home = tmp_path / "home"
    result = cli("models", "show", "pv-foggia", env={"MAESTRALE_HOME": str(home)})
    assert result.exit_code == 1
    error, registry, *_ = result.stderr.splitlines()
    assert error.startswith("error: model 'pv-foggia' not found")
    assert registry.startswith(f"registry: sqlite:///{home}/registry.db")
