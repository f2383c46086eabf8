"""The web UI in headless Chromium: time until each page's main content is drawn, Maestrale vs MLflow.

Run with the project's interpreter (issue 12, "Benchmark")::

    .venv/bin/python bench/ui.py                 # seeds once (~20 min), then ~4 min per run
    .venv/bin/python bench/ui.py --only maestrale --loads 3
    .venv/bin/python bench/ui.py --reseed        # rebuild the cached worlds

The worlds (cached in ``--world``, default ``/work/bench-out/ui-world``; reruns skip seeding)
---------------------------------------------------------------------------------------------
* Maestrale (``bench/_ui_world.py``): 1,000 models x 20 versions with params, metrics, tags, specs,
  training profiles, lineage and champion/challenger aliases, 1M logged predictions with actuals,
  a year of hourly data for ``pv-nrel-50`` (trained by the real trainer) with the monitor's daily
  evaluations over that year, one monitor tick over the fleet; PostgreSQL database ``--database``.
* MLflow 3 (``bench/_ui_mlflow.py``, in ``bench/.venv-mlflow`` from ``bench/setup_anchors.sh``): the
  same 1,000 names x 20 versions (each from a run with params and metrics) and a champion alias,
  registered through its REST API into a SQLite store.

Method
------
``maestrale server`` (tokens on, 1 worker: its defaults; the bench signs in with a read token through
``/signin``) and ``mlflow server`` (its defaults: 4 uvicorn workers; ``MLFLOW_DISABLE_TELEMETRY=true``,
``DO_NOT_TRACK=1``; ``--workers N`` sets both) run one after the other on loopback, each given time to
go CPU-quiet first. Debian's ``/usr/bin/chromium``, headless, 1280x900, driven by Playwright.
Each page: one warm-up load, then ``--loads`` (7) loads, each in a new tab of the same browser
context (so the HTTP cache is warm, as for a user clicking around). A load is timed
from navigation start to the first animation frame at which the page's "drawn" selector exists:

* Maestrale: ``main[data-ready="true"]`` (the UI sets it once the main content, charts included, is
  drawn); MLflow: the first row of its registered-models table, or the newest version's row of a
  model's versions table (its React app fetches them after the HTML).

``drawn`` is ``performance.now()`` read in the page at that frame (time since navigation start);
``server`` is the HTML response's ``Server-Timing`` (its ``total``, else its largest entry), else
Navigation Timing's ``responseEnd - requestStart``. A page that answers 404 or no HTML is listed as
missing, not measured. Prints a table on stderr and one JSON line on stdout; ``--check`` exits 2 when
a target (each page <= 1 s, the fleet page's server time <= 100 ms) is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from _bench_common import free_port, server, summary  # noqa: E402
from _ui_mlflow import MLFLOW_BIN, ensure_mlflow_world, mlflow_server  # noqa: E402
from _ui_world import ensure_world  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
READY = 'main[data-ready="true"]'
PAGE_MAX_MS = 1000.0
FLEET_SERVER_MAX_MS = 100.0
TIMEOUT_MS = 60_000
# first animation frame at which the selector exists: its time since navigation start
DRAWN_JS = "sel => document.querySelector(sel) ? performance.now() : false"
NAV_JS = """() => {
  const n = performance.getEntriesByType('navigation')[0];
  const r = performance.getEntriesByType('resource');
  return {status: n.responseStatus || 0, request_start: n.requestStart, response_start: n.responseStart,
          response_end: n.responseEnd, html_bytes: n.decodedBodySize, resources: r.length,
          transfer_bytes: n.transferSize + r.reduce((s, e) => s + (e.transferSize || 0), 0)};
}"""


def log(msg: str = "") -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--world", type=Path, default=Path("/work/bench-out/ui-world"), help="cache folder")
    p.add_argument(
        "--database", default="maestrale_bench_ui", help="PostgreSQL database (dropped on seeding)"
    )
    p.add_argument("--models", type=int, default=1000, help="models in both worlds (20 versions each)")
    p.add_argument("--loads", type=int, default=7, help="timed loads per page (after one warm-up)")
    p.add_argument("--only", choices=["maestrale", "mlflow"], help="measure one side only")
    p.add_argument("--reseed", action="store_true", help="seed both worlds again")
    p.add_argument("--no-auth", action="store_true", help="MAESTRALE_AUTH=false: no sign-in")
    p.add_argument("--workers", type=int, help="server worker processes (default: each tool's own)")
    p.add_argument("--check", action="store_true", help="exit 2 if a target is missed")
    return p.parse_args()


def maestrale_pages(manifest: dict[str, Any]) -> list[dict[str, str]]:
    """The pages of the UI's contract (issue 12), on the models the world chose for them."""
    pages = manifest["pages"]
    name, version = pages["version"]
    compare = "&".join(f"v={n}:{v}" for n, v in pages["compare"])
    sweep = "&".join(f"v={n}:{v}" for n, v in pages["compare_fleet"])
    return [
        {"page": "fleet", "path": "/", "anchor": "registered models"},
        {"page": "model", "path": f"/models/{pages['model']}", "anchor": "model versions"},
        {"page": "version", "path": f"/models/{name}/versions/{version}"},
        {"page": "compare (10 versions)", "path": f"/compare?{compare}"},
        {"page": "compare (10 models)", "path": f"/compare?{sweep}"},
        {"page": "monitoring (1 year)", "path": f"/models/{pages['monitoring']}/monitoring"},
    ]


