"""MLServer runtime that serves a Maestrale registry version: `MaestraleRuntime`.

For teams that already run MLServer (Seldon Core, KServe): the model comes from the registry by
reference, its sha256 checked on load, and every response says which registry version answered.

`model-settings.json` in an MLServer model folder::

    {
      "name": "pv-nrel-50",
      "implementation": "maestrale.serving.mlserver_runtime.MaestraleRuntime",
      "parameters": {"extra": {"ref": "pv-nrel-50@champion"}}
    }

`parameters.extra` keys:

- `ref` (required): `NAME@ALIAS` or `NAME:VERSION`, resolved once, when MLServer loads the model;
- where the registry is, else the `MAESTRALE_*` environment of the MLServer process: `registry_url`
  (a `maestrale server`; its token from `token` or, better, `MAESTRALE_TOKEN`) or `database_url` +
  `storage_url` (+ `storage_options`) for an embedded registry;
- `trusted_types`: extra types the artifact may contain (as in `Registry.load`).

Requests use the V2 (Open Inference) protocol with MLServer's codecs, in either layout:

- one input per feature, named as the feature, shape `[n]` or `[n, 1]`;
- one 2-D input `[n, k]` (name not a feature, or request `content_type` `"np"`) whose columns follow
  the version's input schema.

`target_time` and `entity` inputs (as Maestrale's own server reads them) are accepted and ignored.
The model gets a DataFrame in the input schema's column order and dtypes; the response has one FP64
output, `predict`, shape `[n]`, and `model_version` is the registry version that was loaded.
A model trained with a `feature_set` (`maestrale.features`) takes the raw inputs: its time input is
BYTES of ISO 8601 strings (with an offset, or naive in the zone the model declares), read by
`maestrale.timeparse` exactly as `maestrale serve` reads it.
A version registered without `input_example` has no schema: send one 2-D input, given as an array.

Needs MLServer 1.7: `pip install 'maestrale[mlserver]'`. Nothing else in Maestrale imports this module.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

try:
    from mlserver import MLModel
    from mlserver.codecs import NumpyCodec
    from mlserver.errors import InferenceError, MLServerError
    from mlserver.logging import logger
    from mlserver.types import (
        InferenceRequest,
        InferenceResponse,
        MetadataTensor,
        Parameters,
        RequestInput,
        ResponseOutput,
    )
except ModuleNotFoundError as exc:  # pragma: no cover - exercised where mlserver is absent
    if exc.name and exc.name.split(".")[0] == "mlserver":
        raise ModuleNotFoundError(
            "maestrale.serving.mlserver_runtime needs MLServer: pip install 'maestrale[mlserver]'",
            name=exc.name,
        ) from exc
    raise

import numpy as np
import pandas as pd

from maestrale.errors import InvalidInput, MaestraleError

OUTPUT = "predict"
RESERVED_INPUTS = ("target_time", "entity")
_REGISTRY_KEYS = ("database_url", "storage_url", "storage_options")
_V2_OF_KIND = {"f": "FP64", "i": "INT64", "u": "UINT64", "b": "BOOL"}


class MaestraleRuntime(MLModel):
    """Serves `parameters.extra.ref` from a Maestrale registry (see the module docstring)."""

    async def load(self) -> bool:
        extra = dict(self.settings.parameters.extra or {}) if self.settings.parameters else {}
        ref = extra.get("ref")
        if not isinstance(ref, str) or not ref:
            raise MLServerError(
                f"model {self.name!r}: set parameters.extra.ref in model-settings.json to a registry "
                'reference, e.g. {"ref": "pv-nrel-50@champion"}'
            )
        loaded, columns, timezone = await asyncio.to_thread(_load, ref, extra)
        self._model = loaded.model
        self._columns: list[tuple[str, str]] | None = columns
        self._timezone: str | None = timezone
        self._served_version = str(loaded.version)
        self.ref, self.registry_name, self.sha256 = ref, loaded.name, loaded.sha256
        if columns is not None:
            self.inputs = [
                MetadataTensor(name=n, datatype=_V2_OF_KIND.get(_kind(d), "BYTES"), shape=[-1])
                for n, d in columns
            ]
        self.outputs = [MetadataTensor(name=OUTPUT, datatype="FP64", shape=[-1])]
        logger.info(
            "%s: loaded %s = %s:%s, sha256 %s", self.name, ref, loaded.name, loaded.version, loaded.sha256
        )
        self.ready = True
        return self.ready

    async def unload(self) -> bool:
        self._model = None
        self.ready = False
        return True

    @property
    def served_version(self) -> str:
        """The registry version this runtime loaded (what `model_version` says in every response)."""
        return self._served_version

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        try:
            frame = decode_request(payload, self._columns, self._timezone)
        except InvalidInput as exc:
            raise InferenceError(str(exc)) from None
        try:
            pred = np.asarray(self._model.predict(frame))
        except (ValueError, TypeError) as exc:  # e.g. NaN in a feature the model cannot take
            what = f"{self.registry_name}:{self._served_version}"
            raise InferenceError(f"{what} cannot predict on this input: {exc}") from None
        try:
            values = pred.astype(np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise InferenceError(f"the model's predictions are not numbers ({pred.dtype}): {exc}") from None
        data = [None if math.isnan(v) else v for v in values.tolist()]
        return InferenceResponse(
            model_name=self.name,
            model_version=self._served_version,
            outputs=[
                ResponseOutput(
                    name=OUTPUT,
                    shape=[len(data)],
                    datatype="FP64",
                    data=data,
                    parameters=Parameters(content_type=NumpyCodec.ContentType),
                )
            ],
        )


def _load(ref: str, extra: dict[str, Any]) -> tuple[Any, list[tuple[str, str]] | None, str | None]:
    """Load the version (sha256 verified by the registry); its input schema and the zone of naive times."""
    from maestrale import Registry
    from maestrale.serving.repository import feature_step

    kwargs = {k: extra[k] for k in _REGISTRY_KEYS if extra.get(k)}
    url, token = extra.get("registry_url"), extra.get("token")
    reg = Registry(url, token=token, **kwargs) if (url or kwargs) else Registry(token=token)
    try:
        loaded = reg.load_version(ref, trusted_types=extra.get("trusted_types"))
        mv = reg.get_version(f"{loaded.name}:{loaded.version}")  # the loaded one, even if the alias moved
        step = feature_step(loaded.model)  # its feature set resolved now: fail the load, not requests
    except MaestraleError as exc:
        raise MLServerError(f"cannot load {ref} from {reg.location}: {type(exc).__name__}: {exc}") from exc
    columns = [(c.name, c.dtype) for c in mv.input_schema] if mv.input_schema else None
    return loaded, columns, step.timezone if step is not None else None


# -- decoding --------------------------------------------------------------------------------------------
def _kind(dtype: str) -> str:
    try:
        return pd.api.types.pandas_dtype(dtype).kind
    except TypeError:
        return "O"


def _array(inp: RequestInput) -> np.ndarray:
    try:
        return NumpyCodec.decode_input(inp)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"input {inp.name!r} ({inp.datatype}, shape {inp.shape}) does not decode: {exc}"
        ) from None


def _column(values: np.ndarray, name: str, dtype: str, timezone: str | None = None) -> Any:
    from maestrale.registry.types import ColumnSchema
    from maestrale.serving.v2 import decode_times

    kind = _kind(dtype)
    try:
        if kind == "M":  # the same reading as `maestrale serve`: offsets, or naive in the model's zone
            text = np.asarray([v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()])
            return decode_times(text, ColumnSchema(name=name, dtype=dtype), timezone)
        if kind in "iu" and values.dtype.kind == "f" and not np.all(np.mod(values, 1) == 0):
            raise ValueError("values must be whole numbers")
        return values.astype(dtype)
    except InvalidInput:
        raise
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"feature {name!r} ({dtype}): {exc}") from None


def decode_request(
    payload: InferenceRequest, columns: list[tuple[str, str]] | None, timezone: str | None = None
) -> Any:
    """The model's input from a V2 request: a DataFrame in schema order (an ndarray without a schema)."""
    ct = payload.parameters.content_type if payload.parameters else None
    if ct not in (None, "pd", "np"):
        raise InvalidInput(
            f"unsupported request content_type {ct!r}: send 'pd' (one input per feature) or 'np' "
            "(one [n, k] input)"
        )
    names = [n for n, _ in columns or ()]
    features = [i for i in payload.inputs if i.name in names or i.name not in RESERVED_INPUTS]
    if not features:
        raise InvalidInput("the request has no feature inputs")
    if payload.outputs and any(o.name != OUTPUT for o in payload.outputs):
        raise InvalidInput(f"this model has one output, {OUTPUT!r}")
    first = features[0]
    if len(features) == 1 and len(first.shape) == 2 and (ct == "np" or first.name not in names):
        matrix = _array(first)
        if columns is None:
            return matrix
        if matrix.shape[1] != len(columns):
            raise InvalidInput(
                f"input {first.name!r} has {matrix.shape[1]} columns but the model takes {len(columns)} "
                f"features in this order: {', '.join(names)}"
            )
        values = {n: matrix[:, j] for j, n in enumerate(names)}
    elif columns is None:
        raise InvalidInput("this version has no input schema: send one [n, k] input with every feature")
    else:
        given = [i.name for i in features]
        missing = [n for n in names if n not in given]
        unexpected = [g for g in given if g not in names]
        twice = sorted({g for g in given if given.count(g) > 1})
        if missing or unexpected or twice:
            parts = [f"missing feature(s): {', '.join(missing)}"] if missing else []
            parts += [f"unexpected input(s): {', '.join(unexpected)}"] if unexpected else []
            parts += [f"input(s) sent twice: {', '.join(twice)}"] if twice else []
            raise InvalidInput(
                f"{'; '.join(parts)}; the model takes one input per feature: {', '.join(names)} "
                f"(or one [n, {len(names)}] input)"
            )
        values = {}
        for inp in features:
            if not (len(inp.shape) == 1 or (len(inp.shape) == 2 and inp.shape[1] == 1)):
                raise InvalidInput(f"input {inp.name!r} has shape {inp.shape}: a feature takes [n] or [n, 1]")
            values[inp.name] = _array(inp).reshape(-1)
        if len({len(v) for v in values.values()}) > 1:
            raise InvalidInput("feature inputs have different lengths: send one value per row in each")
    return pd.DataFrame({n: _column(values[n], n, d, timezone) for n, d in columns}, columns=names)
