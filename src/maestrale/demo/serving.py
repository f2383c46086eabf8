"""The demo's model server: `pv-nrel-50@champion` behind the V2 protocol, hot-reloaded on promotion.

The replay's forecasting service asks this server for each day-ahead forecast over HTTP, exactly
as a microservice would call `maestrale serve` on Kubernetes. After a `model.promoted` event the
server loads the new champion in the background and swaps it; the replay waits until the server
answers with the new version, so every forecast after a promotion is the new model's.

>>> with DemoServer(settings, "pv-nrel-50@champion") as server:  # doctest: +SKIP
...     predictions, version = server.infer("pv-nrel-50", weather.reset_index())  # time + weather
"""

from __future__ import annotations

import socket
import threading
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.config import Settings


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def v2_request(frame: pd.DataFrame) -> dict[str, Any]:
    """A V2 inference request with one input per column (what any V2 client sends).

    Times (the model's `time` input) go as BYTES of ISO 8601 strings with their offset, numbers as FP64.

    >>> import pandas as pd
    >>> row = pd.DataFrame({"time": pd.to_datetime(["2012-06-01T18:00Z"]), "ghi": [710.0]})
    >>> [(i["name"], i["datatype"], i["data"]) for i in v2_request(row)["inputs"]]
    [('time', 'BYTES', ['2012-06-01T18:00:00+00:00']), ('ghi', 'FP64', [710.0])]
    """
    n = len(frame)
    inputs = []
    for c in frame.columns:
        if frame[c].dtype.kind == "M":
            data, datatype = [t.isoformat() for t in frame[c]], "BYTES"
        else:
            data, datatype = frame[c].astype("float64").tolist(), "FP64"
        inputs.append({"name": str(c), "shape": [n], "datatype": datatype, "data": data})
    return {"inputs": inputs}


class DemoServer:
    """`maestrale serve` in a background thread of this process (uvicorn, lifespan on)."""

    def __init__(self, settings: Settings, ref: str) -> None:
        import httpx
        import uvicorn

        from maestrale.serving.app import create_app

        # the replay logs its forecasts itself, with the simulated issue time; the server's own
        # logger would stamp wall-clock time
        self.app = create_app(settings, [ref], log_predictions=False)
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="demo-model-server", daemon=True)
        self.client = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> DemoServer:
        """Start and wait until `/v2/health/ready` answers 200."""
        import httpx

        self.thread.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if self.client.get("/v2/health/ready").status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the model server did not become ready on {self.url}")

    def infer(self, name: str, frame: pd.DataFrame) -> tuple[list[float], int]:
        """Predictions for `frame` (the model's inputs: the time column and the weather columns) and the
        version that served them."""
        response = self.client.post(f"/v2/models/{name}/infer", json=v2_request(frame))
        if response.status_code != 200:
            raise RuntimeError(f"the model server answered {response.status_code}: {response.text}")
        body = response.json()
        return list(body["outputs"][0]["data"]), int(body["model_version"])

    def served_version(self, name: str) -> int:
        """The version the server currently answers with (V2 model metadata)."""
        return int(self.client.get(f"/v2/models/{name}").json()["versions"][0])

    def wait_for_version(self, name: str, version: int, timeout: float = 30.0) -> float:
        """Seconds until the server answers with `version` (hot reload after a promotion)."""
        t0 = time.perf_counter()
        while self.served_version(name) != version:
            if time.perf_counter() - t0 > timeout:
                raise TimeoutError(
                    f"the model server still serves another version of {name} after {timeout} s"
                )
            time.sleep(0.01)
        return time.perf_counter() - t0

    def stop(self) -> None:
        """Graceful shutdown (the lifespan stops the reload watcher)."""
        self.server.should_exit = True
        self.thread.join(15)
        self.client.close()

    def __enter__(self) -> DemoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
