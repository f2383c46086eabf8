"""The model, version and compare pages in Chromium against a real server: what they show is what the
registry holds (read with the Python API), charts are drawn, bad comparisons are 400 pages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from maestrale.ui.formatting import num
from tests.ui.conftest import MODEL, axe_violations, goto_ready, sign_in


@pytest.fixture(scope="module")
def reg(ui_server):
    """The world's registry, read in-process (the figures the pages must show)."""
    from maestrale import Registry

    return Registry(database_url=ui_server.database_url, storage_url=ui_server.storage_url)


def _critical(page) -> list[str]:
    return [v["id"] for v in axe_violations(page) if v["impact"] == "critical"]


def test_model_page_lists_versions_aliases_lineage_and_trainings(page, ui_server, reg):
    from maestrale.training.requests import TrainingRequests

    sign_in(page, ui_server, "read")
    goto_ready(page, f"{ui_server.url}/models/{MODEL}")
    versions = reg.list_versions(MODEL).items
    rows = page.locator("#versions-table tbody tr")
    assert rows.count() == len(versions)
    assert rows.first.get_attribute("data-version") == str(versions[0].version)  # newest first
    champion = reg.get_model(MODEL).aliases["champion"]
    assert "champion" in page.locator(f'#versions-table tr[data-version="{champion}"]').inner_text()
    # the audit trail, newest move first, with who and why
    history = reg.alias_history(MODEL)
    trail = page.locator("#alias-history tbody tr")
    assert trail.count() == len(history)
    newest = trail.first.locator("td")
    assert newest.nth(1).inner_text() == history[-1].alias
    assert newest.nth(4).inner_text() == (history[-1].actor or "–")
    # lineage: each retrained version names its parent and the reason recorded with it
    for mv in versions:
        item = page.locator(f'#lineage-list li[data-version="{mv.version}"]').inner_text()
        if mv.parent_version:
            assert f"v{mv.parent_version} → v{mv.version}" in item and mv.reason in item
    trainings = TrainingRequests(ui_server.database_url).list(name=MODEL)
    assert page.locator("#trainings-table tbody tr[data-status]").count() == len(trainings)
    assert page.get_attribute("a[href$='/monitoring']", "href") == f"/models/{MODEL}/monitoring"
    assert _critical(page) == []
    assert page.js_errors == []


def test_model_page_columns_sort_and_compare_selected(page, ui_server, reg):
    sign_in(page, ui_server, "read")
    goto_ready(
        page, f"{ui_server.url}/models/{MODEL}?c=metrics.nmae&c=params.max_iter&sort=metrics.nmae&desc=false"
    )
    headings = page.locator("#versions-table thead th").all_inner_texts()
    assert any(h.startswith("nmae") for h in headings) and "max_iter" in headings
    by_nmae = sorted(reg.list_versions(MODEL).items, key=lambda mv: mv.metrics["nmae"])
    shown = page.locator("#versions-table tbody tr").evaluate_all("rows => rows.map(r => r.dataset.version)")
    assert shown == [str(mv.version) for mv in by_nmae]
    nmae_col = headings.index(next(h for h in headings if h.startswith("nmae")))
    first = page.locator("#versions-table tbody tr").first.locator("td").nth(nmae_col)
    assert first.inner_text() == num(by_nmae[0].metrics["nmae"])
    # the picker keeps its choice in the URL; a bad column is a 400 naming the fix
    response = page.goto(f"{ui_server.url}/models/{MODEL}?c=bogus")
    assert response.status == 400 and "GROUP.KEY" in page.inner_text("#error-message")
    goto_ready(page, f"{ui_server.url}/models/{MODEL}")
    boxes = page.locator("#versions-table input[name=v]")
    boxes.nth(0).check()
    boxes.nth(1).check()
    page.click("button[form=compare-form]")
    page.wait_for_selector('main[data-ready="true"]')
    assert "/compare?v=" in page.url and page.locator("#metrics-table").count() == 1


