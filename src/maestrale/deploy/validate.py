"""Offline validation of manifests: schemas, cross-references between objects, security settings.

- Core kinds (Deployment, Service, ConfigMap, Secret, Job, ServiceAccount, …) are checked with
  `kubernetes-validate` in strict mode (unknown fields are errors) for one Kubernetes version.
- Seldon `Model` and `SeldonDeployment`, KServe `InferenceService`, KEDA `ScaledObject` and
  `TriggerAuthentication` are checked with the JSON Schemas in `schemas/`, whose embedded pod
  specs, containers and metadata resolve to the same Kubernetes definitions.
- A kind with no schema is an error, never a silent pass.

Needs `kubernetes-validate` and `jsonschema` (the dev extra); the renderer does not.

A manifest may declare what it needs from the cluster in the annotation `maestrale.io/requires`
(`ConfigMap/maestrale-config,Secret/maestrale-secrets`, written by `maestrale deploy render`):
those objects are taken as existing, and `declared_external` lists them so the caller can say so.

>>> from maestrale.deploy import render
>>> validate_documents(render("pv@champion", "k8s"))  # doctest: +SKIP
[]
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from functools import cache
from importlib import resources
from typing import Any

from maestrale import yamlsafe
from maestrale.deploy.render import REQUIRES
from maestrale.errors import ConfigError, InvalidInput

K8S_VERSION = "1.29"
_SCHEMAS = {
    ("mlops.seldon.io/v1alpha1", "Model"): "seldon-model-v1alpha1.json",
    ("machinelearning.seldon.io/v1", "SeldonDeployment"): "seldondeployment-v1.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "kserve-inferenceservice-v1beta1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject-v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication-v1alpha1.json",
}
_WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}
#: A rendered chart with CRDs runs to megabytes and deep schemas; an alias bomb still cannot pass.
MANIFEST_LIMITS = {"max_bytes": 16 << 20, "max_nodes": 2_000_000, "max_depth": 128}


def load_documents(text: str) -> list[dict[str, Any]]:
    """Parse a multi-document YAML stream (e.g. `helm template` output), dropping empty documents.

    Bounded like every YAML Maestrale reads (`maestrale.yamlsafe`), with room for large charts.
    """
    try:
        docs = [d for d in yamlsafe.load_all(text, **MANIFEST_LIMITS) if d]
    except yamlsafe.YamlError as exc:
        raise InvalidInput(f"not a YAML stream of manifests: {exc.message}") from None
    if not all(isinstance(d, dict) for d in docs):
        raise InvalidInput("not a YAML stream of manifests: every document must be a mapping")
    return docs


def _name(doc: dict[str, Any]) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def _k8s_validate() -> Any:
    try:
        import kubernetes_validate
    except ImportError:
        raise ConfigError(
            "validating manifests needs kubernetes-validate and jsonschema: "
            "pip install 'maestrale[dev]' (or pip install kubernetes-validate jsonschema)"
        ) from None
    return kubernetes_validate


@cache
def _registry(version: str) -> Any:
    """The Kubernetes definitions of `version` (strict), so CRD schemas can `$ref` PodSpec & co."""
    from packaging.version import Version
    from referencing import Registry, Resource

    kv = _k8s_validate()
    wanted = Version(version)
    known = [v for v in kv.utils.all_versions() if Version(v).release[:2] <= wanted.release[:2]]
    if not known:
        raise ConfigError(f"kubernetes-validate ships no schemas for Kubernetes {version} or older")
    path = f"kubernetes-json-schema/v{known[-1]}-local-strict/_definitions.json"
    definitions = json.loads((resources.files("kubernetes_validate") / path).read_text())
    return Resource.from_contents(definitions) @ Registry()


@cache
def _crd_validator(api_version: str, kind: str, version: str) -> Any:
    from jsonschema import Draft202012Validator

    text = (resources.files("maestrale.deploy") / "schemas" / _SCHEMAS[(api_version, kind)]).read_text()
    schema = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, registry=_registry(version))


def _path(parts: Iterable[Any]) -> str:
    return ".".join(str(p) for p in parts) or "(root)"


def validate_document(doc: dict[str, Any], version: str = K8S_VERSION) -> list[str]:
    """Schema problems of one manifest, each `Kind/name: path: message`; empty when it is valid.

    >>> validate_document({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
    ...                    "data": {"a": "1"}, "dataa": {}})  # doctest: +SKIP
    ["ConfigMap/c: (root): Additional properties are not allowed ('dataa' was unexpected)"]
    """
    kv = _k8s_validate()
    where = _name(doc)
    key = (doc.get("apiVersion"), doc.get("kind"))
    if key in _SCHEMAS:
        validator = _crd_validator(key[0], key[1], version)
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
        return [f"{where}: {_path(e.absolute_path)}: {e.message}" for e in errors]
    try:
        kv.validate(doc, version, strict=True)
    except kv.ValidationError as exc:
        return [f"{where}: {_path(exc.absolute_path)}: {exc.message}"]
    except kv.SchemaNotFoundError:
        return [f"{where}: no schema for {key[1]} {key[0]}: cannot be validated offline"]
    except KeyError as exc:
        return [f"{where}: missing {exc.args[0]}"]
    return []


def pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The pod specs inside a manifest, with where they sit: workloads, SeldonDeployment, KServe."""
    kind, spec = doc.get("kind"), doc.get("spec") or {}
    if kind in _WORKLOADS:
        yield f"{_name(doc)}: spec.template.spec", spec.get("template", {}).get("spec", {})
    elif kind == "CronJob":
        yield f"{_name(doc)}: jobTemplate", spec["jobTemplate"]["spec"]["template"]["spec"]
    elif kind == "SeldonDeployment":
        for p in spec.get("predictors", []):
            for i, c in enumerate(p.get("componentSpecs") or []):
                yield f"{_name(doc)}: predictor {p.get('name')} componentSpecs.{i}", c.get("spec", {})
    elif kind == "InferenceService":
        yield f"{_name(doc)}: spec.predictor", spec.get("predictor", {})


