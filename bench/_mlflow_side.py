"""MLflow 3.x half of ``bench/registry_vs_mlflow.py`` -- runs inside ``bench/.venv-mlflow``.

Prints human-readable progress on stderr and one JSON dict on the last stdout line.

Method (each step done twice: "direct" = Python API on a local SQLite backend store +
local file artifacts; "rest" = the same calls against ``mlflow server`` on loopback with
a SQLite backend and proxied artifacts (``--artifacts-destination``, ``--workers 1``)):

* register -- MLflow's fastest register path, per model::

      with mlflow.start_run():
          mlflow.log_params({"alpha": ...}); mlflow.log_metrics({"r2": ...})
          sig = mlflow.models.infer_signature(X[:5], model.predict(X[:5]))
          mlflow.sklearn.log_model(model, name="model", registered_model_name=NAME,
                                   signature=sig, pip_requirements=["scikit-learn"],
                                   tags={"site": "sN"})

  ``name=`` replaces the deprecated ``artifact_path=`` in MLflow 3; ``tags=`` is passed on
  by ``Model.log`` to the model-version registration, so no extra tag call is needed.
  Explicit ``pip_requirements`` skips requirement inference (which re-loads the model in a
  subprocess) and a precomputed signature skips input-example serving validation.  One
  untimed warm-up registration (another model name) first; then ``--n-register`` timed.
  For context (direct only, ``--n-default`` models): the *default* path (``input_example``
  and no ``pip_requirements``, as in MLflow's docs) and the fast path plus ``input_example``.
* load + predict -- ``mlflow.sklearn.load_model("models:/NAME@champion").predict(X[:1])``
  (MLflow's docs recommend the flavor's own ``load_model`` when the flavor is supported),
  after ``MlflowClient().set_registered_model_alias``; ``mlflow.pyfunc.load_model`` is
  measured as well for context.
* search -- the model is topped up to ``--n-versions`` versions with
  ``MlflowClient.create_model_version(name, source=<first version's models:/ source>,
  run_id=..., model_id=..., tags={"site": "s<i%10>"})`` (metadata only, no re-upload: a cheap stand-in
  for 1000 log_model calls), then ``search_model_versions("name = 'NAME' and
  tags.site = 's7'")`` (MLflow filter grammar: ``name``, ``tags.<key>``, ``=``, ``and``).
  One untimed warm-up query, then ``--n-search`` timed; the hit count is checked.
* import -- see ``_bench_common.import_time``.
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

# mlflow itself is imported lazily (see _mlflow), after these are set
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

FAST_CALL = (
    "with mlflow.start_run(): mlflow.log_params(..); mlflow.log_metrics(..); "
    "mlflow.sklearn.log_model(model, name='model', registered_model_name=NAME, "
    "signature=infer_signature(X[:5], model.predict(X[:5])), pip_requirements=['scikit-learn'], "
    "tags={'site': ..})"
)
DEFAULT_CALL = (
    "with mlflow.start_run(): mlflow.log_params(..); mlflow.log_metrics(..); "
    "mlflow.sklearn.log_model(model, name='model', registered_model_name=NAME, input_example=X[:5], "
    "tags={'site': ..})"
)


def _mlflow() -> Any:
    import mlflow
    import mlflow.sklearn

    return mlflow


def register_one(model: Any, X: np.ndarray, name: str, i: int, variant: str) -> int:
    """One registration; returns the new version number."""
    mlflow = _mlflow()
    from mlflow.models import infer_signature

    with mlflow.start_run():
        mlflow.log_params({"alpha": model.alpha})
        mlflow.log_metrics({"r2": 0.9})
        kwargs: dict[str, Any] = {"tags": {"site": site_tag(i)}}
        if variant == "fast":
            kwargs["signature"] = infer_signature(X[:5], model.predict(X[:5]))
            kwargs["pip_requirements"] = ["scikit-learn"]
        elif variant == "fast_input_example":
            kwargs["input_example"] = X[:5]
            kwargs["pip_requirements"] = ["scikit-learn"]
        elif variant == "default":
            kwargs["input_example"] = X[:5]
        else:
            raise ValueError(variant)
        info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name, **kwargs)
    return int(info.registered_model_version)


def run_mode(mode: str, tracking_uri: str, artifact_location: str | None, args: Any) -> dict[str, Any]:
    mlflow = _mlflow()
    from mlflow import MlflowClient

    X, y = load_data(args.data)
    models = fit_models(X, y, args.n_register)
    out: dict[str, Any] = {"tracking_uri": tracking_uri}

    t_open, _ = timed(lambda: (mlflow.set_tracking_uri(tracking_uri), mlflow.set_registry_uri(tracking_uri)))
    exp_id = mlflow.create_experiment(f"bench-{mode}", artifact_location=artifact_location)
    mlflow.set_experiment(experiment_id=exp_id)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)

    # cold: first registration in this process / store (lazy imports, registered-model creation)
    t_cold, _ = timed(lambda: register_one(models[0], X, f"{MODEL_NAME}-warmup", 0, "fast"))
    out["register_cold_ms"] = round(t_cold * 1000, 1)
    log(f"[mlflow/{mode}] cold first register {t_cold * 1000:.0f} ms")

    times: list[float] = []
    versions: list[int] = []
    for i, m in enumerate(models):
        dt, v = timed(lambda m=m, i=i: register_one(m, X, MODEL_NAME, i, "fast"))
        times.append(dt)
        versions.append(v)
    out["register"] = summary(times)
    log(f"[mlflow/{mode}] register (fast path) x{len(times)}: median {out['register']['median']:.1f} ms")

    if mode == "direct" and args.n_default > 0:
        for variant in ("default", "fast_input_example"):
            vt = [
                timed(lambda m=m, i=i, v=variant: register_one(m, X, f"{MODEL_NAME}-{v}", i, v))[0]
                for i, m in enumerate(models[: args.n_default])
            ]
            out[f"register_{variant}"] = summary(vt)
            med = out[f"register_{variant}"]["median"]
            log(f"[mlflow/{mode}] register ({variant}) x{len(vt)}: median {med:.1f} ms")

    champion = versions[-1]
    t_alias, _ = timed(lambda: client.set_registered_model_alias(MODEL_NAME, ALIAS, str(champion)))
    out["set_alias_ms"] = round(t_alias * 1000, 2)
    uri = f"models:/{MODEL_NAME}@{ALIAS}"
    expected = models[-1].predict(X[:1])

    def load_predict(loader: Any) -> np.ndarray:
        return np.asarray(loader(uri).predict(X[:1]))

    for key, loader in (
        ("load_predict", mlflow.sklearn.load_model),
        ("load_predict_pyfunc", mlflow.pyfunc.load_model),
    ):
        load_predict(loader)  # warm-up (imports)
        lt: list[float] = []
        for _ in range(args.n_load):
            dt, pred = timed(lambda loader=loader: load_predict(loader))
            lt.append(dt)
        if not np.allclose(pred, expected):
            raise AssertionError(f"{key}: wrong prediction {pred} != {expected}")
        out[key] = summary(lt)
        log(f"[mlflow/{mode}] {key} x{len(lt)}: median {out[key]['median']:.1f} ms")

    first = client.get_model_version(MODEL_NAME, str(versions[0]))
    # the REST server insists that a models:/<model_id> source comes with its model_id
    model_id = first.model_id or first.source.removeprefix("models:/")
    n_extra = max(0, args.n_versions - len(versions))
    t0 = time.perf_counter()
    for i in range(len(versions), len(versions) + n_extra):
        client.create_model_version(
            MODEL_NAME,
            source=first.source,
            run_id=first.run_id,
            tags={"site": site_tag(i)},
            model_id=model_id,
        )
    populate_s = time.perf_counter() - t0
    out["populate"] = {
        "versions_total": len(versions) + n_extra,
        "created": n_extra,
        "seconds": round(populate_s, 2),
        "per_version_ms": round(populate_s * 1000 / max(n_extra, 1), 2),
        "method": (
            "MlflowClient.create_model_version(name, source=<version 1 source>, run_id=, model_id=, "
            "tags={'site': ..})"
        ),
    }
    log(f"[mlflow/{mode}] populated {n_extra} versions in {populate_s:.1f} s")

    flt = f"name = '{MODEL_NAME}' and tags.site = '{SEARCH_SITE}'"
    hits = len(client.search_model_versions(flt))  # warm-up
    st: list[float] = []
    for _ in range(args.n_search):
        dt, res = timed(lambda: client.search_model_versions(flt))
        st.append(dt)
        hits = len(res)
    expected_hits = sum(1 for i in range(len(versions) + n_extra) if site_tag(i) == SEARCH_SITE)
    if hits != expected_hits:
        raise AssertionError(f"search returned {hits}, expected {expected_hits}")
    out["search"] = summary(st)
    out["search_hits"] = hits
    out["search_filter"] = flt
    n_all = len(versions) + n_extra
    log(
        f"[mlflow/{mode}] search ({hits} hits of {n_all}) x{len(st)}: median {out['search']['median']:.2f} ms"
    )
    out["open_ms"] = round(t_open * 1000, 2)
    return out


def main() -> None:
    args = side_args(__doc__ or "")
    args.workdir = args.workdir.resolve()
    args.data = args.data.resolve()
    args.workdir.mkdir(parents=True, exist_ok=True)
    mlflow = _mlflow()
    import sklearn

    result: dict[str, Any] = {
        "tool": "mlflow",
        "version": mlflow.__version__,
        "sklearn": sklearn.__version__,
        "python": platform.python_version(),
        "n_sites": N_SITES,
        "calls": {
            "register": FAST_CALL,
            "register_default": DEFAULT_CALL,
            "alias": "MlflowClient().set_registered_model_alias(NAME, 'champion', version)",
            "load_predict": "mlflow.sklearn.load_model('models:/NAME@champion').predict(X[:1])",
            "load_predict_pyfunc": "mlflow.pyfunc.load_model('models:/NAME@champion').predict(X[:1])",
            "search": "MlflowClient().search_model_versions(\"name = 'NAME' and tags.site = 's7'\")",
            "import": "import mlflow",
            "server": "mlflow server --backend-store-uri sqlite:///... --artifacts-destination ... "
            "--host 127.0.0.1 --port P --workers 1",
        },
    }

    direct = args.workdir / "direct"
    direct.mkdir(parents=True, exist_ok=True)
    result["direct"] = run_mode(
        "direct", f"sqlite:///{direct / 'mlflow.db'}", (direct / "artifacts").resolve().as_uri(), args
    )

    if not args.no_rest:
        rest = args.workdir / "rest"
        rest.mkdir(parents=True, exist_ok=True)
        port = free_port()
        exe = Path(sys.executable).parent / "mlflow"
        cmd = [
            str(exe),
            "server",
            "--backend-store-uri",
            f"sqlite:///{rest / 'mlflow.db'}",
            "--artifacts-destination",
            str(rest / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ]
        url = f"http://127.0.0.1:{port}"
        with server(cmd, dict(os.environ), rest / "server.log", f"{url}/health") as info:
            log(
                f"[mlflow/rest] server up on {url} in {info['startup_s']:.1f} s, quiet after "
                f"{info['settle_s']:.1f} s more; {info['processes']} processes, {info['rss_mb']:.0f} MiB RSS"
            )
            result["rest"] = run_mode("rest", url, None, args)
            result["rest"]["server"] = info
        result["calls"]["server_cmd"] = " ".join(cmd)
    else:
        result["rest"] = None

    result["import"] = import_time(sys.executable, "import mlflow", args.n_import)
    log(f"[mlflow] import mlflow: median {result['import']['median_s']:.3f} s")
    emit(result)


if __name__ == "__main__":
    main()
