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


def run_demo(home: Path, console: Console | None = None, plot: bool = True) -> dict[str, Any]:
    """Run the demo in `home` (a fresh embedded registry) and return its figures.

    >>> run_demo(Path(".demo"))["champion"]  # doctest: +SKIP
    2
    """
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from maestrale import Registry
    from maestrale.config import load_settings
    from maestrale.datasets import NREL_SYSTEM50_ESTIMATED_CAPACITY_KW as CAPACITY
    from maestrale.datasets import nrel_system50, pv_features
    from maestrale.stats.metrics import energy_metrics

    console = console or Console(width=max(110, Console().width))
    settings = load_settings(home=home)
    reg = Registry(settings=settings)
    console.rule("[bold]Maestrale demo: the model registry on NREL system 50")
    console.print(f"registry: {reg.location}")

    df = nrel_system50("1h").dropna(subset=["power_kw"])
    X, y = pv_features(df), df["power_kw"]
    Xtr, ytr = _split(X, *TRAIN), _split(y, *TRAIN)
    Xho, yho = _split(X, *HOLDOUT), _split(y, *HOLDOUT)
    console.print(
        f"data: {len(df):,} hourly rows of measured AC power + PSM3 weather "
        f"({df.index[0]:%Y-%m-%d} → {df.index[-1]:%Y-%m-%d}); capacity ≈ {CAPACITY} kW"
    )
    console.print(
        f"train {TRAIN[0]} → {TRAIN[1]} ({len(Xtr)} h), holdout {HOLDOUT[0]} → {HOLDOUT[1]} ({len(Xho)} h)"
    )

    persistence = yho.shift(24)  # same hour yesterday: the day-ahead baseline
    candidates = {
        "ridge": (make_pipeline(StandardScaler(), Ridge(alpha=1.0)), {"estimator": "Ridge", "alpha": 1.0}),
        "gbm": (
            HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05, random_state=0),
            {"estimator": "HistGradientBoostingRegressor", "max_iter": 200, "learning_rate": 0.05},
        ),
    }
    versions = {}
    parent = None
    for label, (model, params) in candidates.items():
        t0 = time.perf_counter()
        model.fit(Xtr, ytr)
        fit_s = time.perf_counter() - t0
        pred = np.clip(model.predict(Xho), 0, None)
        m = energy_metrics(yho, pred, capacity=CAPACITY, y_reference=persistence)
        metrics = {k: round(v, 6) for k, v in m.items() if np.isfinite(v)}
        t0 = time.perf_counter()
        mv = reg.register(
            MODEL,
            model,
            params=params,
            metrics=metrics,
            input_example=Xtr.head(),
            training_data=Xtr,
            tags={"site": "nrel-50", "target": "power_kw", "kind": label},
            duration_s=round(fit_s, 4),
            parent_version=parent,
            reason="initial fit" if parent is None else f"try {label}",
            description=f"{params['estimator']} on weather features, trained {TRAIN[0]}..{TRAIN[1]}",
        )
        console.print(
            f"registered [bold]{mv.ref}[/] ({label}) in {1000 * (time.perf_counter() - t0):.1f} ms: "
            f"nMAE {m['nmae']:.4f}, skill vs persistence {m['skill']:.3f}, sha256 {mv.artifact.sha256[:12]}…"
        )
        versions[label] = mv
        parent = mv.version

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
    load_ms = 1000 * (time.perf_counter() - t0)
    # the plant's own calendar day (Golden, Colorado), not a UTC day that splits its afternoon
    local = X.index.tz_convert(SITE_TZ)
    in_day = (local >= pd.Timestamp(FORECAST_DAY, tz=SITE_TZ)) & (
        local < pd.Timestamp(FORECAST_DAY, tz=SITE_TZ) + pd.Timedelta("1D")
    )
    day = X[in_day]
    actual = y.reindex(day.index)
    forecast = np.clip(loaded.model.predict(day), 0, None)
    console.print(f"loaded {MODEL}@champion → version {loaded.version} (sha256 verified) in {load_ms:.1f} ms")

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
