"""`maestrale demo`: the registry end to end on real PV data, on embedded defaults.

Trains two scikit-learn models of NREL system 50's AC power from weather, registers both with full
metadata, promotes the better one on a time-ordered holdout, loads `pv-nrel-50@champion` back
(embedded and through a real REST server) and forecasts a day it never saw.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

MODEL = "pv-nrel-50"
TRAIN = ("2011-04-15", "2011-06-30")
HOLDOUT = ("2011-07-01", "2011-07-31")
FORECAST_DAY = "2011-08-02"
SITE_TZ = "America/Denver"


def _split(df: Any, start: str, end: str) -> Any:
    return df.loc[start : f"{end} 23:59"]


CANDIDATES = {
    "ridge": {"estimator": "ridge", "params": {"alpha": 1.0}},
    "gbm": {"estimator": "hgb", "params": {"max_iter": 200, "learning_rate": 0.05}},
}


def demo_spec(kind: str) -> dict[str, Any]:
    """The training spec of one demo candidate (what `maestrale train` would read from YAML)."""
    return {
        "name": MODEL,
        "description": f"{CANDIDATES[kind]['estimator']} on calendar + irradiance features, NREL system 50",
        "data": {"dataset": "nrel_system50", "freq": "1h"},
        "target": "power_kw",
        "feature_set": "pv_features",
        **CANDIDATES[kind],
        "train_window": {"start": TRAIN[0], "end": HOLDOUT[1]},
        "split": {"holdout": {"test_start": HOLDOUT[0]}, "backtest": {"folds": 2, "test_size": "14D"}},
        "baselines": {"persistence": {"lag": "24h"}, "climatology": {"by": "hour_of_day"}},
        "capacity": 3.4,
        "tags": {"site": "nrel-50", "target": "power_kw", "kind": kind},
    }


def _train_through_service(settings: Any, reg: Any, console: Console) -> dict[str, Any]:
    """Submit one training request per candidate; the service (a worker on the embedded bus) runs them."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from maestrale.training.requests import TrainingRequests
    from maestrale.training.service import EmbeddedService, wait_for

    requests = TrainingRequests(settings.database_url)
    t0 = time.perf_counter()
    with EmbeddedService(settings):
        records = {k: requests.submit(demo_spec(k), requested_by="demo")[0] for k in CANDIDATES}
        console.print(
            f"submitted {len(records)} training requests (maestrale.train.requested, {settings.broker_url}): "
            + ", ".join(f"{k} → {r.id[:8]}" for k, r in records.items())
        )
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task("training", total=len(records))
            done = wait_for(
                requests, [r.id for r in records.values()], timeout=600,
                on_change=lambda rs: bar.update(task, completed=sum(r.done for r in rs)),
            )  # fmt: skip
    failed = [r for r in done if r.status != "completed"]
    if failed:
        raise RuntimeError(f"demo training failed: {failed[0].name}: {failed[0].error}")
    console.print(f"the training service registered {len(done)} versions in {time.perf_counter() - t0:.1f} s")
    versions = {}
    for kind, rec in zip(records, done, strict=True):
        mv = reg.get_version(f"{MODEL}:{rec.version}")
        versions[kind] = mv
        console.print(
            f"  [bold]{mv.ref}[/] ({kind}): holdout nMAE {mv.metrics['nmae']:.4f}, "
            f"backtest nMAE {mv.metrics.get('backtest_nmae', float('nan')):.4f}, "
            f"skill vs persistence {mv.metrics['skill']:.3f} (persistence nMAE "
            f"{mv.metrics.get('persistence_nmae', float('nan')):.4f}), sha256 {mv.artifact.sha256[:12]}…"
        )
    return versions


