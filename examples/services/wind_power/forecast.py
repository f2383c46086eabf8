"""Forecast job: send a farm's weather forecast to the model server, get its power per hour back.

    python forecast.py --farm appennino --day 2024-07-01 --server http://127.0.0.1:8002

The request is a V2 inference request: one FP64 input per model feature, one value per hour, plus
`target_time` (the hour each row forecasts) and `parameters.entity` (the farm). The server logs each
prediction with those inputs, its entity and target time, so this job has nothing to log itself.
The weather forecast comes from `farm.nwp_forecast` (SYNTHETIC; a real job reads its NWP provider).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pandas as pd
from farm import Farm, get_farm, nwp_forecast
from turbine import FEATURES


def infer_request(farm: Farm, weather: pd.DataFrame) -> dict[str, Any]:
    """The V2 body for `weather` (the model's FEATURES, hourly, UTC index)."""
    n = len(weather)
    inputs = [
        {"name": col, "shape": [n], "datatype": "FP64", "data": weather[col].astype(float).tolist()}
        for col in FEATURES
    ]
    times = weather.index.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ").tolist()
    inputs.append({"name": "target_time", "shape": [n], "datatype": "BYTES", "data": times})
    return {"parameters": {"entity": farm.name}, "inputs": inputs}


def forecast(client: httpx.Client, farm_name: str, day: date) -> dict[str, Any]:
    """Ask the server (`client.base_url`) for `farm_name`'s power on `day` (UTC); return the forecast.

    `client` is any httpx-style client: `httpx.Client(base_url=...)`, or FastAPI's `TestClient`.
    """
    farm = get_farm(farm_name)
    weather = nwp_forecast(farm, day)
    response = client.post(f"/v2/models/{farm.model_name}/infer", json=infer_request(farm, weather))
    if response.status_code != 200:
        raise RuntimeError(f"{farm.model_name}: the server answered {response.status_code}: {response.text}")
    body = response.json()
    # the delivered schedule stays within the farm's capacity; the logged value is the model's own
    power = np.clip(np.asarray(body["outputs"][0]["data"], dtype=float), 0.0, farm.capacity_mw)
    return {
        "farm": farm.name,
        "model": body["model_name"],
        "version": int(body["model_version"]),
        "hours": [
            {"time": t.isoformat(), "power_mw": round(float(p), 3)}
            for t, p in zip(weather.index, power, strict=True)
        ],
    }


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="appennino")
    parser.add_argument("--day", type=date.fromisoformat, default=None, help="UTC day (default: tomorrow)")
    parser.add_argument("--server", default="http://127.0.0.1:8002")
    args = parser.parse_args(argv)
    day = args.day or (datetime.now(UTC) + timedelta(days=1)).date()
    with httpx.Client(base_url=args.server, timeout=30.0) as client:
        try:
            result = forecast(client, args.farm, day)
        except (httpx.HTTPError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