def mlflow_pages(manifest: dict[str, Any]) -> dict[str, dict[str, str]]:
    """MLflow's two pages, keyed by the Maestrale page they stand beside."""
    model = manifest["pages"]["model"]
    return {
        "registered models": {
            "path": "/#/models",
            "selector": '[data-testid="model-list-table"] [role="row"] a[href="#/models/pv-it-0001"]',
        },
        "model versions": {
            "path": f"/#/models/{model}",
            "selector": f'[data-testid="model-version-table"] a[href="#/models/{model}/versions/20"]',
        },
    }


def server_ms(headers: dict[str, str], nav: dict[str, Any]) -> tuple[float, str]:
    """The HTML response's server time: Server-Timing if sent, else responseEnd - requestStart."""
    entries: dict[str, float] = {}
    for part in headers.get("server-timing", "").split(","):
        name, _, rest = part.strip().partition(";")
        for param in rest.split(";"):
            key, _, value = param.strip().partition("=")
            if key == "dur":
                with contextlib.suppress(ValueError):  # a malformed entry is ignored, not fatal
                    entries[name.strip()] = float(value)
    if entries:
        return entries.get("total", max(entries.values())), "Server-Timing"
    return float(nav["response_end"] - nav["request_start"]), "responseEnd-requestStart"


def load_once(context: Any, url: str, selector: str) -> dict[str, Any]:
    """One load in a new tab: drawn ms (in page), wall ms (driver side), server ms, bytes."""
    page = context.new_page()
    try:
        t0 = time.perf_counter()
        response = page.goto(url, wait_until="commit", timeout=TIMEOUT_MS)
        handle = page.wait_for_function(DRAWN_JS, arg=selector, polling="raf", timeout=TIMEOUT_MS)
        drawn = float(handle.json_value())
        wall = (time.perf_counter() - t0) * 1000
        nav = page.evaluate(NAV_JS)
        srv, how = server_ms(response.headers if response else {}, nav)
        return {"drawn_ms": drawn, "wall_ms": wall, "server_ms": srv, "server_how": how, **nav}
    finally:
        page.close()


def measure(
    context: Any, base: str, path: str, selector: str, loads: int, shot: Path | None
) -> dict[str, Any]:
    """Warm-up, then `loads` timed loads; medians and p90 of the drawn time, median server time."""
    url = base + path
    load_once(context, url, selector)  # warm-up: first compile, HTTP cache, server caches
    runs = [load_once(context, url, selector) for _ in range(loads)]
    drawn = [r["drawn_ms"] for r in runs]
    stats = summary([ms / 1000 for ms in drawn])  # the other benches' median and p90 (interpolated)
    out = {
        "median_ms": round(stats["median"], 1),
        "p90_ms": round(stats["p90"], 1),
        "wall_median_ms": round(statistics.median(r["wall_ms"] for r in runs), 1),
        "server_ms": round(statistics.median(r["server_ms"] for r in runs), 1),
        "server_how": runs[-1]["server_how"],
        "html_kb": round(runs[-1]["html_bytes"] / 1024, 1),
        "resources": runs[-1]["resources"],
        "samples_ms": [round(x, 1) for x in drawn],
    }
    if shot is not None:
        page = context.new_page()
        page.goto(url)
        page.wait_for_function(DRAWN_JS, arg=selector, polling="raf", timeout=TIMEOUT_MS)
        page.screenshot(path=str(shot), full_page=False)
        page.close()
        out["screenshot"] = str(shot)
    return out


