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

Requests and responses are those of `maestrale serve`, byte for byte where V2 defines them: the
runtime hands MLServer's request to Maestrale's V2 data plane (`maestrale.serving.dataplane`), which
decodes it with the one codec (`maestrale.serving.v2`, bounded by `v2_limits`), predicts and encodes
the `predict` output. The two layouts (one input per feature, or one `[n, k]` input), the
`target_time` and `entity` inputs, BYTES times of a feature pipeline and every 400 message are
therefore the same on both servers; `model_version` is the registry version that was loaded.

Needs MLServer 1.7: `pip install 'maestrale[mlserver]'`. Nothing else in Maestrale imports this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

try:
    from mlserver import MLModel
    from mlserver.errors import InferenceError, MLServerError
    from mlserver.logging import logger
    from mlserver.types import InferenceRequest, InferenceResponse, MetadataTensor
except ModuleNotFoundError as exc:  # pragma: no cover - exercised where mlserver is absent
    if exc.name and exc.name.split(".")[0] == "mlserver":
        raise ModuleNotFoundError(
            "maestrale.serving.mlserver_runtime needs MLServer: pip install 'maestrale[mlserver]'",
            name=exc.name,
        ) from exc
    raise

from pydantic import ValidationError

from maestrale.errors import InvalidInput, MaestraleError, NotFound
from maestrale.serving import v2
from maestrale.serving.dataplane import DataPlane, describe_errors
from maestrale.serving.repository import ServedModel

_REGISTRY_KEYS = ("database_url", "storage_url", "storage_options")


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
        served = await asyncio.to_thread(_load, ref, extra)
        self._served: ServedModel | None = served
        self._plane = DataPlane(self._lookup, lambda: self._served is not None, server_name="mlserver")
        self.ref, self.registry_name, self.sha256 = ref, served.name, served.sha256
        meta = self._plane.model_metadata(served.name)  # the same inputs `maestrale serve` lists
        self.inputs = [MetadataTensor(**t.model_dump(exclude_none=True)) for t in meta.inputs]
        self.outputs = [MetadataTensor(**t.model_dump(exclude_none=True)) for t in meta.outputs]
        logger.info(
            "%s: loaded %s = %s:%s, sha256 %s", self.name, ref, served.name, served.version, served.sha256
        )
        self.ready = True
        return self.ready

    async def unload(self) -> bool:
        self._served = None
        self.ready = False
        return True

    def _lookup(self, name: str, version: str | None) -> ServedModel:
        served = self._served
        if served is None:
            raise NotFound(f"model {self.name!r} is not loaded")
        if version is not None and version != str(served.version):
            raise NotFound(f"version {version} of {name!r} is not served here; it serves {served.version}")
        return served

    @property
    def served_version(self) -> str:
        """The registry version this runtime loaded (what `model_version` says in every response)."""
        return str(self._lookup(self.registry_name, None).version)

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        """Maestrale's data plane on MLServer's request: a 400 (`InferenceError`) names any mistake."""
        try:
            req = v2.InferenceRequest.model_validate(payload.model_dump(exclude_none=True))
            out = self._plane.infer(self.registry_name, None, req)
        except ValidationError as exc:
            raise InferenceError(describe_errors(exc.errors(include_url=False))) from None
        except InvalidInput as exc:
            raise InferenceError(exc.message) from None
        except MaestraleError as exc:
            raise MLServerError(exc.message) from None
        # the name MLServer knows the model by (model-settings.json), which may differ from the registry's
        out.model_name = self.name
        return InferenceResponse.model_validate_json(out.model_dump_json(exclude_none=True))


def _load(ref: str, extra: dict[str, Any]) -> ServedModel:
    """The version `ref` points at, loaded as `maestrale serve` loads it (sha256 verified)."""
    from maestrale import Registry
    from maestrale.refs import ModelRef
    from maestrale.serving.repository import load_served

    kwargs = {k: extra[k] for k in _REGISTRY_KEYS if extra.get(k)}
    url, token = extra.get("registry_url"), extra.get("token")
    reg = Registry(url, token=token, **kwargs) if (url or kwargs) else Registry(token=token)
    try:
        parsed = ModelRef.parse(ref)
        return load_served(reg, parsed, parsed.alias, extra.get("trusted_types"))
    except MaestraleError as exc:
        raise MLServerError(f"cannot load {ref} from {reg.location}: {type(exc).__name__}: {exc}") from exc