def test_version_page_shows_the_registry_figures_and_draws_the_holdout(page, ui_server, reg):
    sign_in(page, ui_server, "read")
    mv = reg.get_version(f"{MODEL}@champion")
    goto_ready(page, f"{ui_server.url}/models/{MODEL}/versions/{mv.version}")
    for key in ("nmae", "rmse", "skill", "persistence_nmae"):
        if key in mv.metrics:
            assert page.inner_text(f'#metrics-table td[data-metric="{key}"]') == num(mv.metrics[key])
    assert page.inner_text("#artifact-sha256") == mv.artifact.sha256
    assert page.inner_text("#data-fingerprint") == mv.data_fingerprint
    assert f"target: {mv.spec['target']}" in page.inner_text("#spec-yaml")
    for key, value in mv.params.items():
        assert page.inner_text(f'td[data-param="{key}"]') == str(value)
    holdout = reg.holdout(mv.ref)
    assert holdout is not None, "the demo's versions are trained: each has a holdout series"
    assert page.locator('.chart[data-chart="holdout-0"] canvas').count() >= 1
    assert page.locator('.chart[data-chart="residual-hour"] canvas').count() >= 1
    assert page.locator('.chart[data-chart^="profile-"] canvas').count() >= 1
    assert f"maestrale reproduce {mv.ref}" in page.input_value("#cmd-reproduce")
    assert f"maestrale models download {mv.ref}" in page.input_value("#cmd-download")
    assert _critical(page) == []
    assert page.js_errors == []


def test_download_streams_the_registered_bytes_to_a_signed_in_viewer(page, ui_server, reg, http, tmp_path):
    mv = reg.get_version(f"{MODEL}@champion")
    url = f"/models/{MODEL}/versions/{mv.version}/download"
    assert http.get(url).status_code == 401  # no session, no bytes
    assert http.get(url, headers={"accept": "text/html"}).status_code == 303  # a browser is sent to sign in
    sign_in(page, ui_server, "read")
    goto_ready(page, f"{ui_server.url}/models/{MODEL}/versions/{mv.version}")
    with page.expect_download() as info:
        page.click("#download")
    download = info.value
    assert download.suggested_filename == f"{MODEL}-{mv.version}.skops"
    saved = Path(tmp_path / download.suggested_filename)
    download.save_as(saved)
    assert hashlib.sha256(saved.read_bytes()).hexdigest() == mv.artifact.sha256


def test_compare_highlights_differences_and_diffs_the_specs(page, ui_server, reg):
    sign_in(page, ui_server, "read")
    a, b = reg.get_version(f"{MODEL}:1"), reg.get_version(f"{MODEL}:2")
    goto_ready(page, f"{ui_server.url}/compare?v={a.ref}&v={b.ref}")
    differing = next(k for k in ("nmae", "rmse", "mae", "skill") if a.metrics[k] != b.metrics[k])
    row = page.locator(f'#metrics-table tr[data-key="{differing}"]')
    assert "diff" in row.get_attribute("class") and "≠" in row.inner_text()
    cells = row.locator("td")
    assert cells.nth(1).inner_text().split()[0] == num(a.metrics[differing])
    assert cells.nth(2).inner_text().split()[0] == num(b.metrics[differing])
    if a.spec == b.spec:
        assert "specs identical" in page.inner_text("#spec ~ p.spec-same")
    else:
        diff = page.inner_text("#spec-diff-1")
        assert (
            diff.startswith(f"--- {a.ref}")
            and page.locator("#spec-diff-1 .add, #spec-diff-1 .del").count() > 0
        )
    chart = page.locator('.chart[data-chart="overlay"]')
    assert chart.locator("canvas").count() >= 1
    assert _critical(page) == []
    assert page.js_errors == []


@pytest.mark.parametrize(
    ("query", "says"),
    [
        (f"v={MODEL}:x&v={MODEL}:1", f"v='{MODEL}:x' is not a version reference"),
        (f"v={MODEL}:1", "compare 2 to 10"),
        ("&".join(f"v={MODEL}:{i}" for i in range(1, 12)), "11 distinct version(s) given"),
    ],
)
def test_a_bad_comparison_is_a_400_page_naming_the_problem(page, ui_server, query, says):
    sign_in(page, ui_server, "read")
    response = page.goto(f"{ui_server.url}/compare?{query}")
    assert response.status == 400
    assert says in page.inner_text("#error-message")
    page.js_errors.clear()  # the browser logs the 400 itself


def test_compare_without_versions_is_the_picker(page, ui_server):
    sign_in(page, ui_server, "read")
    goto_ready(page, f"{ui_server.url}/compare")
    assert page.locator("#compare-picker input[name=v]").count() == 2
    page.fill("#compare-picker input[name=v] >> nth=0", f"{MODEL}:1")
    page.fill("#compare-picker input[name=v] >> nth=1", f"{MODEL}:2")
    page.click("#compare-picker button[type=submit]")
    page.wait_for_selector('main[data-ready="true"]')
    assert page.locator("#metrics-table").count() == 1
    assert _critical(page) == []