def brief(res: dict[str, Any]) -> str:
    return f"median {res['median_ms']} ms, p90 {res['p90_ms']}, server {res['server_ms']} ms"


def probe(context: Any, url: str) -> str | None:
    """None when `url` answers HTML; else why the page is not measured."""
    try:
        r = context.request.get(url, timeout=TIMEOUT_MS)
    except Exception as exc:  # the server died or refused: say so in the table
        return f"{type(exc).__name__}"
    kind = r.headers.get("content-type", "")
    if r.status != 200 or "html" not in kind:
        return f"HTTP {r.status} {kind.split(';')[0]}".strip()
    return None


def sign_in(context: Any, base: str, token: str) -> str:
    """Sign in through the UI's form (or a form POST when the page has none); returns how."""
    page = context.new_page()
    try:
        r = page.goto(base + "/signin")
        if r is not None and r.status == 200 and page.locator('input[name="token"]').count():
            page.fill('input[name="token"]', token)
            with page.expect_navigation():
                page.locator('form:has(input[name="token"]) [type="submit"]').first.click()
            return "form"
    finally:
        page.close()
    resp = context.request.post(base + "/signin", form={"token": token}, max_redirects=0)
    return f"POST /signin -> {resp.status}"


def maestrale_env(manifest: dict[str, Any], home: Path, auth: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAESTRALE_")}
    env.update(
        MAESTRALE_HOME=str(home),
        MAESTRALE_DATABASE_URL=manifest["database_url"],
        MAESTRALE_STORAGE_URL=manifest["storage_url"],
        MAESTRALE_AUTH="true" if auth else "false",
    )
    return env


def run_maestrale(
    browser: Any, manifest: dict[str, Any], args: argparse.Namespace, shots: Path
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd = [
        str(Path(sys.executable).parent / "maestrale"),
        "server",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    env = maestrale_env(manifest, args.world / "home", not args.no_auth)
    out: dict[str, Any] = {"pages": {}}
    with server(cmd, env, args.world / "maestrale-server.log", base + "/healthz") as info:
        out["server"] = info
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        if not args.no_auth:
            token = Path(manifest["token_file"]).read_text().strip()
            out["signin"] = sign_in(context, base, token)
            log(f"[maestrale] signed in: {out['signin']}")
        for p in maestrale_pages(manifest):
            missing = probe(context, base + p["path"])
            if missing:
                out["pages"][p["page"]] = {"missing": missing, "path": p["path"]}
                log(f"[maestrale] {p['page']}: not measured ({missing})")
                continue
            shot = shots / f"maestrale-{len(out['pages'])}-{p['page'].split()[0]}.png"
            try:
                res = measure(context, base, p["path"], READY, args.loads, shot)
            except Exception as exc:  # e.g. never drawn: the other pages are still measured
                out["pages"][p["page"]] = {"missing": f"{type(exc).__name__}", "error": str(exc)[:500]}
                log(f"[maestrale] {p['page']}: FAILED {exc}")
                continue
            out["pages"][p["page"]] = {**res, "path": p["path"], "anchor": p.get("anchor")}
            log(f"[maestrale] {p['page']}: {brief(res)}")
        context.close()
    return out


def run_mlflow(
    browser: Any, manifest: dict[str, Any], args: argparse.Namespace, shots: Path
) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {"pages": {}}
    with mlflow_server(args.world / "mlflow", port, args.workers) as info:
        out["server"] = info
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        for label, p in mlflow_pages(manifest).items():
            shot = shots / f"mlflow-{label.replace(' ', '-')}.png"
            res = measure(context, base, p["path"], p["selector"], args.loads, shot)
            out["pages"][label] = {**res, "path": p["path"], "selector": p["selector"]}
            log(f"[mlflow] {label}: {brief(res)}")
        context.close()
    return out


def ensure_anchor() -> str:
    stamp = BENCH / ".venv-mlflow" / ".anchors-installed"
    if not (stamp.exists() and MLFLOW_BIN.exists()):
        log("setting up the MLflow anchor in bench/.venv-mlflow (a few minutes, once) ...")
        subprocess.run(["bash", str(BENCH / "setup_anchors.sh")], check=True)
    return stamp.read_text().strip()


def build_report(
    ma: dict[str, Any] | None, ml: dict[str, Any] | None, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Rows side by side, with each target and whether it is met (None: not measured)."""
    rows = []
    for p in maestrale_pages(manifest):
        m = (ma or {}).get("pages", {}).get(p["page"], {})
        anchor = p.get("anchor")
        a = (ml or {}).get("pages", {}).get(anchor, {}) if anchor else {}
        met: dict[str, bool | None] = {"page_1s": None}
        if "median_ms" in m:
            met["page_1s"] = m["median_ms"] <= PAGE_MAX_MS
        if p["page"] == "fleet":
            met["server_100ms"] = m["server_ms"] <= FLEET_SERVER_MAX_MS if "server_ms" in m else None
        ratio = round(a["median_ms"] / m["median_ms"], 2) if "median_ms" in m and "median_ms" in a else None
        rows.append(
            {
                "page": p["page"],
                "maestrale": m,
                "mlflow_page": anchor,
                "mlflow": a,
                "ratio": ratio,
                "met": met,
            }
        )
    return {"rows": rows, "targets": {"page_median_ms": PAGE_MAX_MS, "fleet_server_ms": FLEET_SERVER_MAX_MS}}


def print_table(rep: dict[str, Any]) -> None:
    def cell(d: dict[str, Any]) -> str:
        if "median_ms" in d:
            return f"{d['median_ms']:.0f} / {d['p90_ms']:.0f}"
        return d.get("missing", "-")

    log("")
    head = f"{'page':<23}{'Maestrale med/p90 ms':>22}{'server ms':>11}  "
    head += f"{'MLflow page':<18}{'MLflow med/p90':>16}"
    log(head + "  target")
    for r in rep["rows"]:
        m, a = r["maestrale"], r["mlflow"]
        srv = f"{m['server_ms']:.1f}" if "server_ms" in m else "-"
        marks = []
        for key, text in (("page_1s", "<= 1 s"), ("server_100ms", "server <= 100 ms")):
            if key in r["met"]:
                ok = r["met"][key]
                marks.append(f"{text} {'-' if ok is None else ('ok' if ok else 'MISSED')}")
        anchor = f"{r['mlflow_page'] or '':<18}{cell(a) if a else '':>16}"
        log(f"{r['page']:<23}{cell(m):>22}{srv:>11}  {anchor}  {'; '.join(marks)}")


def main() -> int:
    args = parse_args()
    t_start = time.perf_counter()
    load_start = os.getloadavg()
    if load_start[0] > 1.0:
        log(
            f"warning: 1-min load average {load_start[0]:.2f} on {os.cpu_count()} CPUs: timings will be noisy"
        )
    args.world = args.world.resolve()
    manifest = ensure_world(args.world, args.database, n_models=args.models, reseed=args.reseed)
    log(
        f"[world] Maestrale: {manifest['versions']} versions, {manifest['predictions']} predictions, "
        f"{manifest['evaluations']} evaluations (seeded in {manifest['seed_s']:.0f} s)"
    )
    anchor, ml_world = None, None
    if args.only != "maestrale":
        anchor = ensure_anchor()
        ml_world = ensure_mlflow_world(args.world / "mlflow", args.models, reseed=args.reseed)
    shots = args.world / "screens"
    shots.mkdir(exist_ok=True)
    results: dict[str, dict[str, Any] | None] = {"maestrale": None, "mlflow": None}
    errors: dict[str, str] = {}
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            for side, run in (("maestrale", run_maestrale), ("mlflow", run_mlflow)):
                if args.only not in (None, side):
                    continue
                try:
                    results[side] = run(browser, manifest, args, shots)
                except Exception as exc:  # one side failing still prints the other
                    errors[side] = f"{type(exc).__name__}: {exc}"
                    log(f"[{side}] FAILED: {errors[side]}")
            version = browser.version
        finally:
            browser.close()
    rep = build_report(results["maestrale"], results["mlflow"], manifest)
    rep["worlds"] = {"maestrale": manifest, "mlflow": ml_world}
    rep["servers"] = {side: (r or {}).get("server") for side, r in results.items()}
    rep["signin"] = (results["maestrale"] or {}).get("signin")
    rep["versions"] = {"chromium": version, "mlflow_venv": anchor, "loads": args.loads}
    rep["machine"] = {
        "cpus": os.cpu_count(),
        "loadavg_start": [round(x, 2) for x in load_start],
        "loadavg_end": [round(x, 2) for x in os.getloadavg()],
    }
    rep["runtime_s"] = round(time.perf_counter() - t_start, 1)
    if errors:
        rep["errors"] = errors
    print_table(rep)
    log(f"screenshots in {shots}; total {rep['runtime_s']:.0f} s")
    print(json.dumps(rep), flush=True)
    if errors:
        return 1
    met = [ok for r in rep["rows"] for ok in r["met"].values()]
    if args.check and not all(met):
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
