"""Bounded request bodies and V2 request limits, on real servers on loopback ports.

413 for bodies over the limit, sent with a `Content-Length` and chunked (an httpx generator body), on
the REST API (a JSON route, the ingest route; the artifact upload under its own limit) and on the
model server (infer, predict), each in its app's envelope; bodies under the limit still work. The
V2 bounds (shapes, values, inputs, records, string lengths) are 400s naming the input and the limit.
Then the point of it all: each server as a separate process receives a 150 MB body and its peak
RSS grows by less than twice its limit (`bench/limits.py` prints the same figures).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from maestrale.errors import InvalidInput
from maestrale.registry.types import ColumnSchema
from maestrale.serving import create_app
from maestrale.serving.v2 import InferenceRequest, decode_infer, decode_records
from maestrale.serving.v2_limits import LIMITS
from tests.conftest import ServerHandle, start_server
from tests.integration.test_serving import NAME, REF, World, make_world, per_feature, serving

MIB = 1 << 20
WAYS = pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def post(url: str, body: bytes, chunked: bool, token: str | None = None, **headers: str) -> httpx.Response:
    """POST `body` with a Content-Length, or chunked (httpx sends a generator body chunked)."""
    headers = {"content-type": "application/json", **headers}
    if token:
        headers["authorization"] = f"Bearer {token}"
    r = httpx.post(url, content=chunks(body) if chunked else body, headers=headers, timeout=60)
    assert ("transfer-encoding" in r.request.headers) is chunked
    return r


def padded(doc: object, size: int) -> bytes:
    """`doc` as JSON followed by whitespace up to `size` bytes: still valid JSON, just large."""
    text = json.dumps(doc).encode()
    return text + b" " * max(0, size - len(text))


# -- REST API ---------------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path: Path) -> Iterator[ServerHandle]:
    handle = start_server(tmp_path / "home", max_body_mb=1, max_upload_mb=3)
    yield handle
    handle.stop()


def _batch(n: int = 1) -> dict:
    records = [
        {"record_id": f"r{i}", "entity": "p50", "issued_at": "2012-06-01T18:00:00Z",
         "target_time": "2012-06-02T10:00:00Z", "features": {"ghi": 700.0}, "prediction": 2.5}
        for i in range(n)
    ]  # fmt: skip
    return {"model": "pv", "version": 1, "records": records}


@WAYS
def test_rest_api_answers_413_in_its_envelope_and_takes_bodies_under_the_limit(api: ServerHandle, chunked):
    token = api.admin_token
    routes = [f"{api.url}/api/v1/monitoring/predictions", f"{api.url}/api/v1/models/pv/versions"]
    for url in routes:
        r = post(url, padded(_batch(), 2 * MIB), chunked, token)
        assert r.status_code == 413, (url, r.text)
        error = r.json()["error"]
        assert error["code"] == "too_large" and set(r.json()) == {"error"}
        assert "exceeds the limit of 1 MiB" in error["message"]
        assert "raise MAESTRALE_MAX_BODY_MB on the server" in error["message"]
        assert ("(2,097,152 bytes)" in error["message"]) is not chunked  # the declared size, when declared
    r = post(routes[0], padded(_batch(3), MIB - 1), chunked, token)  # just under: read and stored
    assert r.status_code == 200 and r.json()["stored"] == 3, r.text
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'status="413"' in metrics


@WAYS
def test_artifact_uploads_have_their_own_limit(api: ServerHandle, chunked):
    headers = {"content-type": "application/octet-stream"}
    r = post(f"{api.url}/api/v1/artifacts", b"\x01" * (2 * MIB), chunked, api.admin_token, **headers)
    assert r.status_code == 201, r.text  # over the JSON limit (1 MiB), under the upload limit (3 MiB)
    r = post(f"{api.url}/api/v1/artifacts", b"\x02" * (4 * MIB), chunked, api.admin_token, **headers)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large", r.text
    message = r.json()["error"]["message"]
    assert "exceeds the limit of 3 MiB" in message and "MAESTRALE_MAX_UPLOAD_MB" in message


# -- model server -----------------------------------------------------------------------------------
@pytest.fixture
def small(tmp_path: Path) -> Iterator[tuple[World, str]]:
    """The model server of `test_serving` with MAESTRALE_SERVE_MAX_BODY_MB=1, on a loopback port."""
    world = make_world(tmp_path)
    settings = world.settings.model_copy(update={"serve_max_body_mb": 1})
    with serving(create_app(settings, [REF], log_predictions=False)) as url:
        yield world, url


@WAYS
def test_model_server_answers_413_on_infer_and_predict(small: tuple[World, str], chunked):
    world, url = small
    X = world.X.iloc[:24]
    bodies = {
        f"{url}/v2/models/{NAME}/infer": per_feature(X),
        f"{url}/models/{NAME}/predict": {"records": X.to_dict("records")},
    }
    for route, doc in bodies.items():
        r = post(route, padded(doc, 2 * MIB), chunked)
        assert r.status_code == 413, (route, r.text)
        assert set(r.json()) == {"error"}
        message = r.json()["error"]
        assert "exceeds the limit of 1 MiB" in message and "MAESTRALE_SERVE_MAX_BODY_MB" in message
        r = post(route, padded(doc, MIB - 1), chunked)  # just under the limit: served
        assert r.status_code == 200, (route, r.text)
    assert 'status="413"' in httpx.get(f"{url}/metrics").text


# -- V2 request limits ------------------------------------------------------------------------------
COLUMNS = [ColumnSchema(name="ghi", dtype="float64"), ColumnSchema(name="temp_air", dtype="float64")]


def _v2(*inputs: dict) -> InferenceRequest:
    return InferenceRequest.model_validate({"inputs": list(inputs)})


def _ghi(shape: list[int], data: list, **extra) -> dict:
    return {"name": "ghi", "shape": shape, "datatype": "FP64", "data": data, **extra}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (_v2(_ghi([-1], [])), "input 'ghi': shape [-1] must be a list of sizes >= 0"),
        (_v2(_ghi([3], [1.0, 2.0])), "input 'ghi': shape [3] needs 3 values but data has 2"),
        (_v2(_ghi([2, 2], [1.0, 2.0, 3.0])), "input 'ghi': shape [2, 2] needs 4 values but data has 3"),
        (_v2(_ghi([3_000_000], [])), "3,000,000 values; this server takes at most 2,000,000 per request"),
        (
            _v2(*[{**_ghi([1], [1.0]), "name": f"f{i}"} for i in range(LIMITS.max_inputs + 1)]),
            "2,049 inputs in one request: this server takes at most 2,048",
        ),
        (
            _v2(_ghi([1], [1.0]), {"name": "temp_air", "shape": [1], "datatype": "FP64", "data": [20.0]},
                {"name": "entity", "shape": [1], "datatype": "BYTES", "data": ["p" * 2000]}),
            "input 'entity' holds a string of 2,000 characters: BYTES elements are at most 1,024",
        ),
    ],
    ids=["negative shape", "shape vs data", "nested shape vs data", "too many values", "too many inputs",
         "long string"],
)  # fmt: skip
def test_v2_requests_beyond_the_limits_are_refused(request_: InferenceRequest, message: str):
    with pytest.raises(InvalidInput) as caught:
        decode_infer(request_, COLUMNS)
    assert message in caught.value.message


def test_records_beyond_the_limits_are_refused():
    row = {"ghi": 700.0, "temp_air": 20.0}
    with pytest.raises(
        InvalidInput, match="100,001 records in one request: this server takes at most 100,000"
    ):
        decode_records([row] * (LIMITS.max_records + 1), COLUMNS)
    with pytest.raises(InvalidInput, match="'entity' holds a string of 5,000 characters"):
        decode_records([{**row, "entity": "x" * 5000}], COLUMNS)
    decoded = decode_records([row] * 10, COLUMNS)  # within the limits: decoded as before
    np.testing.assert_array_equal(decoded.frame["ghi"], np.full(10, 700.0))


def test_v2_limits_are_400s_over_http(small: tuple[World, str]):
    _, url = small
    r = httpx.post(f"{url}/v2/models/{NAME}/infer", json={"inputs": [_ghi([5_000_000], [])]})
    assert r.status_code == 400 and "at most 2,000,000 per request" in r.json()["error"], r.text
    r = httpx.post(f"{url}/v2/models/{NAME}/infer", json={"inputs": [_ghi([-4], [])]})
    assert r.status_code == 400 and "shape [-4] must be a list of sizes >= 0" in r.json()["error"], r.text


# -- memory, with each server a process of its own ----------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("kind", ["api", "serve"])
def test_a_150_mb_body_costs_a_server_less_than_twice_its_limit(tmp_path: Path, kind: str):
    from bench.limits import DEFAULTS_MB, measure, prepare

    limit = DEFAULTS_MB[kind]  # the defaults: 16 MiB (REST API), 32 MiB (model server)
    # one `maestrale server` / `maestrale serve` process; its peak RSS is reset before each request
    results = measure(kind, prepare(tmp_path), tmp_path, limit, 150_000_000, ways=[False, True])
    for result in results:
        print(f"\n{result}")
        assert result.status == 413, result.answer
        assert result.peak_growth_mb < 2 * limit, result
    assert [r.sent for r in results] == ["content-length", "chunked"]
