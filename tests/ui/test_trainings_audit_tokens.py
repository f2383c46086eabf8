"""The trainings page (live counts, fleets, the spec editor), the audit trail and the tokens page, in
Chromium against the shared UI world. Every request or token a test makes is cancelled or revoked."""

from __future__ import annotations

import httpx

from tests.ui.conftest import MODEL, axe_violations, goto_ready, sign_in

SPEC = f"""\
name: {MODEL}
data: {{dataset: nrel_system50, freq: 1h}}
target: power_kw
feature_set: pv_features
estimator: ridge
train_window: {{start: 2011-06-01, end: 2011-07-31}}
split: {{holdout: {{test_start: 2011-07-15}}}}
capacity: 3.4
"""


def _api(server, scope: str = "admin") -> httpx.Client:
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.tokens[scope]}"}, timeout=30
    )


def _count(page, status: str) -> int:
    return int(page.inner_text(f'#trainings-live b[data-status="{status}"]'))


def test_trainings_page_counts_update_live(page, ui_server):
    sign_in(page, ui_server, "read")
    goto_ready(page, ui_server.url + "/trainings")
    with _api(ui_server) as api:
        counts = api.get("/api/v1/trainings/summary").json()["counts"]
        assert {s: _count(page, s) for s in counts} == counts  # the page and the REST summary agree
        assert page.get_attribute("#trainings-live", "hx-trigger") == "every 2s"
        queued = _count(page, "queued")
        r = api.post("/api/v1/trainings", json={"yaml": SPEC, "reason": "ui live test"})
        assert r.status_code == 202, r.text
        [made] = r.json()
        try:  # no reload: the polled fragment brings the new request
            js = "n => document.querySelector('#trainings-live b[data-status=queued]').textContent == n"
            page.wait_for_function(js, arg=str(queued + 1), timeout=10_000)
            assert page.locator(f'tr[data-request="{made["id"]}"]').count() == 1
            # read scope: no cancel button, no submit link
            assert page.locator("#requests button").count() == 0
            assert page.locator('a[href="/trainings/new"]').count() == 0
            goto_ready(page, ui_server.url + "/trainings?status=queued&name=" + MODEL)
            assert all(s == "queued" for s in page.locator("#requests tbody tr").evaluate_all(
                "rows => rows.map(r => r.dataset.status)"))  # fmt: skip
        finally:
            api.post(f"/api/v1/trainings/{made['id']}/cancel")
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    assert page.js_errors == []


def test_spec_editor_shows_problems_on_their_lines_then_queues(page, ui_server):
    sign_in(page, ui_server, "write")
    goto_ready(page, ui_server.url + "/trainings/new")
    bad = SPEC.replace("estimator: ridge", "estimator: no-such-estimator").replace(
        "capacity: 3.4", "capacity: -1"
    )
    page.fill("#spec", bad)
    page.click("#spec-form button[type=submit]")
    page.wait_for_selector("#spec-issues")
    lines = {int(li.get_attribute("data-line")): li.inner_text() for li in page.locator("li.has-issue").all()}
    assert 5 in lines and "no-such-estimator" in lines[5], lines  # the estimator's line
    assert 8 in lines, lines  # capacity
    assert page.input_value("#spec") == bad  # the text is kept for editing
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    page.js_errors.clear()  # the 400 is logged by the browser
    page.fill("#spec", SPEC)
    page.fill("#spec-form input[name=reason]", "ui editor test")
    page.click("#spec-form button[type=submit]")
    page.wait_for_selector("#submitted")
    assert "/trainings?submitted=" in page.url
    row = page.locator("#requests tbody tr").first
    assert row.get_attribute("data-status") == "queued" and "ui editor test" in row.inner_text()
    row.locator("button", has_text="Cancel").click()  # the UI's cancel action restores the queue
    page.wait_for_selector("#done")
    request_id = row.get_attribute("data-request")
    with _api(ui_server) as api:
        assert api.get(f"/api/v1/trainings/{request_id}").json()["status"] == "cancelled"


def test_tokens_page_creates_once_and_revokes_with_confirmation(page, ui_server, http):
    sign_in(page, ui_server, "read")
    r = page.goto(ui_server.url + "/tokens")
    assert r.status == 403 and "for admins" in page.inner_text("main")
    page.js_errors.clear()
    page.context.clear_cookies()
    sign_in(page, ui_server, "admin")
    goto_ready(page, ui_server.url + "/tokens")
    page.fill("#token-form input[name=name]", "ui-temp")
    page.select_option("#token-form select[name=scope]", "write")
    page.click("#token-form button[type=submit]")
    secret = page.input_value("#new-secret")
    assert secret.startswith("mst_") and "only once" in page.inner_text("#created")
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    goto_ready(page, ui_server.url + "/tokens")
    assert secret not in page.content()  # never shown again
    row = page.locator('#tokens tr[data-name="ui-temp"]').last
    token_id = row.get_attribute("data-token")
    assert (
        httpx.get(ui_server.url + "/api/v1/models", headers={"Authorization": f"Bearer {secret}"}).status_code
        == 200
    )
    row.locator("a", has_text="Revoke").click()
    page.wait_for_selector("#confirm")
    page.click("#confirm button.danger")
    page.wait_for_selector("#done")
    assert "revoked" in page.locator(f'#tokens tr[data-token="{token_id}"]').inner_text()
    # a revocation without the confirmation box is refused
    for c in page.context.cookies():
        http.cookies.set(c["name"], c["value"])
    csrf = page.eval_on_selector("input[name=csrf]", "el => el.value")
    form = {"content-type": "application/x-www-form-urlencoded", "accept": "text/html"}
    r = http.post(f"/tokens/{token_id}/revoke", content=f"csrf={csrf}", headers=form)
    assert r.status_code == 400 and "confirm" in r.text
    # both changes are in the audit trail, with the admin who made them
    goto_ready(page, ui_server.url + "/audit?kind=token&actor=ui-admin")
    rows = page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => r.textContent)")
    assert sum("ui-temp" in row for row in rows) == 2, rows


def test_audit_page_filters_and_shows_tokens_to_admins_only(page, ui_server):
    promoted = ui_server.summary["promotions"][-1]["version"]
    sign_in(page, ui_server, "read")
    goto_ready(page, f"{ui_server.url}/audit?kind=alias&model={MODEL}")
    kinds = set(page.locator("#audit tbody tr").evaluate_all("rows => rows.map(r => r.dataset.kind)"))
    assert kinds == {"alias"}
    assert f"v{promoted}" in page.inner_text("#audit")  # the demo's promotion
    assert page.locator('select[name=kind] option[value="token"]').count() == 0
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    goto_ready(page, f"{ui_server.url}/audit?kind=decision")
    assert page.locator('#audit tr[data-kind="decision"]').count() >= 1
    r = page.goto(f"{ui_server.url}/audit?kind=token")
    assert r.status == 400 and "choose among" in page.inner_text("main")
    r = page.goto(f"{ui_server.url}/audit?since=yesterday")
    assert r.status == 400 and "no date" in page.inner_text("main")
    page.js_errors.clear()
    page.context.clear_cookies()
    sign_in(page, ui_server, "admin")
    goto_ready(page, f"{ui_server.url}/audit?kind=token&actor=tests")
    names = page.locator("#audit tbody").inner_text()
    assert "ui-read" in names and "ui-write" in names  # the world's tokens, created by "tests"
    assert page.js_errors == []
