"""The monitoring page of one model, in Chromium against a real server on the demo's fault replay."""

from __future__ import annotations

from tests.ui.conftest import MODEL, axe_violations, goto_ready, sign_in

PAGE = f"/models/{MODEL}/monitoring"


def _monitor_store(ui_server):
    from maestrale.monitoring.store import MonitorStore

    return MonitorStore(ui_server.database_url, auto_upgrade=False)


def test_the_page_draws_its_charts(page, ui_server):
    sign_in(page, ui_server, "read")
    goto_ready(page, ui_server.url + PAGE + "?range=all")
    for metric in ("nmae", "bias", "skill", "rbias"):  # uPlot draws each into a canvas
        assert page.locator(f'.chart[data-chart="perf-{metric}"] canvas').count() >= 1, metric
    assert page.locator('.chart[data-chart="forecast-spec"] canvas').count() >= 1
    assert page.locator('.chart[data-chart="drift-spec"] canvas.heatmap').count() == 1
    assert page.locator('.chart[data-chart="hist-spec"] canvas').count() >= 1
    legend = page.inner_text('.chart[data-chart="forecast-spec"]')
    assert "actual" in legend and "forecast v1" in legend  # a line per version that forecast
    assert page.js_errors == []


def test_figures_and_timeline_are_the_monitor_stores(page, ui_server):
    from maestrale.ui.formatting import num

    store = _monitor_store(ui_server)
    sign_in(page, ui_server, "read")
    goto_ready(page, ui_server.url + PAGE + "?range=all")
    latest = store.latest_evaluations(kind="performance", model=MODEL)
    assert latest
    for row in latest:
        cells = page.locator(f'#latest-performance tr[data-window="{row["window"]}"]')
        assert cells.locator('[data-metric="n"]').inner_text() == num(row["n"])
        overall = row["values"]["overall"]
        assert cells.locator('[data-metric="nmae"]').inner_text() == num(overall["nmae"])
        assert cells.locator('[data-metric="skill"]').inner_text() == num(overall["skill"], 3)
    timeline = page.locator("ol.timeline")  # the newest 50, then the older ones folded in <details>
    # the demo's promotions: each a decision with its figures and a retraining that registered it
    for promotion in ui_server.summary["promotions"]:
        v = promotion["version"]
        decision = timeline.locator('li[data-kind="decision"]', has_text=f"challenger v{v} ")
        assert "promoted" in decision.inner_text()
        retrained = timeline.locator('li[data-kind="retraining"]', has_text=f"→ v{v}")
        assert "completed" in retrained.inner_text()
    decisions = store.audit_trail("decisions", MODEL)
    first = timeline.locator('li[data-kind="decision"]').last.inner_text()  # newest first: oldest last
    d = decisions[0]
    assert f"v{d['challenger_version']} {num(d['challenger_metrics'][d['metric']])}" in first
    assert f"v{d['champion_version']} {num(d['champion_metrics'][d['metric']])}" in first
    newest = store.audit_trail("breaches", MODEL)[-1]
    shown = timeline.locator('li[data-kind="breach"]').first
    assert shown.locator("[data-value]").inner_text() == num(newest["value"])
    assert f"window {newest['window']}, n = {num(newest['n'])}" in shown.inner_text()
    times = timeline.locator("li").evaluate_all("els => els.map(e => e.querySelector('time').dateTime)")
    assert times == sorted(times, reverse=True)  # newest first


def test_range_split_and_feature_picker(page, ui_server):
    sign_in(page, ui_server, "read")
    goto_ready(page, ui_server.url + PAGE + "?range=30d&by=horizon")
    assert page.get_attribute('nav[aria-label="Time range"] a[aria-current="true"]', "href").startswith(
        "?range=30d"
    )
    legend = page.inner_text('.chart[data-chart="perf-nmae"]')
    assert "6-24h" in legend  # a line per lead-time bucket of the chosen window
    # the picker swaps in another feature's histogram without reloading the page
    page.select_option("#feature", "temp_air")
    page.wait_for_selector('#histogram h3:has-text("temp_air")')
    page.wait_for_selector('.chart[data-chart="hist-spec"] canvas')
    assert page.js_errors == []


def test_unknown_model_and_bad_query_are_explained(page, ui_server):
    sign_in(page, ui_server, "read")
    response = page.goto(ui_server.url + "/models/no-such-model/monitoring")
    assert response.status == 404 and "no model 'no-such-model'" in page.inner_text("#error-message")
    response = page.goto(ui_server.url + PAGE + "?range=7y")
    assert response.status == 400 and "use one of 30d, 90d, 365d, all" in page.inner_text("#error-message")
    response = page.goto(ui_server.url + PAGE + "/histogram?feature=nope")
    assert response.status == 400 and "not profiled" in page.inner_text("#error-message")


def test_the_page_passes_axe(page, ui_server):
    sign_in(page, ui_server, "read")
    goto_ready(page, ui_server.url + PAGE)
    found = axe_violations(page)
    assert [v["id"] for v in found if v["impact"] == "critical"] == [], found
