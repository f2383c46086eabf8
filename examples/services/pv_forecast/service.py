"""PV day-ahead forecast service: weather forecast in, kW per hour out, per plant; every forecast logged.

    uvicorn --factory service:create_app --port 8001       # or: python service.py serve --port 8001
    curl -X POST localhost:8001/plants/piemonte/forecast -H 'content-type: application/json' \\
         -d '{"day": "2023-10-02", "issued_at": "2023-10-01T09:00:00Z"}'
    python service.py forecast --plant piemonte --day 2023-10-02     # the same, once, printed as JSON

For each request it loads `pv-{plant}@champion` from the registry (again only when the alias has moved,
so a promotion is picked up on the next forecast) and gives it the weather forecast as it is: the target
times (the index) and the weather columns. The model is the spec's `feature_set` and the estimator in one
pipeline (`maestrale.features`), so it builds its features itself, with the very code that built them in
training. The service clips to [0, AC capacity] and logs the forecast with those inputs
(`maestrale.log_predictions`) for the monitor. Settings come from the `MAESTRALE_*` variables.

Days are UTC days. Without a `weather` body the service asks the plant's weather feed (`plant.py`: PVGIS
weather with a simulated forecast error; PVGIS © European Union, 2001-2024).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException
from plant import PLANTS, Plant, get_plant, weather_forecast
from pydantic import BaseModel, Field

from maestrale import LoadedModel, NotFound, Registry, Settings, log_predictions

ALIAS = "champion"


class WeatherHour(BaseModel):
    """One hour of a weather forecast: `time` with a time zone, irradiance (W/m²), air temperature (°C)."""

    time: datetime
    ghi: float = Field(ge=0)
    temp_air: float


class ForecastRequest(BaseModel):
    """`POST /plants/{plant}/forecast`: a day (default tomorrow, UTC), or the weather to forecast from."""

    day: date | None = None
    issued_at: datetime | None = Field(None, description="When the forecast is made (default: now).")
    weather: list[WeatherHour] | None = Field(None, description="Own weather forecast; default: the feed.")


class ForecastHour(BaseModel):
    """The forecast power of one hour."""

    time: datetime
    power_kw: float


class Forecast(BaseModel):
    """What the service answers, and what the monitor was told (`logged` records)."""

    plant: str
    model: str
    version: int
    issued_at: datetime
    hours: list[ForecastHour]
    logged: int


class Forecaster:
    """Forecasts with each plant's champion model, reloading it when the alias moves, and logs every forecast.

    >>> Forecaster(Registry()).forecast("piemonte", date(2023, 10, 2)).version  # doctest: +SKIP
    1
    """

    def __init__(self, registry: Registry | None = None, *, log: bool = True) -> None:
        self.registry = registry or Registry()
        self.log = log
        self._models: dict[str, LoadedModel] = {}
        self._lock = threading.Lock()

    def model(self, plant: Plant) -> LoadedModel:
        """The champion of `plant`: resolved on every call (metadata only), downloaded when it changed."""
        meta = self.registry.get_version(f"{plant.model_name}@{ALIAS}")
        with self._lock:
            cached = self._models.get(plant.name)
            if cached is None or cached.version != meta.version:
                # load the exact version resolved above: the alias may move again in between
                cached = self.registry.load_version(f"{meta.name}:{meta.version}")
                self._models[plant.name] = cached
            return cached

    def forecast(
        self,
        plant_name: str,
        day: date | None = None,
        *,
        weather: pd.DataFrame | None = None,
        issued_at: datetime | None = None,
    ) -> Forecast:
        """Forecast `day` (default tomorrow, UTC) at `plant_name`, from `weather` or the plant's feed."""
        plant = get_plant(plant_name)
        issued_at = issued_at or datetime.now(UTC)
        if weather is None:
            weather = weather_forecast(plant, day or (issued_at + timedelta(days=1)).date())
        loaded = self.model(plant)
        X = weather  # raw inputs: the model's feature step builds pv_features from the time and weather
        power = np.clip(loaded.model.predict(X), 0.0, plant.capacity_kw)
        power[X["ghi"].to_numpy() <= 0.0] = 0.0  # no sun, no power: trees leave a few kW at night
        logged = 0
        if self.log:
            # the inputs go with the forecast: the monitor needs them for drift and to score challengers
            logged = int(
                log_predictions(
                    X.assign(prediction=power),
                    model=loaded.name,
                    version=loaded.version,
                    entity=plant.name,
                    issued_at=issued_at,
                )
            )
        return Forecast(
            plant=plant.name,
            model=loaded.name,
            version=loaded.version,
            issued_at=issued_at,
            logged=logged,
            hours=[
                ForecastHour(time=t, power_kw=round(float(p), 3)) for t, p in zip(X.index, power, strict=True)
            ],
        )


