"""The web UI's browser tests: a real `maestrale server` on a world made by real trainings and a
replayed monitor, driven by Playwright in Debian's Chromium (`/usr/bin/chromium`).

The world is `maestrale demo`'s short fault replay (NREL system 50, mid-June to end of July 2012):
v1 trained, a 20% capacity loss on 2 July, breaches, a retraining, v2 judged as challenger and
promoted. Tokens of each scope are created on its database. A failing test saves a screenshot
under `test-results/ui/` (`pytest_runtest_makereport` below).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.services import _stop_process, free_port, wait_for_port

CHROMIUM = os.environ.get("MAESTRALE_TEST_CHROMIUM", "/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-results" / "ui"
AXE = REPO / "node_modules" / "axe-core" / "axe.min.js"
MODEL = "pv-nrel-50"


@dataclass
class UiServer:
    """A running `maestrale server` with its world and a token per scope."""

    url: str
    home: Path
    database_url: str
    storage_url: str
    tokens: dict[str, str]
    summary: dict

    def env(self) -> dict[str, str]:
        """The settings of this world, for a CLI process or a model server beside it."""
        return {
            **os.environ, "MAESTRALE_HOME": str(self.home), "MAESTRALE_DATABASE_URL": self.database_url,
            "MAESTRALE_STORAGE_URL": self.storage_url,
        }  # fmt: skip


def _maestrale() -> list[str]:
    script = Path(sys.executable).with_name("maestrale")
    return [str(script)] if script.exists() else [sys.executable, "-m", "maestrale.cli.main"]


@pytest.fixture(scope="session")
def ui_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`maestrale demo`'s short fault replay: two versions, breaches, a retraining, a promotion."""
    root = tmp_path_factory.mktemp("ui-world")
    home = root / "demo"
    cmd = [
        *_maestrale(), "demo", "--home", str(home), "--start", "2012-06-15", "--end", "2012-07-31",
        "--fault-start", "2012-07-02", "--fault-loss", "0.2", "--summary", str(root / "summary.json"),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home


@pytest.fixture(scope="session")
def ui_server(ui_world: Path) -> Iterator[UiServer]:
    """`maestrale server` (auth on) on the demo's world, with a read, a write and an admin token."""
    from maestrale.tokens import create_token

    database_url = f"sqlite:///{ui_world / 'registry.db'}"
    storage_url = f"file://{ui_world / 'artifacts'}"
    tokens = {scope: create_token(database_url, f"ui-{scope}", scope, created_by="tests") for scope in
              ("read", "write", "admin")}  # fmt: skip
    port = free_port()
    env = {
        **os.environ, "MAESTRALE_HOME": str(ui_world), "MAESTRALE_DATABASE_URL": database_url,
        "MAESTRALE_STORAGE_URL": storage_url, "MAESTRALE_AUTH": "true",
    }  # fmt: skip
    log = (ui_world / "server.log").open("wb")
    process = subprocess.Popen(
        [*_maestrale(), "server", "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port("127.0.0.1", port, timeout=60, process=process)
        url = f"http://127.0.0.1:{port}"
        summary = json.loads((ui_world.parent / "summary.json").read_text())
        yield UiServer(url, ui_world, database_url, storage_url, tokens, summary)
    finally:
        _stop_process(process)
        log.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Headless Chromium (Debian's package; `make test` installs it)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does this)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield b
        b.close()


@pytest.fixture
def page(browser, request: pytest.FixtureRequest) -> Iterator[object]:
    """A fresh browser context (no cookies) at 1280 px; a screenshot is saved if the test fails."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    pg.js_errors = errors  # type: ignore[attr-defined]
    yield pg
    outcome = getattr(request.node, "rep_call", None)
    if outcome is not None and outcome.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        name = request.node.nodeid.replace("/", "_").replace("::", "__")[:150]
        pg.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


def sign_in(page, server: UiServer, scope: str = "read") -> None:
    """Sign in through the form, as a person does."""
    page.goto(f"{server.url}/signin")
    page.fill("#token", server.tokens[scope])
    page.click("button[type=submit]")
    page.wait_for_selector('main[data-ready="true"]')


def goto_ready(page, url: str) -> None:
    """Open `url` and wait until its main content (charts included) is drawn."""
    page.goto(url)
    page.wait_for_selector('main[data-ready="true"]')


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the current page (injected by evaluate: CSP does not apply to it)."""
    page.evaluate(AXE.read_text())
    return page.evaluate("async () => (await axe.run(document, {resultTypes: ['violations']})).violations")


def csrf_of(page) -> str:
    """The session's CSRF secret, as the page carries it (for the refusal tests)."""
    return page.eval_on_selector("input[name=csrf]", "el => el.value")


@pytest.fixture
def http(ui_server: UiServer) -> Iterator[httpx.Client]:
    """A plain HTTP client on the UI server (no cookies until a test signs in)."""
    with httpx.Client(base_url=ui_server.url, timeout=30, follow_redirects=False) as client:
        yield client
