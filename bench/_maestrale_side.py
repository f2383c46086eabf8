"""Maestrale half of ``bench/registry_vs_mlflow.py`` -- runs in the project venv.

Prints human-readable progress on stderr and one JSON dict on the last stdout line, in
the same shape as ``_mlflow_side.py``.

Method (each step twice: "direct" = embedded ``Registry(database_url="sqlite:///...",
storage_url="file:///...")``; "rest" = ``Registry("http://127.0.0.1:P", token=...)``
against ``maestrale server`` on loopback, whose ``MAESTRALE_HOME`` gives it a SQLite
store and local file artifacts -- the same backend kinds as the MLflow server):

* register -- ``reg.register(NAME, model, params={"alpha": ..}, metrics={"r2": ..},
  input_example=X[:5], tags={"site": "sN"})``: one untimed warm-up registration (another
  model name) first, then ``--n-register`` timed.
* load + predict -- ``reg.set_alias(NAME, "champion", v)`` then
  ``reg.load("NAME@champion").predict(X[:1])`` x ``--n-load`` (one untimed warm-up).
* search -- the model is topped up to ``--n-versions`` versions with the public
  ``reg.register`` in a loop (full registrations with artifact upload, unlike the
  metadata-only ``create_model_version`` shortcut used on the MLflow side), then
  ``reg.search_versions("name = 'NAME' and tags.site = 's7'", limit=100)`` following
  ``next_page_token`` until all hits are read; one untimed warm-up, ``--n-search`` timed,
  hit count checked.
* import -- ``import maestrale`` (and, for context, ``from maestrale import Registry``);
  see ``_bench_common.import_time``.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _bench_common import (
    ALIAS,
    MODEL_NAME,
    N_SITES,
    SEARCH_SITE,
    emit,
    fit_models,
    free_port,
    import_time,
    load_data,
    log,
    server,
    side_args,
    site_tag,
    summary,
    timed,
)
from _search_floor import search_floors

SEARCH_PAGE = 100


def register_one(reg: Any, model: Any, X: np.ndarray, name: str, i: int) -> int:
    mv = reg.register(
        name,
        model,
        params={"alpha": float(model.alpha)},
        metrics={"r2": 0.9},
        input_example=X[:5],
        tags={"site": site_tag(i)},
    )
    return int(mv.version)


def search_all(reg: Any, flt: str) -> list[Any]:
    items: list[Any] = []
    token: str | None = None
    while True:
        page = reg.search_versions(flt, limit=SEARCH_PAGE, page_token=token)
        items.extend(page.items)
        token = getattr(page, "next_page_token", None)
        if not token:
            return items


def run_mode(mode: str, make_registry: Any, args: Any) -> dict[str, Any]:
    X, y = load_data(args.data)
    models = fit_models(X, y, args.n_register)
    out: dict[str, Any] = {}

    t_open, reg = timed(make_registry)
    out["open_ms"] = round(t_open * 1000, 2)
    out["location"] = repr(reg)

    t_cold, _ = timed(lambda: register_one(reg, models[0], X, f"{MODEL_NAME}-warmup", 0))
    out["register_cold_ms"] = round(t_cold * 1000, 1)
    log(f"[maestrale/{mode}] cold first register {t_cold * 1000:.0f} ms")

    times: list[float] = []
    versions: list[int] = []
    for i, m in enumerate(models):
        dt, v = timed(lambda m=m, i=i: register_one(reg, m, X, MODEL_NAME, i))
        times.append(dt)
        versions.append(v)
    out["register"] = summary(times)
    log(f"[maestrale/{mode}] register x{len(times)}: median {out['register']['median']:.1f} ms")

    champion = versions[-1]
    t_alias, _ = timed(lambda: reg.set_alias(MODEL_NAME, ALIAS, champion))
    out["set_alias_ms"] = round(t_alias * 1000, 2)
    ref = f"{MODEL_NAME}@{ALIAS}"
    expected = models[-1].predict(X[:1])

    def load_predict() -> np.ndarray:
        return np.asarray(reg.load(ref).predict(X[:1]))

    load_predict()  # warm-up
    lt: list[float] = []
    pred = expected
    for _ in range(args.n_load):
        dt, pred = timed(load_predict)
        lt.append(dt)
    if not np.allclose(pred, expected):
        raise AssertionError(f"load_predict: wrong prediction {pred} != {expected}")
    out["load_predict"] = summary(lt)
    log(f"[maestrale/{mode}] load_predict x{len(lt)}: median {out['load_predict']['median']:.1f} ms")

    n_extra = max(0, args.n_versions - len(versions))
    t0 = time.perf_counter()
    for i in range(len(versions), len(versions) + n_extra):
        register_one(reg, models[i % len(models)], X, MODEL_NAME, i)
    populate_s = time.perf_counter() - t0
    out["populate"] = {
        "versions_total": len(versions) + n_extra,
        "created": n_extra,
        "seconds": round(populate_s, 2),
        "per_version_ms": round(populate_s * 1000 / max(n_extra, 1), 2),
        "method": "Registry.register(...) in a loop (public API, full registration)",
    }
    log(f"[maestrale/{mode}] populated {n_extra} versions in {populate_s:.1f} s")

    flt = f"name = '{MODEL_NAME}' and tags.site = '{SEARCH_SITE}'"
    hits = len(search_all(reg, flt))  # warm-up
    st: list[float] = []
    for _ in range(args.n_search):
        dt, res = timed(lambda: search_all(reg, flt))
        st.append(dt)
        hits = len(res)
    expected_hits = sum(1 for i in range(len(versions) + n_extra) if site_tag(i) == SEARCH_SITE)
    if hits != expected_hits:
        raise AssertionError(f"search returned {hits}, expected {expected_hits}")
    out["search"] = summary(st)
    out["search_hits"] = hits
    out["search_filter"] = flt
    n_all = len(versions) + n_extra
    med = out["search"]["median"]
    log(f"[maestrale/{mode}] search ({hits} hits of {n_all}) x{len(st)}: median {med:.2f} ms")
    if mode == "direct":  # the floor of any search over the same documents (see _search_floor.py)
        db = Path(reg._meta.engine.url.database)
        out["search_floor"] = search_floors(reg._meta, db, flt, args.n_search)
        fl = out["search_floor"]
        log(
            f"[maestrale/{mode}] search floor: bare sqlite3 + orjson {fl['direct']['median']:.3f} ms; "
            f"+ bare HTTP round trip of the {fl['body_bytes']:,} bytes {fl['rest_median']:.3f} ms; "
            f"typed (rows fetched {fl['fetch']['median']:.3f} ms + the page validated by pydantic-core "
            f"{fl['hydrate']['median']:.3f} ms): direct {fl['direct_typed_median']:.3f} ms, REST (+ the "
            f"round trip) {fl['rest_typed_median']:.3f} ms"
        )
    return out


def wait_file(path: Path, timeout_s: float = 30.0) -> str:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout_s:
        if path.exists() and (text := path.read_text().strip()):
            return text
        time.sleep(0.1)
    raise TimeoutError(f"{path} not written within {timeout_s}s")


def main() -> None:
    args = side_args(__doc__ or "")
    args.workdir = args.workdir.resolve()
    args.data = args.data.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)

    import sklearn

    import maestrale
    from maestrale import Registry

    result: dict[str, Any] = {
        "tool": "maestrale",
        "version": maestrale.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "n_sites": N_SITES,
        "calls": {
            "register": "Registry.register(NAME, model, params={'alpha': ..}, metrics={'r2': ..}, "
            "input_example=X[:5], tags={'site': ..})",
            "alias": "Registry.set_alias(NAME, 'champion', version)",
            "load_predict": "Registry.load('NAME@champion').predict(X[:1])",
            "search": "Registry.search_versions(\"name = 'NAME' and tags.site = 's7'\", limit=100)"
            " (all pages)",
            "import": "import maestrale",
            "server": "MAESTRALE_HOME=<dir> maestrale server --host 127.0.0.1 --port P --workers 1",
        },
    }

    direct = args.workdir / "direct"
    direct.mkdir(parents=True, exist_ok=True)
    result["direct"] = run_mode(
        "direct",
        lambda: Registry(
            database_url=f"sqlite:///{direct / 'registry.db'}",
            storage_url=(direct / "artifacts").as_uri(),
        ),
        args,
    )

    if not args.no_rest:
        home = args.workdir / "rest-home"
        home.mkdir(parents=True, exist_ok=True)
        port = free_port()
        exe = Path(sys.executable).parent / "maestrale"
        cmd = [str(exe), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        env = {**os.environ, "MAESTRALE_HOME": str(home)}
        for k in (
            "MAESTRALE_DATABASE_URL",
            "MAESTRALE_STORAGE_URL",
            "MAESTRALE_REGISTRY_URL",
            "MAESTRALE_TOKEN",
        ):
            env.pop(k, None)
        url = f"http://127.0.0.1:{port}"
        with server(cmd, env, args.workdir / "maestrale-server.log", f"{url}/healthz") as info:
            token = wait_file(home / "admin.token")
            log(
                f"[maestrale/rest] server up on {url} in {info['startup_s']:.1f} s, quiet after "
                f"{info['settle_s']:.1f} s more; {info['processes']} processes, {info['rss_mb']:.0f} MiB RSS"
            )
            result["rest"] = run_mode("rest", lambda: Registry(url, token=token), args)
            result["rest"]["server"] = info
        result["calls"]["server_cmd"] = " ".join(cmd)
    else:
        result["rest"] = None

    result["import"] = import_time(sys.executable, "import maestrale", args.n_import)
    result["import_registry"] = import_time(sys.executable, "from maestrale import Registry", args.n_import)
    log(
        f"[maestrale] import maestrale: median {result['import']['median_s']:.3f} s; "
        f"from maestrale import Registry: {result['import_registry']['median_s']:.3f} s"
    )
    emit(result)


if __name__ == "__main__":
    main()