def run_demo(home: Path, console: Console | None = None, plot: bool = True) -> dict[str, Any]:
    """Run the demo in `home` (a fresh embedded registry) and return its figures.

    >>> run_demo(Path(".demo"))["champion"]  # doctest: +SKIP
    2
    """
    import numpy as np
    import pandas as pd

    from maestrale import Registry
    from maestrale.config import load_settings
    from maestrale.datasets import NREL_SYSTEM50_ESTIMATED_CAPACITY_KW as CAPACITY
    from maestrale.datasets import nrel_system50, pv_features
    from maestrale.stats.metrics import energy_metrics

    console = console or Console(width=max(110, Console().width))
    settings = load_settings(home=home)
    reg = Registry(settings=settings)
    console.rule("[bold]Maestrale demo: training service + model registry on NREL system 50")
    console.print(f"registry: {reg.location}")

    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X, y = pv_features(df), df["power_kw"]
    Xtr, Xho = _split(X, *TRAIN), _split(X, *HOLDOUT)
    console.print(
        f"data: {len(df):,} hourly rows of measured AC power + PSM3 weather "
        f"({df.index[0]:%Y-%m-%d} → {df.index[-1]:%Y-%m-%d}); capacity ≈ {CAPACITY} kW"
    )
    console.print(
        f"train {TRAIN[0]} → {TRAIN[1]} ({len(Xtr)} h), holdout {HOLDOUT[0]} → {HOLDOUT[1]} ({len(Xho)} h)"
    )

    versions = _train_through_service(settings, reg, console)
    best = min(versions.values(), key=lambda v: v.metrics["nmae"])
    other = next(v for v in versions.values() if v.version != best.version)
    reg.set_alias(MODEL, "champion", best.version, reason=f"lowest holdout nMAE ({best.metrics['nmae']:.4f})")
    reg.set_alias(MODEL, "challenger", other.version, reason="runner-up")
    console.print(
        f"promoted [bold]{MODEL}:{best.version}[/] to champion; {MODEL}:{other.version} is challenger"
    )

    table = Table(title=f"{MODEL} versions")
    for col in ("version", "kind", "nMAE", "nRMSE", "bias kW", "skill", "aliases", "parent", "sha256"):
        table.add_column(col)
    for v in reg.list_versions(MODEL).items:
        table.add_row(
            str(v.version),
            v.tags.get("kind", ""),
            f"{v.metrics['nmae']:.4f}",
            f"{v.metrics['nrmse']:.4f}",
            f"{v.metrics['bias']:+.3f}",
            f"{v.metrics['skill']:.3f}",
            ", ".join(v.aliases),
            str(v.parent_version or ""),
            v.artifact.sha256[:12],
        )
    console.print(table)

    t0 = time.perf_counter()
    loaded = reg.load_version(f"{MODEL}@champion")
    cold_ms = 1000 * (time.perf_counter() - t0)  # this process trained nothing itself: imports included
    t0 = time.perf_counter()
    loaded = reg.load_version(f"{MODEL}@champion")
    load_ms = 1000 * (time.perf_counter() - t0)
    # the plant's own calendar day (Golden, Colorado), not a UTC day that splits its afternoon
    local = X.index.tz_convert(SITE_TZ)
    in_day = (local >= pd.Timestamp(FORECAST_DAY, tz=SITE_TZ)) & (
        local < pd.Timestamp(FORECAST_DAY, tz=SITE_TZ) + pd.Timedelta("1D")
    )
    day = X[in_day]
    actual = y.reindex(day.index)
    forecast = np.clip(loaded.model.predict(day), 0, None)
    console.print(
        f"loaded {MODEL}@champion → version {loaded.version} (sha256 verified) in {load_ms:.1f} ms "
        f"({cold_ms:.0f} ms the first time, with the imports)"
    )

    remote_equal = _remote_check(home, settings, day, forecast, console)
    day_metrics = energy_metrics(actual, forecast, capacity=CAPACITY)
    day_table = Table(
        title=f"forecast from measured weather, {FORECAST_DAY} ({SITE_TZ}), version {loaded.version}"
    )
    day_table.add_column("local hour")
    day_table.add_column("forecast kW", justify="right")
    day_table.add_column("actual kW", justify="right")
    for ts, f, a in zip(day.index, forecast, actual.reindex(day.index), strict=True):
        if f > 0.01 or (a == a and a > 0.01):
            day_table.add_row(f"{ts.tz_convert(SITE_TZ):%H:%M}", f"{f:.2f}", f"{a:.2f}")
    console.print(day_table)
    console.print(
        f"day nMAE {day_metrics['nmae']:.4f}; energy forecast {forecast.sum():.1f} kWh, "
        f"measured {actual.sum():.1f} kWh"
    )
    plot_path = (
        _plot(home, day.index, forecast, actual.reindex(day.index).to_numpy(), loaded.version)
        if plot
        else None
    )
    if plot_path:
        console.print(f"plot: {plot_path}")
    verified = reg.verify(f"{MODEL}:{best.version}")
    console.print(f"verify {verified.ref}: {'ok' if verified.ok else verified.detail}")
    console.print("[dim]Data: NREL PVDAQ system 50 + NSRDB PSM3 weather, via pvanalytics (MIT).[/]")
    return {
        "champion": loaded.version,
        "versions": {k: v.version for k, v in versions.items()},
        "holdout_nmae": {k: v.metrics["nmae"] for k, v in versions.items()},
        "day_nmae": day_metrics["nmae"],
        "load_ms": load_ms,
        "remote_equal": remote_equal,
        "plot": str(plot_path) if plot_path else None,
    }


def _remote_check(home: Path, settings: Any, day: Any, forecast: Any, console: Console) -> bool:
    """Serve the same registry over REST and load the champion through it."""
    try:
        import threading

        import httpx
        import numpy as np
        import uvicorn

        from maestrale import Registry
        from maestrale.api.app import create_app
    except ImportError:
        console.print("[dim]REST check skipped: install maestrale[server][/]")
        return False
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="error", lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        token = (home / "admin.token").read_text().strip()
        remote = Registry(url, token=token)
        t0 = time.perf_counter()
        loaded = remote.load_version(f"{MODEL}@champion")
        ms = 1000 * (time.perf_counter() - t0)
        same = bool(np.allclose(np.clip(loaded.model.predict(day), 0, None), forecast))
        console.print(
            f"through REST ({url}, token in {home / 'admin.token'}): {MODEL}@champion → "
            f"version {loaded.version} in {ms:.1f} ms, identical forecast: {same}"
        )
        return same
    finally:
        server.should_exit = True
        thread.join(5)


def _plot(home: Path, index: Any, forecast: Any, actual: Any, version: int) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(8, 3.5))
    index = index.tz_convert(SITE_TZ).tz_localize(None)
    ax.plot(index, actual, label="measured", color="black", linewidth=1.5)
    ax.plot(index, forecast, label=f"{MODEL} v{version} (champion)", color="tab:orange", linewidth=1.5)
    ax.set_ylabel("AC power (kW)")
    ax.set_title(f"NREL system 50, {FORECAST_DAY} (local time, {SITE_TZ})")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    path = home / "demo-forecast.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
