"""NVIDIA's tritonclient, with its defaults, against `maestrale serve --grpc-port` (a real process).

tritonclient.http sends binary tensors (the binary tensor data extension) and asks for a binary
output; tritonclient.grpc sends `raw_input_contents`. Both must give the JSON path's answer, see the
metadata, see a hot reload, and be refused without a token. Hostile binary bodies are 400s naming
the input; the prediction log and the token's name apply to binary REST and gRPC alike (in process).
"""

from __future__ import annotations

import json
import os
import secrets
import struct
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest

from maestrale.tokens import create_token
from tests.integration.test_serving import NAME, REF, World, make_world, per_feature, serving
from tests.integration.test_serving_auth import Audited, _env, bearer, logged
from tests.services import free_port

tritonhttp = pytest.importorskip("tritonclient.http")
tritongrpc = pytest.importorskip("tritonclient.grpc")
from tritonclient.utils import InferenceServerException  # noqa: E402

INFER = f"/v2/models/{NAME}/infer"


@dataclass
class Served:
    world: World
    url: str  # http://127.0.0.1:PORT
    http: str  # 127.0.0.1:PORT, as tritonclient takes it
    grpc: str  # 127.0.0.1:GRPC_PORT
    tokens: dict[str, str]  # scope → token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """`maestrale serve pv-serve@champion --auth on --grpc-port G`, polling the alias every 0.3 s."""
    tmp = tmp_path_factory.mktemp("triton")
    world = make_world(tmp)
    tokens = {s: create_token(world.settings.database_url, f"svc-{s}", s) for s in ("read", "predict")}
    port, gport = free_port(), free_port()
    exe = str(Path(sys.executable).parent / "maestrale")
    cmd = [exe, "serve", REF, "--port", str(port), "--grpc-port", str(gport), "--auth", "on", "--no-log",
           "--reload-poll", "0.3", "--log-level", "warning"]  # fmt: skip
    log = tmp / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=os.environ | _env(world), stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"maestrale serve did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield Served(world, url, f"127.0.0.1:{port}", f"127.0.0.1:{gport}", tokens)
    finally:
        proc.terminate()
        proc.wait(15)
    assert "serving V2 gRPC on 127.0.0.1:" in log.read_text()


def json_answer(s: Served, X) -> np.ndarray:
    r = httpx.post(s.url + INFER, json=per_feature(X), headers=bearer(s.tokens["predict"]))
    assert r.status_code == 200, r.text
    return np.asarray(r.json()["outputs"][0]["data"])


def inputs(module, X, datatype: str = "FP64") -> list:
    """One tritonclient input per feature, its data set the client's default way (binary)."""
    out = []
    for c in X.columns:
        inp = module.InferInput(c, [len(X)], datatype)
        inp.set_data_from_numpy(X[c].to_numpy(dtype=np.float32 if datatype == "FP32" else np.float64))
        out.append(inp)
    return out


def test_tritonclient_http_with_its_defaults(served: Served):
    X = served.world.X.iloc[:50]
    auth = bearer(served.tokens["predict"])
    client = tritonhttp.InferenceServerClient(served.http)
    assert client.is_server_live() and client.is_server_ready()
    assert "binary_tensor_data" in client.get_server_metadata(headers=auth)["extensions"]
    meta = client.get_model_metadata(NAME, headers=auth)
    assert [i["name"] for i in meta["inputs"]] == list(X.columns)
    result = client.infer(NAME, inputs(tritonhttp, X), headers=auth)  # binary in, binary out
    assert result.get_response()["outputs"][0]["parameters"]["binary_data_size"] == 50 * 8
    np.testing.assert_allclose(result.as_numpy("predict"), json_answer(served, X), rtol=0, atol=1e-12)
    # binary inputs, JSON output; FP32 inputs give what their float32 values give over JSON
    out = tritonhttp.InferRequestedOutput("predict", binary_data=False)
    result = client.infer(NAME, inputs(tritonhttp, X, "FP32"), outputs=[out], headers=auth)
    assert "data" in result.get_response()["outputs"][0]
    X32 = X.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(result.as_numpy("predict"), json_answer(served, X32), rtol=0, atol=1e-12)
    entity = tritonhttp.InferInput("entity", [50], "BYTES")  # BYTES in binary: length-prefixed strings
    entity.set_data_from_numpy(np.array([f"plant-{i}" for i in range(50)], dtype=object))
    assert client.infer(NAME, [*inputs(tritonhttp, X), entity], headers=auth).as_numpy("predict").shape == (
        50,
    )
    with pytest.raises(InferenceServerException, match="missing bearer token"):
        client.infer(NAME, inputs(tritonhttp, X))