def check_security(docs: Sequence[dict[str, Any]]) -> list[str]:
    """Every container non-root, read-only root, no privilege escalation, ALL dropped, RuntimeDefault.

    Checked on the container (where Knative also accepts it); a pod-level context, where there is
    one, must not contradict it. The emptyDir mounts for /tmp are checked by the tests.
    """
    problems = []
    for doc in docs:
        for where, spec in pod_specs(doc):
            pod_ctx = spec.get("securityContext") or {}
            if pod_ctx and pod_ctx.get("runAsNonRoot") is not True:
                problems.append(f"{where}: pod securityContext.runAsNonRoot is not true")
            for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
                ctx, at = c.get("securityContext") or {}, f"{where} container {c.get('name')}"
                expected = {
                    "runAsNonRoot": True,
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                }
                for field, value in expected.items():
                    if ctx.get(field) is not value:
                        problems.append(f"{at}: securityContext.{field} must be {str(value).lower()}")
                if "ALL" not in ((ctx.get("capabilities") or {}).get("drop") or []):
                    problems.append(f"{at}: securityContext.capabilities.drop must include ALL")
                if (ctx.get("seccompProfile") or pod_ctx.get("seccompProfile") or {}).get(
                    "type"
                ) != "RuntimeDefault":
                    problems.append(f"{at}: seccompProfile must be RuntimeDefault")
    return problems


