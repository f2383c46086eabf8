"""Sign-in, sessions, CSRF and the fleet page, in Chromium against a real server."""

from __future__ import annotations

import re

from tests.ui.conftest import MODEL, axe_violations, csrf_of, goto_ready, sign_in


def test_signin_with_a_good_token_and_refusal_of_a_bad_one(page, ui_server):
    page.goto(ui_server.url + "/")  # not signed in: sent to the sign-in form, keeping where it was going
    assert "/signin" in page.url and "next=%2F" in page.url
    page.fill("#token", "mst_not-a-real-token")
    page.click("button[type=submit]")
    assert "unknown or revoked token" in page.inner_text("#signin-error")
    page.js_errors.clear()  # the refused sign-in's 401 is logged by the browser
    sign_in(page, ui_server, "read")
    assert page.url.rstrip("/") == ui_server.url
    cookie = next(c for c in page.context.cookies() if c["name"] == "maestrale_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert ui_server.tokens["read"] not in cookie["value"]  # the cookie is a session, not the token
    assert "ui-read · read" in page.inner_text("header")
    assert page.js_errors == []


def test_a_token_is_never_accepted_in_a_url(http, ui_server):
    r = http.get("/signin", params={"token": ui_server.tokens["admin"]}, headers={"accept": "text/html"})
    assert r.status_code == 400 and "never accepted in a URL" in r.text
    r = http.get("/", params={"token": ui_server.tokens["admin"]}, headers={"accept": "text/html"})
    assert r.status_code == 303 and r.headers["location"].startswith("/signin")


def test_fleet_shows_the_model_its_champion_and_figures(page, ui_server):
    sign_in(page, ui_server, "read")
    row = page.locator(f'tr[data-model="{MODEL}"]')
    promoted = ui_server.summary["promotions"][-1]["version"]
    assert row.locator("td").nth(2).inner_text() == f"v{promoted}"
    assert row.get_attribute("data-state") in ("healthy", "breach", "challenger", "retraining")
    nmae = row.locator("td").nth(4).inner_text()
    assert re.match(r"0\.\d+", nmae), nmae  # a real figure from the replayed monitor
    # filters narrow the table; the URL keeps them (a link can be shared)
    page.fill('input[name="name"]', "no-such-model")
    page.wait_for_selector("td.empty")
    assert "name=no-such-model" in page.url
    goto_ready(page, ui_server.url + "/?sort=nmae&desc=true")
    assert page.locator("th[aria-sort=descending]").inner_text().startswith("nMAE")


def test_actions_need_the_csrf_secret_and_the_same_origin(page, ui_server):
    sign_in(page, ui_server, "read")
    csrf = csrf_of(page)
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    import httpx

    with httpx.Client(base_url=ui_server.url, cookies=cookies, headers={"accept": "text/html"}) as c:
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = c.post("/signout", content="csrf=wrong", headers=form)
        assert r.status_code == 403 and "CSRF" in r.text
        r = c.post("/signout", content=f"csrf={csrf}", headers={**form, "origin": "https://evil.example"})
        assert r.status_code == 403 and "evil.example" in r.text
        r = c.post("/signout", content=f"csrf={csrf}", headers={**form, "sec-fetch-site": "cross-site"})
        assert r.status_code == 403 and "cross-site" in r.text
        r = c.post("/signout", content=f"csrf={csrf}", headers=form)
        assert r.status_code == 303
        # the session ended on the server: the same cookie no longer opens a page
        assert c.get("/", follow_redirects=False).status_code == 303


def test_fleet_and_signin_pass_axe(page, ui_server):
    page.goto(ui_server.url + "/signin")
    assert [v["id"] for v in axe_violations(page) if v["impact"] == "critical"] == []
    sign_in(page, ui_server, "read")
    found = axe_violations(page)
    assert [v["id"] for v in found if v["impact"] == "critical"] == [], found
