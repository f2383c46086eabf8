"""The V2 data plane: one object between a transport (FastAPI routes, an MLServer runtime) and the models.

As MLServer's and KServe's `DataPlane`, it owns what the Open Inference Protocol means, whatever
carries it: readiness, server and model metadata, and inference — decoding a V2 request into the
model's input frame (one codec, `maestrale.serving.v2`, with the bounds of `v2_limits`), calling the
model, logging the prediction, encoding the response. A transport only parses its body and maps
`MaestraleError` to its status code, so `maestrale serve` and the MLServer runtime answer the same
request with the same predictions and the same 400 message.

>>> plane = DataPlane(repo.get_version, repo.ready, logger=None)  # doctest: +SKIP
>>> plane.infer("pv-nrel-50", None, InferenceRequest.model_validate(body)).outputs[0].data  # doctest: +SKIP
[0.41, 0.52]
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ValidationError

from maestrale import __version__
from maestrale.errors import InvalidInput, MaestraleError
from maestrale.serving.ids import new_id
from maestrale.serving.v2 import (
    OUTPUT,
    Decoded,
    InferenceRequest,
    InferenceResponse,
    MetadataModelResponse,
    MetadataServerResponse,
    MetadataTensor,
    Parameters,
    datatype_of,
    decode_infer,
    decode_records,
    encode_output,
)

if TYPE_CHECKING:
    from maestrale.serving.logger import PredictionLogger
    from maestrale.serving.repository import ServedModel

log = logging.getLogger("maestrale.serving")
EXTENSIONS = ("binary_tensor_data",)  # the V2 protocol extensions both transports speak
#: `lookup(name, version)`: the model a request uses to its end (`version` None: whichever is served),
#: or `NotFound`.
Lookup = Callable[[str, str | None], "ServedModel"]


@dataclass(frozen=True, slots=True)
class Caller:
    """Who asked, for the prediction log: the entity header, the request time, the token's name."""

    entity: str | None = None
    issued_at: datetime | None = None  # None: now
    token: str | None = None  # None when auth is off

    def at(self) -> datetime:
        """When the request arrived."""
        return self.issued_at or datetime.now(UTC)


class PredictionFailed(MaestraleError):
    """The model raised something other than a ValueError on valid input: a server-side problem."""

    status_code = 500
    code = "prediction_failed"