def test_tritonclient_grpc_with_its_defaults(served: Served):
    X = served.world.X.iloc[:50]
    auth = {"authorization": f"Bearer {served.tokens['predict']}"}
    client = tritongrpc.InferenceServerClient(served.grpc)
    assert client.is_server_live() and client.is_server_ready()
    assert client.get_server_metadata(headers=auth).extensions == ["binary_tensor_data"]
    assert client.is_model_ready(NAME, headers=auth)
    meta = client.get_model_metadata(NAME, headers=auth)
    assert [i.name for i in meta.inputs] == list(X.columns) and meta.outputs[0].name == "predict"
    result = client.infer(NAME, inputs(tritongrpc, X), headers=auth)
    np.testing.assert_allclose(result.as_numpy("predict"), json_answer(served, X), rtol=0, atol=1e-12)
    cases = {
        "UNAUTHENTICATED": ({}, NAME, "missing bearer token"),
        "PERMISSION_DENIED": (
            {"authorization": f"Bearer {served.tokens['read']}"}, NAME,
            "token 'svc-read' has scope 'read'; this operation needs 'predict'",
        ),
        "NOT_FOUND": (auth, "wind-farm", "not served here"),
    }  # fmt: skip
    for code, (headers, name, message) in cases.items():
        with pytest.raises(InferenceServerException) as err:
            client.infer(name, inputs(tritongrpc, X), headers=headers)
        assert err.value.status() == f"StatusCode.{code}" and message in err.value.message()
    bad = inputs(tritongrpc, X.iloc[:, :-1])  # a feature short: the REST message, INVALID_ARGUMENT
    rest = httpx.post(
        served.url + INFER, json=per_feature(X.iloc[:, :-1]), headers=bearer(served.tokens["predict"])
    )
    with pytest.raises(InferenceServerException) as err:
        client.infer(NAME, bad, headers=auth)
    assert err.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert err.value.message() == rest.json()["error"]


def test_a_hot_reload_is_seen_over_grpc(served: Served):
    X = served.world.X.iloc[:10]
    auth = {"authorization": f"Bearer {served.tokens['predict']}"}
    client = tritongrpc.InferenceServerClient(served.grpc)
    before = client.infer(NAME, inputs(tritongrpc, X), headers=auth)
    version, model = served.world.register(2.0)  # a new champion: the server's poll picks it up
    deadline = time.monotonic() + 20
    while (
        result := client.infer(NAME, inputs(tritongrpc, X), headers=auth)
    ).get_response().model_version != str(version):
        assert time.monotonic() < deadline, "gRPC still serves the old version"
        time.sleep(0.1)
    assert before.get_response().model_version == "1"
    np.testing.assert_allclose(result.as_numpy("predict"), model.predict(X), rtol=0, atol=1e-9)


def _binary(header: dict, tail: bytes) -> tuple[bytes, dict[str, str]]:
    import json

    head = json.dumps(header).encode()
    return head + tail, {"Inference-Header-Content-Length": str(len(head))}


