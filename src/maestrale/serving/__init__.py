"""The model server: V2 (Open Inference Protocol) over HTTP, hot reload on promotion, prediction logging.

>>> from maestrale.serving import create_app
>>> app = create_app(settings, ["pv-nrel-50@champion"])  # doctest: +SKIP

Modules: `v2` (request/response bodies and the tensor ↔ DataFrame codec), `v2_limits` (bounds on
one request), `repository` (the served models and their atomic swap), `reload` (bus consumer +
alias poll), `logger` (bounded prediction log buffer flushed to the bus), `metrics` (Prometheus),
`auth` (bearer tokens), `dataplane` (the V2 data plane: readiness, metadata, decode → predict →
encode, shared by the FastAPI app and the MLServer runtime), `inference` (the inference routes),
`app` (the FastAPI application), `v2_binary` (the binary tensor extension: raw tensors of REST and
gRPC), `grpc_server` (V2 over gRPC, `maestrale[grpc]`; `proto` holds KServe's .proto and its
generated modules), `mlserver_runtime` (the same data plane inside MLServer). Names are
imported on first use, so `maestrale.serving.repository` works without the server extra (FastAPI).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "create_app": "maestrale.serving.app",
    "ModelRepository": "maestrale.serving.repository",
    "ServedModel": "maestrale.serving.repository",
    "PredictionLogger": "maestrale.serving.logger",
    "ReloadWatcher": "maestrale.serving.reload",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'maestrale.serving' has no attribute {name!r}")