def weather_frame(hours: list[WeatherHour]) -> pd.DataFrame:
    """A request's weather as the model takes it (UTC index); ValueError if a time has no zone."""
    index = pd.DatetimeIndex([h.time for h in hours], name="time")
    if index.tz is None:
        raise ValueError("weather times need a time zone, e.g. 2023-10-02T12:00:00Z")
    return pd.DataFrame(
        {"ghi": [h.ghi for h in hours], "temp_air": [h.temp_air for h in hours]},
        index=index.tz_convert("UTC"),
    )


def create_app(forecaster: Forecaster | None = None) -> FastAPI:
    """The HTTP service around a `Forecaster` (built from the `MAESTRALE_*` settings when not given)."""
    app = FastAPI(title="PV day-ahead forecasts", version="1.0")
    state: dict[str, Forecaster] = {}

    def get_forecaster() -> Forecaster:
        if "f" not in state:  # the registry is opened on first use, not at import
            state["f"] = forecaster or Forecaster()
        return state["f"]

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        """Liveness, and the plants this service forecasts."""
        return {"ok": True, "plants": sorted(PLANTS)}

    @app.post("/plants/{plant}/forecast")
    def forecast(plant: str, body: ForecastRequest | None = None) -> Forecast:
        """Forecast one plant; 404 for an unknown plant, 503 while it has no champion model."""
        body = body or ForecastRequest()
        if plant not in PLANTS:
            raise HTTPException(404, f"unknown plant {plant!r}; known: {', '.join(sorted(PLANTS))}")
        try:
            weather = weather_frame(body.weather) if body.weather else None
            return get_forecaster().forecast(plant, body.day, weather=weather, issued_at=body.issued_at)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        except NotFound as exc:
            raise HTTPException(
                503,
                f"{exc}: train and promote a model first, e.g. `maestrale train train.yaml --local` "
                f"then `maestrale models alias pv-{plant} {ALIAS} 1`",
            ) from None

    return app


def main(argv: list[str] | None = None) -> int:
    """`python service.py serve|forecast …` (see the module docstring)."""
    parser = argparse.ArgumentParser(description="PV day-ahead forecast service")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8001)
    once = sub.add_parser("forecast", help="forecast one plant once and print the JSON")
    once.add_argument("--plant", default="piemonte")
    once.add_argument("--day", type=date.fromisoformat, default=None, help="UTC day (default: tomorrow)")
    once.add_argument("--issued-at", type=datetime.fromisoformat, default=None, help="default: now")
    once.add_argument("--no-log", action="store_true", help="do not log the forecast for the monitor")
    args = parser.parse_args(argv)

    if args.command == "serve":
        import uvicorn

        uvicorn.run(create_app(), host=args.host, port=args.port)
        return 0
    if not args.no_log and Settings().broker_url.startswith("memory"):
        print(
            "note: MAESTRALE_BROKER_URL is memory://, so the logged forecast reaches no monitor outside this "
            "process; set it to amqp://… in production",
            file=sys.stderr,
        )
    try:
        result = Forecaster(log=not args.no_log).forecast(args.plant, args.day, issued_at=args.issued_at)
    except NotFound as exc:
        print(f"error: {exc}; train and promote pv-{args.plant} first (see README.md)", file=sys.stderr)
        return 1
    print(json.dumps(result.model_dump(mode="json"), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