def test_hostile_binary_bodies_are_400s_naming_the_input(served: Served):
    X = served.world.X.iloc[:4]
    ok = [
        {"name": c, "shape": [4], "datatype": "FP64", "parameters": {"binary_data_size": 32}}
        for c in X.columns
    ]
    tail = b"".join(X[c].to_numpy(np.float64).tobytes() for c in X.columns)
    first = X.columns[0]

    def one(**change) -> list[dict]:
        return [{**ok[0], **change}, *ok[1:]]

    huge = 2**63
    cases = [
        (one(parameters={"binary_data_size": 31}), tail[:-1],
         f"input '{first}': shape [4] of FP64 needs 32 bytes but 31"),
        (one(parameters={"binary_data_size": huge}), tail, "runs past the end of the body"),
        (one(parameters={"binary_data_size": -8}), tail, "binary_data_size must be a byte count >= 0"),
        (one(parameters={"binary_data_size": "32"}), tail, "binary_data_size must be a byte count >= 0"),
        (one(shape=[5]), tail, f"input '{first}': shape [5] of FP64 needs 40 bytes but 32"),
        (one(shape=[-4]), tail, "must be a list of sizes >= 0"),
        (one(shape=[2**40, 2**40]), tail, "this server takes at most 2,000,000"),
        (one(datatype="FP128"), tail, "unknown datatype 'FP128'"),
        (one(data=[1.0, 2.0, 3.0, 4.0]), tail, "has both data and binary_data_size"),
        (ok, tail + b"\0" * 8, "8 bytes follow the binary inputs"),
        (one(datatype="BOOL", parameters={"binary_data_size": 4}), b"\x02\x00\x00\x01" + tail[32:],
         "each byte must be 0 or 1"),
    ]  # fmt: skip
    entity = {"name": "entity", "shape": [4], "datatype": "BYTES"}
    strings = [
        (struct.pack("<I", 2**31) + b"x" * 12, "claims 2,147,483,648 bytes"),
        (b"".join(struct.pack("<I", 1) + x for x in (b"a", b"b", b"c")), "ends before element 3"),
        (b"".join(struct.pack("<I", 1) + b"\xff" for _ in range(4)), "element 0 is not UTF-8"),
        (b"".join(struct.pack("<I", 1500) + b"x" * 1500 for _ in range(4)), "at most 1,024 characters"),
    ]  # fmt: skip
    for raw, message in strings:
        cases.append(([*ok, {**entity, "parameters": {"binary_data_size": len(raw)}}], tail + raw, message))
    auth = bearer(served.tokens["predict"])
    with httpx.Client(base_url=served.url, headers=auth) as c:
        for inputs_, body_tail, message in cases:
            body, headers = _binary({"inputs": inputs_}, body_tail)
            r = c.post(INFER, content=body, headers=headers)
            assert r.status_code == 400 and message in r.json()["error"], (message, r.text)
        body, _ = _binary({"inputs": ok}, tail)
        for value, message in (("abc", "must be the byte length"), (str(len(body) + 1), "but the body has"),
                               ("5", "not valid JSON")):  # fmt: skip
            r = c.post(INFER, content=body, headers={"Inference-Header-Content-Length": value})
            assert r.status_code == 400 and message in r.json()["error"], (value, r.text)
        bomb = b"[" * 100_000 + b"]" * 100_000  # nested past any parser's stack
        r = c.post(INFER, content=bomb + tail, headers={"Inference-Header-Content-Length": str(len(bomb))})
        assert r.status_code == 400 and "recursion limit exceeded" in r.json()["error"], r.text
        body, headers = _binary(
            {"inputs": [{k: v for k, v in ok[0].items() if k != "datatype"}, *ok[1:]]}, tail
        )
        r = c.post(INFER, content=body, headers=headers)
        assert r.status_code == 400 and "inputs.0.datatype: Field required" in r.json()["error"]


