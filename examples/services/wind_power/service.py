"""The wind farms' model server: Maestrale's V2 server for every farm's champion (`MAESTRALE_*` settings).

    python service.py --port 8002                       # or, with no code at all:
    maestrale serve wind-appennino@champion --port 8002

Why no service code of our own: the model's inputs are exactly what the weather feed gives (hub-height
wind speed, direction, air density), so there is nothing to compute between the request and
`model.predict`. The generic server gives the team the Open Inference Protocol (V2,
`POST /v2/models/wind-appennino/infer`, also plain JSON at `/models/wind-appennino/predict`), a reload
when `champion` moves, Prometheus metrics at `/metrics`, and the logging of every prediction with its
inputs for the monitor (`entity` from `parameters.entity`, target times from a `target_time` input).
This module only builds that server for the farms of `farm.FARMS`, so a test or an ASGI host can run it
(`uvicorn --factory service:create_app`); in production the Helm chart runs `maestrale serve`.

The models are plain scikit-learn objects (see `turbine.py`): the server loads them without this
example's code and without `trusted_types`.
"""

from __future__ import annotations

import argparse

from farm import FARMS
from fastapi import FastAPI

from maestrale.serving import create_app as create_model_server

ALIAS = "champion"


def refs() -> list[str]:
    """What the server serves: `wind-{farm}@champion` for every farm."""
    return [f"{farm.model_name}@{ALIAS}" for farm in FARMS.values()]


def create_app(reload_poll_s: float | None = 30.0) -> FastAPI:
    """The V2 model server for every farm (settings from `MAESTRALE_*`); it loads the models now."""
    return create_model_server(None, refs(), reload_poll_s=reload_poll_s)


def main(argv: list[str] | None = None) -> None:
    """`python service.py [--host H] [--port P]`."""
    parser = argparse.ArgumentParser(description="Wind power model server (V2) for every farm")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8002)
    args = parser.parse_args(argv)
    import uvicorn

    uvicorn.run(create_app(), host=args.host, port=args.port)


if __name__ == "__main__":
    main()
