"""grpcio's own cost per call: a V2 gRPC server whose ModelInfer answers a prebuilt response.

Run by ``bench/_serving_grpc_load.py`` (``grpcio_noop_ms``) as a subprocess, pinned like the servers,
with grpcio's synchronous server configured as ``maestrale serve --grpc-port`` configures it (a
thread pool of 8, the same message limits). What a call costs here is what any Python service built
on grpcio pays before doing any work: added to the in-process decode + predict floor, it is the
floor of a grpcio server for the 1-row request::

    python bench/_grpc_noop_server.py PORT ANSWER   # prints "ready", serves until killed
"""

from __future__ import annotations

import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import grpc
import numpy as np

from maestrale.serving.proto import grpc_predict_v2_pb2 as pb
from maestrale.serving.proto import grpc_predict_v2_pb2_grpc as pbg


class Noop(pbg.GRPCInferenceServiceServicer):
    def __init__(self, answer: float) -> None:
        out = pb.ModelInferResponse.InferOutputTensor(name="predict", datatype="FP64", shape=[1])
        self.response = pb.ModelInferResponse(
            model_name="pv-nrel-50", model_version="1", outputs=[out],
            raw_output_contents=[np.asarray([answer], dtype=np.float64).tobytes()],
        )  # fmt: skip

    def ModelInfer(self, request: Any, context: grpc.ServicerContext) -> Any:
        return self.response


def main() -> None:
    port, answer = int(sys.argv[1]), float(sys.argv[2])
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8),
        options=[("grpc.max_receive_message_length", 32 << 20), ("grpc.max_send_message_length", 64 << 20)],
    )
    pbg.add_GRPCInferenceServiceServicer_to_server(Noop(answer), server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
