"""Every UI action through the browser, each followed by its record: a champion rollback that a running
`maestrale serve` follows, version and model actions, a challenger decided by hand; a read token sees
no forms and its forged POST is refused; a missing reason is a 400 naming it.

The rollback uses the shared world's pv-nrel-50 and rolls forward again; the other actions run on a
model of their own (pv-nrel-50's artifacts registered again under a fresh name), archived at the end.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from maestrale.monitoring.store import MonitorStore
from maestrale.registry.store import SqlStore
from maestrale.registry.types import VersionCreate
from tests.services import _stop_process, free_port
from tests.ui.conftest import MODEL, _maestrale, axe_violations, csrf_of, goto_ready, sign_in

FORM = {"content-type": "application/x-www-form-urlencoded", "accept": "text/html"}


@pytest.fixture
def own_model(ui_server) -> Iterator[str]:
    """A model of this test: v1 champion, v2, both pv-nrel-50's real artifacts."""
    store = SqlStore(ui_server.database_url)
    name = f"ui-act-{uuid.uuid4().hex[:8]}"
    for v in (1, 2):
        artifact = store.get_version(f"{MODEL}:{v}").artifact.model_dump()
        store.create_version(name, VersionCreate(artifact=artifact, created_by="tests"))
    store.set_alias(name, "champion", 1, actor="tests", reason="setup")
    yield name
    if not store.get_model(name).archived:
        store.archive_model(name, actor="tests", reason="test over")


def _served_version(url: str) -> str | None:
    try:
        return httpx.get(f"{url}/v2/models/{MODEL}", timeout=2).json()["versions"][0]
    except (httpx.TransportError, KeyError, ValueError):
        return None


