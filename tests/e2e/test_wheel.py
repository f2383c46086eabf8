"""The wheel a microservice team installs from the private index is enough to run their service.

Builds the wheel of this checkout, installs it with the `server` extra into a fresh virtualenv (no
source tree on its path), and runs the PV example there as its README says: write the history, train
with the wheel's `maestrale` command, promote, forecast once from the command line, then serve it with
uvicorn on a free loopback port and ask it over HTTP. Slow (a venv and about 150 MB of dependencies):
`pytest -m "not slow"` leaves it out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "services" / "pv_forecast"

pytestmark = pytest.mark.slow


def run(
    cmd: list[str | Path],
    *,
    what: str,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Run `cmd`; fail with `what`, the command and the tail of its output if it fails or overruns."""
    args = [str(c) for c in cmd]
    try:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"")[-3000:] if isinstance(exc.stdout, bytes) else (exc.stdout or "")[-3000:]
        pytest.fail(f"{what}: still running after {timeout:g}s: {' '.join(args)}\n{out}")
    if done.returncode != 0:
        pytest.fail(
            f"{what} failed (exit {done.returncode}): {' '.join(args)}\n"
            f"--- stdout ---\n{done.stdout[-3000:]}\n--- stderr ---\n{done.stderr[-3000:]}"
        )
    return done.stdout


def test_wheel_installs_and_runs_the_pv_service(tmp_path: Path) -> None:
    started = time.monotonic()
    # 1. the wheel (pip builds it with hatchling in an isolated environment; `build` is not a dependency)
    dist = tmp_path / "dist"
    run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", dist, ROOT],
        what="building the wheel",
        timeout=300,
    )
    (wheel,) = dist.glob("maestrale-*.whl")

    # 2. a fresh virtualenv with the wheel and the server extra, and nothing of this checkout
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], what="creating the virtualenv", timeout=120)
    python, bindir = venv / "bin" / "python", venv / "bin"
    run(
        [python, "-m", "pip", "install", "--quiet", f"{wheel}[server]"],
        what=f"pip install {wheel.name}[server]",
        timeout=600,
    )
    installed = time.monotonic() - started

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAESTRALE_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(
        PATH=f"{bindir}{os.pathsep}{env.get('PATH', '')}",
        MAESTRALE_HOME=str(home),
        MAESTRALE_DATABASE_URL=f"sqlite:///{home}/registry.db",
        MAESTRALE_STORAGE_URL=f"file://{home}/artifacts",
        MAESTRALE_BROKER_URL="memory://",
        OMP_NUM_THREADS="1",
    )
    where = run(
        [python, "-c", "import maestrale; print(maestrale.__file__)"], what="import", timeout=60, env=env
    )
    assert Path(where.strip()).is_relative_to(venv), f"maestrale imported from {where.strip()}, not the venv"

    # 3. the example, as its README runs it
    app = tmp_path / "pv_forecast"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("data", "__pycache__"))
    run([python, "history.py"], what="history.py", timeout=120, cwd=app, env=env)
    trained = json.loads(
        run(
            [bindir / "maestrale", "train", "train.yaml", "--local", "--json"],
            what="maestrale train",
            timeout=300,
            cwd=app,
            env=env,
        )
    )["results"][0]
    assert (trained["name"], trained["version"]) == ("pv-piemonte", 1)
    run(
        [bindir / "maestrale", "models", "alias", "pv-piemonte", "champion", "1"],
        what="maestrale models alias",
        timeout=60,
        cwd=app,
        env=env,
    )

    once = json.loads(
        run(
            [python, "service.py", "forecast", "--day", "2023-10-02", "--issued-at", "2023-10-01T09:00:00Z"],
            what="service.py forecast",
            timeout=120,
            cwd=app,
            env=env,
        )
    )
    assert (once["model"], once["version"], once["logged"]) == ("pv-piemonte", 1, 24)
    assert len(once["hours"]) == 24 and max(h["power_kw"] for h in once["hours"]) > 50.0

    # 4. the same service over HTTP (uvicorn from the server extra), on a free loopback port
    port = free_port()
    log = (tmp_path / "service.log").open("w")
    server = subprocess.Popen(
        [str(python), "service.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=app,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(
                    f"service.py serve exited with {server.returncode}:\n{_tail(tmp_path / 'service.log')}"
                )
            try:
                if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    f"service.py serve did not answer on {url} in 60s:\n{_tail(tmp_path / 'service.log')}"
                )
            time.sleep(0.2)
        response = httpx.post(
            f"{url}/plants/piemonte/forecast",
            json={"day": "2023-10-03", "issued_at": "2023-10-02T09:00:00Z"},
            timeout=60.0,
        )
        assert response.status_code == 200, response.text
        assert response.json()["version"] == 1 and len(response.json()["hours"]) == 24
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
        log.close()
    print(f"wheel built and installed in {installed:.0f}s; whole test {time.monotonic() - started:.0f}s")


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:]