def _matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_references(docs: Sequence[dict[str, Any]], external: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Names that must point at something: selectors, named ports, volumes, Secrets, scale targets.

    `external` lists `(kind, name)` objects that exist outside `docs` (e.g. an existing Secret).
    """
    have = {(d.get("kind"), d["metadata"]["name"]) for d in docs if d.get("metadata")} | set(external)
    problems: list[str] = []
    templates = []
    for doc in docs:
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind in _WORKLOADS and "selector" in spec:
            labels = spec["template"].get("metadata", {}).get("labels", {})
            if not _matches(spec["selector"].get("matchLabels", {}), labels):
                problems.append(f"{_name(doc)}: selector does not match the pod template's labels")
            templates.append((labels, spec["template"]["spec"]))
        for where, pod in pod_specs(doc):
            problems += _pod_references(where, pod, have)
    for doc in docs:
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "Service" and spec.get("selector"):
            pods = [pod for labels, pod in templates if _matches(spec["selector"], labels)]
            if not pods:
                problems.append(f"{_name(doc)}: selector matches no pod template")
            named = {p.get("name") for pod in pods for c in pod["containers"] for p in c.get("ports", [])}
            for port in spec.get("ports", []):
                target = port.get("targetPort")
                if isinstance(target, str) and target not in named:
                    problems.append(f"{_name(doc)}: targetPort {target!r} is no container port name")
        elif kind == "ScaledObject":
            if ("Deployment", spec["scaleTargetRef"]["name"]) not in have:
                problems.append(f"{_name(doc)}: scaleTargetRef {spec['scaleTargetRef']['name']!r} not found")
            for t in spec.get("triggers", []):
                ref = (t.get("authenticationRef") or {}).get("name")
                if ref and ("TriggerAuthentication", ref) not in have:
                    problems.append(f"{_name(doc)}: authenticationRef {ref!r} not found")
        elif kind == "TriggerAuthentication":
            for ref in spec.get("secretTargetRef", []):
                if ("Secret", ref["name"]) not in have:
                    problems.append(f"{_name(doc)}: Secret {ref['name']!r} not found")
    return problems


def _pod_references(where: str, pod: dict[str, Any], have: set[tuple[Any, Any]]) -> list[str]:
    problems = []
    volumes = {v["name"] for v in pod.get("volumes", [])}
    for c in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        at = f"{where} container {c.get('name')}"
        ports = {p.get("name") for p in c.get("ports", [])}
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                problems.append(f"{at}: volumeMount {m['name']!r} has no volume")
        for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
            port = (c.get(probe) or {}).get("httpGet", {}).get("port")
            if isinstance(port, str) and port not in ports:
                problems.append(f"{at}: {probe} port {port!r} is no container port name")
        refs = [("ConfigMap", e["configMapRef"]) for e in c.get("envFrom", []) if "configMapRef" in e]
        refs += [("Secret", e["secretRef"]) for e in c.get("envFrom", []) if "secretRef" in e]
        for e in c.get("env", []):
            source = e.get("valueFrom") or {}
            refs += [("Secret", source["secretKeyRef"])] if "secretKeyRef" in source else []
            refs += [("ConfigMap", source["configMapKeyRef"])] if "configMapKeyRef" in source else []
        for kind, ref in refs:
            if not ref.get("optional") and (kind, ref["name"]) not in have:
                problems.append(f"{at}: {kind} {ref['name']!r} not found")
    return problems


def declared_external(docs: Sequence[dict[str, Any]]) -> set[tuple[str, str]]:
    """`(kind, name)` of the objects the manifests declare they need (`maestrale.io/requires`).

    >>> declared_external([{"metadata": {"annotations": {REQUIRES: "Secret/s,ConfigMap/c"}}}])
    {('Secret', 's'), ('ConfigMap', 'c')}
    """
    out = set()
    for doc in docs:
        text = ((doc.get("metadata") or {}).get("annotations") or {}).get(REQUIRES) or ""
        for item in str(text).split(","):
            kind, _, name = item.strip().partition("/")
            if kind and name:
                out.add((kind, name))
    return out


def validate_documents(
    docs: Sequence[dict[str, Any]],
    version: str = K8S_VERSION,
    external: Iterable[tuple[str, str]] = (),
) -> list[str]:
    """Everything above on a set of manifests: schema, references and security problems.

    `external` and the objects the manifests declare (`declared_external`) count as existing.
    """
    problems = [p for doc in docs for p in validate_document(doc, version)]
    known = set(external) | declared_external(docs)
    return problems + check_references(docs, known) + check_security(docs)