def _wait(check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def _move_alias(page, version: int, reason: str) -> None:
    page.fill("#alias-form input[name=alias]", "champion")
    page.select_option("#alias-form select[name=version]", str(version))
    page.fill("#alias-form input[name=reason]", reason)
    page.click("#alias-form button[type=submit]")
    page.wait_for_selector("#done")


def test_model_server_follows_a_rollback_made_in_the_ui(page, ui_server, tmp_path):
    promoted = ui_server.summary["promotions"][-1]["version"]
    port = free_port()
    cmd = [
        *_maestrale(),
        "serve",
        f"{MODEL}@champion",
        "--port",
        str(port),
        "--no-log",
        "--reload-poll",
        "0.5",
    ]
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(cmd, env=ui_server.env(), stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    store = SqlStore(ui_server.database_url)
    try:
        _wait(lambda: _served_version(url) is not None or proc.poll() is not None, 90, "maestrale serve")
        assert _served_version(url) == str(promoted), (tmp_path / "serve.log").read_text()[-2000:]
        sign_in(page, ui_server, "write")
        goto_ready(page, f"{ui_server.url}/models/{MODEL}")
        _move_alias(page, 1, "ui test: roll back")
        assert "champion now v1" in page.inner_text("#done")
        _wait(lambda: _served_version(url) == "1", 30, "the model server to serve v1")
        last = store.alias_history(MODEL, "champion")[-1]
        assert (last.version, last.previous_version, last.actor, last.reason) == (
            1, promoted, "ui-write", "ui test: roll back")  # fmt: skip
        _move_alias(page, promoted, "ui test: roll forward")
        _wait(lambda: _served_version(url) == str(promoted), 30, f"the model server to serve v{promoted}")
    finally:
        if store.get_model(MODEL).aliases.get("champion") != promoted:
            store.set_alias(MODEL, "champion", promoted, actor="tests", reason="restore the world")
        _stop_process(proc)
        log.close()


def test_version_model_and_challenger_actions_are_recorded(page, ui_server, own_model):
    store, monitor = SqlStore(ui_server.database_url), MonitorStore(ui_server.database_url)
    name = own_model
    sign_in(page, ui_server, "write")
    # version page: make v2 champion, tag it, archive and unarchive v1
    goto_ready(page, f"{ui_server.url}/models/{name}/versions/2")
    page.fill("#champion-form input[name=reason]", "v2 is better")
    page.click("#champion-form button[type=submit]")
    page.wait_for_selector("#done")
    last = store.alias_history(name, "champion")[-1]
    assert (last.version, last.actor, last.reason) == (2, "ui-write", "v2 is better")
    page.fill("#version-tag-form input[name=key]", "reviewed")
    page.fill("#version-tag-form input[name=value]", "yes")
    page.click("#version-tag-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_version(f"{name}:2").tags.get("reviewed") == "yes"
    goto_ready(page, f"{ui_server.url}/models/{name}/versions/1")
    page.fill("#version-archive-form input[name=reason]", "superseded")
    page.click("#version-archive-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_version(f"{name}:1").status == "archived"
    page.fill("#version-archive-form input[name=reason]", "needed again")
    page.click("#version-archive-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_version(f"{name}:1").status == "ready"
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    # a challenger decided by hand on the monitoring page, recorded as the monitor's decisions are
    store.set_alias(name, "challenger", 1, actor="monitor", reason="retrained (test)")
    goto_ready(page, f"{ui_server.url}/models/{name}/monitoring")
    page.check("#challenger-form input[value=rejected]")
    page.fill("#challenger-form input[name=reason]", "trained on the faulty week")
    page.click("#challenger-form button[type=submit]")
    page.wait_for_selector("#done")
    [decision] = monitor.decisions(name)
    assert (
        decision["outcome"] == "rejected"
        and decision["reason"] == "by hand (ui-write): trained on the faulty week"
    )
    assert "challenger" not in store.get_model(name).aliases
    # model page: a tag, then archive the model (this test's world goes away with it)
    goto_ready(page, f"{ui_server.url}/models/{name}")
    page.fill("#model-tag-form input[name=key]", "site")
    page.fill("#model-tag-form input[name=value]", "test")
    page.click("#model-tag-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_model(name).tags == {"site": "test"}
    page.fill("#model-archive-form input[name=reason]", "test over")
    page.click("#model-archive-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_model(name).archived
    page.fill("#model-archive-form input[name=reason]", "one more look")  # the form now unarchives
    page.click("#model-archive-form button[type=submit]")
    page.wait_for_selector("#done")
    assert not store.get_model(name).archived
    page.fill("#model-archive-form input[name=reason]", "test over")
    page.click("#model-archive-form button[type=submit]")
    page.wait_for_selector("#done")
    assert store.get_model(name).archived
    # each action has its entry on the audit page, with the actor and the reason
    goto_ready(page, f"{ui_server.url}/audit?model={name}")
    rows = page.locator("#audit tbody tr").evaluate_all(
        "rows => rows.map(r => [r.dataset.kind, r.dataset.actor, r.cells[5].textContent.trim()])"
    )
    for entry in (["alias", "ui-write", "v2 is better"], ["archive", "ui-write", "superseded"],
                  ["archive", "ui-write", "needed again"], ["archive", "ui-write", "one more look"],
                  ["archive", "ui-write", "test over"],
                  ["decision", "ui-write", "by hand (ui-write): trained on the faulty week"]):  # fmt: skip
        assert entry in rows, rows
    assert page.js_errors == []


def test_read_sees_no_forms_forged_posts_are_refused_and_a_reason_is_required(browser, page, ui_server, http):
    sign_in(page, ui_server, "read")
    goto_ready(page, f"{ui_server.url}/models/{MODEL}")
    assert page.locator("#alias-form, #model-tag-form, #model-archive-form").count() == 0
    goto_ready(page, f"{ui_server.url}/models/{MODEL}/versions/1")
    assert page.locator("#champion-form, #version-archive-form").count() == 0
    for c in page.context.cookies():
        http.cookies.set(c["name"], c["value"])
    body = f"csrf={csrf_of(page)}&alias=champion&version=1&reason=forged"
    r = http.post(f"/models/{MODEL}/aliases", content=body, headers=FORM)
    assert r.status_code == 403 and "this action needs" in r.text
    assert SqlStore(ui_server.database_url).get_model(MODEL).aliases["champion"] != 1
    # a write session without a reason: 400 naming the field, nothing moved
    writer = browser.new_context()
    wpage = writer.new_page()
    try:
        sign_in(wpage, ui_server, "write")
        goto_ready(wpage, f"{ui_server.url}/models/{MODEL}")
        with httpx.Client(base_url=ui_server.url, headers=FORM) as c:
            for k in writer.cookies():
                c.cookies.set(k["name"], k["value"])
            csrf = csrf_of(wpage)
            r = c.post(f"/models/{MODEL}/aliases", content=f"csrf={csrf}&alias=champion&version=1&reason=+")
            assert r.status_code == 400 and "reason is required" in r.text
            r = c.post(f"/models/{MODEL}/versions/1/archive", content=f"csrf={csrf}")
            assert r.status_code == 400 and "reason is required" in r.text
            r = c.post(f"/models/{MODEL}/challenger", content=f"csrf={csrf}&outcome=promoted")
            assert r.status_code == 400 and "reason is required" in r.text
    finally:
        writer.close()
    assert SqlStore(ui_server.database_url).get_model(MODEL).aliases["champion"] != 1