def test_binary_rest_and_grpc_log_predictions_with_the_token(tmp_path: Path):
    """In process: the prediction log gets both transports' rows, each batch naming its token."""
    from maestrale.bus.topology import MONITOR
    from maestrale.bus.transports.memory import MemoryTransport
    from maestrale.serving import create_app
    from tests.buscollect import collecting

    world = Audited(**vars(make_world(tmp_path)))
    token = create_token(world.settings.database_url, "svc-triton", "predict")
    bus = MemoryTransport(world.settings.bus_namespace)
    X = world.X.iloc[:7]
    gport = free_port()
    with collecting(bus, MONITOR.name, ["maestrale.prediction.logged"]) as world.collector:
        app = create_app(world.settings, [REF], auth=True, log_interval_s=0.1, grpc_port=gport)
        with serving(app) as url:
            http = tritonhttp.InferenceServerClient(url.removeprefix("http://"))
            http.infer(NAME, inputs(tritonhttp, X), headers=bearer(token))
            grpc = tritongrpc.InferenceServerClient(f"127.0.0.1:{gport}")
            grpc.infer(NAME, inputs(tritongrpc, X), headers={"authorization": f"Bearer {token}"})
            with pytest.raises(InferenceServerException):
                grpc.infer("wind-farm", inputs(tritongrpc, X), headers={"authorization": f"Bearer {token}"})
            metrics = httpx.get(url + "/metrics").text  # gRPC counted beside REST, names bounded
            assert f'{{endpoint="grpc:ModelInfer",model="{NAME}",status="200"}} 1.0' in metrics
            assert '{endpoint="grpc:ModelInfer",model="other",status="404"} 1.0' in metrics
        rows: Counter[str | None] = Counter()
        for batch in logged(world):
            rows[batch.logged_by] += len(batch.records)
    bus.delete()
    assert rows == {"svc-triton": 14}


MLSERVER_VENV = Path(__file__).resolve().parents[2] / "bench" / ".venv-mlserver" / "bin" / "python"
# run by MLServer's venv: a DataFrame encoded by MLServer's PandasCodec into its InferenceRequest, posted,
# the answer parsed as its InferenceResponse and decoded by its NumpyCodec
MLSERVER_CLIENT = """
import json, sys, urllib.request
import pandas as pd
from mlserver.codecs import NumpyCodec, PandasCodec
from mlserver.types import InferenceResponse
url, token, rows = sys.argv[1], sys.argv[2], json.loads(sys.stdin.read())
req = PandasCodec.encode_request(pd.DataFrame(rows))
http = urllib.request.Request(url, data=req.model_dump_json(exclude_none=True).encode(), method="POST",
    headers={"Content-Type": "application/json", "Authorization": "Bearer " + token})
answer = InferenceResponse.model_validate_json(urllib.request.urlopen(http).read())
print(json.dumps(NumpyCodec.decode_output(answer.outputs[0]).tolist()))
"""


def test_mlserver_client_types(served: Served):
    """MLServer's own request and response types (from its venv: MLServer is not in this one)."""
    X = served.world.X.iloc[:5]
    try:
        import mlserver.types  # noqa: F401
    except ImportError:
        if not MLSERVER_VENV.exists():
            pytest.skip(
                "mlserver is neither in this venv nor in bench/.venv-mlserver (bench/setup_mlserver.sh)"
            )
    python = sys.executable if "mlserver" in sys.modules else str(MLSERVER_VENV)
    proc = subprocess.run(
        [python, "-c", MLSERVER_CLIENT, served.url + INFER, served.tokens["predict"]],
        input=json.dumps(X.to_dict("records")), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = np.asarray(json.loads(proc.stdout)).reshape(-1)
    np.testing.assert_allclose(got, json_answer(served, X), rtol=0, atol=1e-12)


def test_unused_secret_is_refused_by_grpc(served: Served):
    client = tritongrpc.InferenceServerClient(served.grpc)
    with pytest.raises(InferenceServerException, match="unknown or revoked token") as err:
        client.get_model_metadata(NAME, headers={"authorization": f"Bearer mst_{secrets.token_urlsafe(32)}"})
    assert err.value.status() == "StatusCode.UNAUTHENTICATED"