class DataPlane:
    """Readiness, metadata and inference of the models `lookup` serves (see the module docstring)."""

    def __init__(
        self,
        lookup: Lookup,
        ready: Callable[[], bool],
        *,
        logger: PredictionLogger | None = None,
        server_name: str = "maestrale",
    ) -> None:
        self.lookup, self._ready, self.logger, self.server_name = lookup, ready, logger, server_name

    # -- health and metadata --------------------------------------------------------------------------
    def live(self) -> bool:
        """The process answers."""
        return True

    def ready(self) -> bool:
        """Every model is loaded."""
        return self._ready()

    def model_ready(self, name: str, version: str | None = None) -> bool:
        """The model (this version, if given) is loaded and served; `NotFound` otherwise."""
        self.lookup(name, version)
        return True

    def server_metadata(self) -> MetadataServerResponse:
        """Server name, version and V2 extensions (`binary_tensor_data`, as Triton names it)."""
        return MetadataServerResponse(name=self.server_name, version=__version__, extensions=list(EXTENSIONS))

    def model_metadata(self, name: str, version: str | None = None) -> MetadataModelResponse:
        """Inputs (one per feature, from the input schema) and the `predict` output."""
        return metadata_of(self.lookup(name, version))

    # -- inference ------------------------------------------------------------------------------------
    def infer(
        self, name: str, version: str | None, req: InferenceRequest, caller: Caller | None = None
    ) -> InferenceResponse:
        """V2 inference: decode, predict (and log), encode. `InvalidInput` (400) names any mistake."""
        served, pred = self.infer_predictions(name, version, req, caller)
        return InferenceResponse(
            model_name=served.name, model_version=str(served.version), id=req.id or new_id(),
            outputs=[encode_output(pred)],
        )  # fmt: skip

    def infer_predictions(
        self, name: str, version: str | None, req: InferenceRequest, caller: Caller | None = None
    ) -> tuple[ServedModel, Any]:
        """(the model that served, its raw predictions) for a V2 request: what the binary encoders and
        gRPC encode themselves (`maestrale.serving.v2.output_array` gives the datatype and array)."""
        served = self.lookup(name, version)  # read once: this request uses this model to its end
        decoded = decode_infer(req, served.columns, served.timezone)
        params = (req.parameters.model_extra or {}) if req.parameters else {}
        return served, self.predict(served, decoded, params, caller or Caller())

    def predict_records(
        self, name: str, records: list[dict[str, Any]], params: dict[str, Any] | None = None,
        caller: Caller | None = None,
    ) -> tuple[ServedModel, Any]:  # fmt: skip
        """Plain JSON records → (the model that served, its predictions)."""
        served = self.lookup(name, None)
        decoded = decode_records(records, served.columns, served.timezone)
        return served, self.predict(served, decoded, params or {}, caller or Caller())

    def predict(self, served: ServedModel, decoded: Decoded, params: dict[str, Any], caller: Caller) -> Any:
        """`served`'s predictions for `decoded`, handed to the logger with the times, entity and caller."""
        target = decoded.extras.get("target_time", params.get("target_time"))
        target_time = None if target is None else _times(target, decoded.rows)
        if target_time is None and served.time_column is not None:  # a feature pipeline's time input
            target_time = pd.DatetimeIndex(decoded.frame[served.time_column])
        issued_at = caller.at()
        if params.get("issued_at") is not None:
            if not isinstance(params["issued_at"], str):
                raise InvalidInput(
                    "parameters.issued_at must be one ISO 8601 time, e.g. 2012-06-01T18:00:00Z"
                )
            issued_at = _times(params["issued_at"], 1)[0].to_pydatetime()
        try:
            pred = served.predict(decoded.frame)
        except ValueError as exc:  # scikit-learn's way of saying "not this input" (NaN, wrong width…)
            raise InvalidInput(f"{served.name}:{served.version} cannot predict this input: {exc}") from None
        except Exception as exc:
            log.exception("%s:%d failed to predict", served.name, served.version)
            raise PredictionFailed(
                f"{served.name}:{served.version} failed: {type(exc).__name__}: {exc}"
            ) from None
        if self.logger is not None:
            frame = decoded.frame
            who = decoded.extras.get("entity", params.get("entity") or caller.entity or served.name)
            who = who if isinstance(who, np.ndarray) else str(who)
            if decoded.names is not None:  # the hot path's array: no DataFrame for the logger either
                self.logger.log_values(
                    served.name, served.version, decoded.names, frame, pred, entity=who, issued_at=issued_at,
                    target_time=target_time, logged_by=caller.token,
                )  # fmt: skip
                return pred
            if not isinstance(frame, pd.DataFrame):
                frame = pd.DataFrame(frame, columns=[f"f{i}" for i in range(frame.shape[1])])
            self.logger.log(
                served.name, served.version, frame, pred, entity=who, issued_at=issued_at,
                target_time=target_time, logged_by=caller.token,
            )  # fmt: skip
        return pred


def metadata_of(served: ServedModel) -> MetadataModelResponse:
    """V2 model metadata of a served version: its inputs from the input schema, the `predict` output."""
    if served.columns is None:
        inputs = [MetadataTensor(name="input-0", datatype="FP64", shape=[-1, -1])]
    else:
        inputs = [
            MetadataTensor(name=c.name, datatype=datatype_of(c.dtype), shape=[-1]) for c in served.columns
        ]
    params = {"content_type": "pd", "sha256": served.sha256, "alias": served.alias}
    return MetadataModelResponse(
        name=served.name, versions=[str(served.version)], platform=served.platform, inputs=inputs,
        outputs=[MetadataTensor(name=OUTPUT, datatype="FP64", shape=[-1])],
        parameters=Parameters.model_validate({k: v for k, v in params.items() if v is not None}),
    )  # fmt: skip


def _times(value: Any, rows: int) -> pd.DatetimeIndex:
    """Target times from one ISO 8601 string or one per row; they must carry a time zone."""
    values = [value] * rows if isinstance(value, str) else value
    if not isinstance(values, list | np.ndarray) or len(values) != rows:
        raise InvalidInput(f"target_time must be one ISO 8601 time or a list of {rows} (one per row)")
    try:
        stamps = pd.DatetimeIndex(pd.to_datetime(list(values), format="ISO8601"))
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"target_time is not ISO 8601: {exc}") from None
    if stamps.tz is None:
        raise InvalidInput("target_time needs a time zone, e.g. 2024-06-01T12:00:00Z")
    return stamps


def parse_body(model: type[BaseModel], body: bytes) -> Any:
    """`body` as `model`, or InvalidInput (400) saying what is wrong with it."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if errors and errors[0]["type"] == "json_invalid":
            raise InvalidInput(f"the request body is not valid JSON: {errors[0]['msg']}") from None
        raise InvalidInput(describe_errors(errors)) from None


def describe_errors(errors: Any) -> str:
    """Pydantic errors as one line: `invalid request: inputs.0.shape: Field required; …` (at most 5)."""
    parts = [f"{'.'.join(str(x) for x in e['loc']) or 'body'}: {e['msg']}" for e in list(errors)[:5]]
    return "invalid request: " + "; ".join(parts)
