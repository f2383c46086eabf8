"""The bare FastAPI baseline of ``bench/serving.py``: V2 JSON in, ``model.predict``, V2 JSON out.

Runs in the project venv (``uvicorn``, 1 worker, no access log)::

    python bench/_serving_fastapi.py NAME@ALIAS --port 8000

The model comes from the registry of the ``MAESTRALE_*`` environment (``Registry().load_version``,
the same bytes ``maestrale serve`` loads). ``POST /v2/models/{name}/infer`` reads per-feature inputs
(``{"inputs": [{"name": feature, "data": [...]}, ...]}``), builds a DataFrame in the input schema's
column order and answers one FP64 ``predict`` output: no validation beyond what the JSON and pandas
do, no metrics, no logging, no reload. The least a server can do with the same request.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from maestrale import Registry


def create_app(ref: str) -> FastAPI:
    reg = Registry()
    loaded = reg.load_version(ref)
    schema = reg.get_version(f"{loaded.name}:{loaded.version}").input_schema or []
    columns = [c.name for c in schema]
    dtypes = {c.name: c.dtype for c in schema}
    model, version = loaded.model, str(loaded.version)
    app = FastAPI()

    @app.get("/v2/health/ready")
    def ready() -> dict[str, bool]:
        return {"ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request) -> JSONResponse:
        body = await request.json()
        data = {i["name"]: i["data"] for i in body["inputs"]}
        frame = pd.DataFrame({c: np.asarray(data[c], dtype=dtypes[c]) for c in columns}, columns=columns)
        pred = np.asarray(model.predict(frame), dtype=np.float64).reshape(-1)
        out = {"name": "predict", "shape": [len(pred)], "datatype": "FP64", "data": pred.tolist()}
        return JSONResponse({"model_name": name, "model_version": version, "outputs": [out]})

    return app


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("ref")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    args = p.parse_args()
    uvicorn.run(create_app(args.ref), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
