"""Schemathesis over the model server's OpenAPI (auth on), with an admin token, a read token and none:
no answer is a 5xx, and neither the read token nor an anonymous caller gets a prediction logged.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn
from sklearn.linear_model import Ridge

from tests.fuzzing import failures_excerpt, run_schemathesis, write_config
from tests.services import free_port

pytestmark = [pytest.mark.slow]
MODEL = "pv-serve-fuzz"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A model server with auth on over a registry on SQLite, and its tokens."""
    from maestrale import Registry
    from maestrale.config import load_settings
    from maestrale.serving import create_app
    from maestrale.tokens import create_token

    tmp = tmp_path_factory.mktemp("serve-fuzz")
    settings = load_settings(
        home=tmp / "home", database_url=f"sqlite:///{tmp}/registry.db", storage_url=f"file://{tmp}/artifacts",
        bus_namespace=f"fuzz-{uuid.uuid4().hex[:8]}",
    )  # fmt: skip
    reg = Registry(settings=settings)
    rng = np.random.default_rng(5)
    X = pd.DataFrame(rng.normal(size=(60, 3)), columns=["ghi", "temp_air", "hour_sin"])
    mv = reg.register(MODEL, Ridge().fit(X, X.sum(axis=1)), input_example=X.head())
    reg.set_alias(MODEL, "champion", mv.version)
    tokens = {
        scope: create_token(settings.database_url, f"fuzz-{scope}", scope) for scope in ("read", "admin")
    }
    app = create_app(settings, [f"{MODEL}@champion"], auth=True, reload_poll_s=None, log_interval_s=0.1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    config = write_config(
        tmp / "schemathesis.toml",
        {"names": [MODEL], "versions": [str(mv.version)]},
        {"path.name": "names", "path.version": "versions"},
    )
    try:
        yield {"url": url, "app": app, "tokens": tokens, "config": config}
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.mark.parametrize("who", ["none", "read", "admin"])
def test_model_server_answers_no_5xx_and_logs_only_for_a_predict_scope(
    served: dict[str, Any], who: str
) -> None:
    logger = served["app"].state.logger
    before = logger.logged + logger.buffered
    run = run_schemathesis(
        f"{served['url']}/openapi.json", served["tokens"].get(who), served["config"], label=f"serve {who}",
        max_examples=30,
    )  # fmt: skip
    print(run.summary())
    assert run.cases > 0, f"schemathesis did not run:\n{run.output[-3000:]}"
    assert run.server_errors == 0, f"{run.summary()}\n{failures_excerpt(run)}"
    time.sleep(0.3)
    logged = logger.logged + logger.buffered - before
    if who == "admin":  # admin ⊃ predict: the fuzzer's valid requests reached the model and were logged
        assert logged > 0, "no generated request reached the model: the fuzz only scratched the surface"
    else:
        assert logged == 0, f"a {who} caller got {logged} predictions logged"