# The pages' pure parts, on hostile or unusual inputs the demo world does not have (no browser).


def _holdout(times: list[str], entity: list[str] | None = None, folds: list | None = None) -> dict:
    from maestrale.registry.holdout import SCHEMA, check_holdout

    n = len(times)
    return check_holdout({
        "schema": SCHEMA, "rows": n, "sampling": "all", "times": times, "actual": [1.0] * n,
        "forecast": [1.5] * n, "entity": entity, "by_hour": [], "folds": folds or [],
    })  # fmt: skip


def test_holdout_charts_per_entity_sorted_with_gaps_broken():
    from maestrale.ui.pages.version import holdout_charts

    times = ["2012-06-02T01:00:00Z", "2012-06-01T00:00:00Z", "2012-06-01T01:00:00Z", "2012-06-01T02:00:00Z",
             "2012-06-05T00:00:00Z"]  # fmt: skip
    charts = holdout_charts(_holdout(times, entity=["b", "a", "a", "a", "a"]), "power_kw")
    assert [c["entity"] for c in charts["lines"]] == ["a", "b"]  # the most sampled entity first
    x = charts["lines"][0]["spec"]["x"]
    assert x == sorted(x) and len(x) == 5  # 4 points and one null inside the 3-day gap
    assert charts["lines"][0]["spec"]["series"][0]["values"][3] is None
    assert charts["by_hour"] is None and charts["folds"] is None


def test_fold_bars_use_a_metric_every_fold_has():
    from maestrale.ui.pages.version import fold_chart

    fold = {"start": "2012-06-01T00:00:00Z", "end": "2012-06-08T00:00:00Z", "n_train": 100, "n_test": 10,
            "train_start": "2012-01-01T00:00:00Z", "train_end": "2012-06-01T00:00:00Z"}  # fmt: skip
    folds = [
        {**fold, "fold": 1, "metrics": {"rmse": 0.2, "nmae": 0.05}},
        {**fold, "fold": 2, "metrics": {"rmse": 0.3}},
    ]
    chart = fold_chart(folds)
    assert chart["y_label"] == "rmse" and chart["series"][0]["values"] == [0.2, 0.3]
    assert fold_chart([{**fold, "fold": 1, "metrics": {}}]) is None


def test_overlay_skips_an_empty_holdout_and_keeps_one_actual_per_model():
    from datetime import UTC, datetime

    from maestrale.registry.types import ArtifactInfo, ModelVersion
    from maestrale.ui.pages.compare import overlay

    art = ArtifactInfo(key="k", sha256="0" * 64, size=1, format="skops", flavor="x.Y")
    now = datetime.now(UTC)
    items = [ModelVersion(name=n, version=v, status="ready", created_at=now, artifact=art)
             for n, v in (("a", 1), ("a", 2), ("b", 1))]  # fmt: skip
    docs = [_holdout(["2012-06-01T00:00:00Z", "2012-06-01T01:00:00Z"]), _holdout([]),
            _holdout(["2012-06-01T01:00:00Z"])]  # fmt: skip
    chart = overlay(items, docs, "kw")
    assert [s["label"] for s in chart["series"]] == ["actual a", "actual b", "a:1", "b:1"]
    assert chart["series"][3]["values"] == [None, 1.5]
    assert overlay(items[:1], [None], "kw") is None


def test_compare_refs_and_model_columns_are_checked():
    from maestrale.errors import InvalidInput
    from maestrale.ui.pages.compare import parse_refs
    from maestrale.ui.pages.model import parse_columns

    assert [str(r) for r in parse_refs([" pv:1 ", "", "pv@champion", "pv:1"])] == ["pv:1", "pv@champion"]
    for bad, says in ((["pv:1", "x" * 400], "at most 300"), (["pv:1", "pv:0"], "not a version reference"),
                      (["pv:1", "pv:1"], "1 distinct")):  # fmt: skip
        with pytest.raises(InvalidInput, match=says):
            parse_refs(bad)
    with pytest.raises(InvalidInput, match="at most 30"):
        parse_columns([f"metrics.m{i}" for i in range(31)])
    with pytest.raises(InvalidInput, match="GROUP.KEY"):
        parse_columns(["spec.target"])
