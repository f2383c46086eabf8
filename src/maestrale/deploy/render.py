"""Manifests that serve one model reference on Kubernetes, Seldon Core (v2 and v1) or KServe.

Every target runs the same image and the same security settings as the Helm chart; all speak the
Open Inference Protocol (V2) and, like the chart, require bearer tokens (`maestrale serve --auth on`:
tokens of the registry's token store, or of a Secret mounted as a token file with `token_secret`).
Pure Python: dicts dumped with `yaml.safe_dump`, nothing to install.

>>> docs = render("pv-forecast@champion", "k8s", image="registry.local/maestrale:0.1.0")
>>> [d["kind"] for d in docs]
['Deployment', 'Service']
>>> print(to_yaml(docs).splitlines()[0])
apiVersion: apps/v1
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import yaml

from maestrale.deploy import pod
from maestrale.errors import InvalidInput
from maestrale.refs import DEFAULT_ALIAS, ModelRef

TARGETS = ("k8s", "seldon", "seldon-v1", "kserve")
MLSERVER_RUNTIME = "maestrale.serving.mlserver_runtime.MaestraleRuntime"
# What the Seldon Core v2 Server running that runtime must advertise (Server.spec.extraCapabilities).
SELDON_CAPABILITY = "maestrale"
SELDON_V1_PORT = 9000  # Seldon Core v1's port for a custom model container
KSERVE_CONTAINER = "kserve-container"  # the name KServe looks for in a custom predictor
TOKEN_DIR = "/etc/maestrale/serve-tokens"  # where `token_secret` is mounted (key `tokens`)
#: Annotation listing the objects a manifest needs from the cluster, `Kind/name,…` (the chart's
#: ConfigMap and Secret): `maestrale deploy validate` takes them as existing and says so.
REQUIRES = "maestrale.io/requires"


@dataclass(frozen=True, slots=True)
class RenderOptions:
    """What a rendering may change; every field has a working default except `storage_uri`.

    >>> RenderOptions(replicas=2).replicas
    2
    """

    image: str = pod.DEFAULT_IMAGE
    namespace: str | None = None
    replicas: int = 1
    cpu: str = "250m"
    memory: str = "512Mi"
    config_map: str = pod.DEFAULT_CONFIG_MAP
    secret: str = pod.DEFAULT_SECRET
    storage_uri: str | None = None  # Seldon Core v2: the folder that holds model-settings.json
    auth: bool = True  # bearer tokens on `maestrale serve`; off only behind a gateway that checks them
    token_secret: str | None = None  # a Secret whose key `tokens` is the token file (else the token store)
    grpc_port: int | None = None  # also V2 over gRPC (`maestrale serve --grpc-port`) on this port, e.g. 8081


def resource_name(ref: ModelRef) -> str:
    """The Kubernetes name of a reference's resources: `pv-forecast`, `pv-forecast-challenger`, `pv-v3`.

    >>> resource_name(ModelRef.parse("pv_50@champion"))
    'pv-50'
    """
    if ref.version is not None:
        return pod.k8s_name(f"{ref.name}-v{ref.version}")
    return pod.k8s_name(ref.name if ref.alias == DEFAULT_ALIAS else f"{ref.name}-{ref.alias}")


def _metadata(ref: ModelRef, name: str, opts: RenderOptions) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if opts.namespace:
        meta["namespace"] = opts.namespace
    meta["labels"] = _labels(ref, name)
    meta["annotations"] = {"maestrale.io/ref": str(ref)}
    return meta


def _labels(ref: ModelRef, name: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "maestrale",
        "app.kubernetes.io/instance": name,
        "app.kubernetes.io/component": "model-server",
        "app.kubernetes.io/managed-by": "maestrale-deploy-render",
        "maestrale.io/model": pod.k8s_name(ref.name),
    }


def serve_container(
    ref: ModelRef, name: str, port: int, opts: RenderOptions, *, named_port: bool = True
) -> dict[str, Any]:
    """The container running `maestrale serve REF` on `port`, with probes and a read-only root.

    `named_port=False` for Knative (KServe), which only accepts the port names http1 and h2c.
    With `opts.grpc_port`, the server also serves V2 gRPC there, a second port named `grpc`.
    """
    port_spec: dict[str, Any] = {"containerPort": port, "protocol": "TCP"}
    if named_port:
        port_spec = {"name": "http", **port_spec}
    ports = [port_spec]
    auth = "on" if opts.auth else "off"
    args = ["serve", str(ref), "--host", "0.0.0.0", "--port", str(port), "--auth", auth]
    if opts.grpc_port is not None:
        args += ["--grpc-port", str(opts.grpc_port)]
        ports.append({"name": "grpc", "containerPort": opts.grpc_port, "protocol": "TCP"})
    mounts = pod.writable_mounts()
    if opts.auth and opts.token_secret:
        args += ["--token-file", f"{TOKEN_DIR}/tokens"]
        mounts.append({"name": "serve-tokens", "mountPath": TOKEN_DIR, "readOnly": True})
    return {
        "name": name,
        "image": opts.image,
        "imagePullPolicy": "IfNotPresent",
        "args": args,
        "ports": ports,
        "env": pod.base_env(),
        "envFrom": pod.env_from(opts.config_map, opts.secret),
        **pod.serving_probes("http" if named_port else port),
        "resources": pod.resources(opts.cpu, opts.memory),
        "securityContext": pod.container_security_context(),
        "volumeMounts": mounts,
    }


def _pod_spec(
    containers: list[dict[str, Any]], opts: RenderOptions, *, pod_context: bool = True
) -> dict[str, Any]:
    spec: dict[str, Any] = {"automountServiceAccountToken": False}
    if pod_context:
        spec["securityContext"] = pod.pod_security_context()
    spec["terminationGracePeriodSeconds"] = 30
    spec["containers"] = containers
    spec["volumes"] = pod.writable_volumes()
    if opts.auth and opts.token_secret:
        # a whole-volume mount (no subPath), so the kubelet updates the file when the Secret rotates
        secret = {"secretName": opts.token_secret, "items": [{"key": "tokens", "path": "tokens"}]}
        spec["volumes"].append({"name": "serve-tokens", "secret": secret})
    return spec


def render_k8s(ref: ModelRef, opts: RenderOptions) -> list[dict[str, Any]]:
    """A Deployment running `maestrale serve` and a ClusterIP Service on port 8080."""
    name = resource_name(ref)
    selector = {"app.kubernetes.io/name": "maestrale", "app.kubernetes.io/instance": name}
    port = pod.SERVE_PORT
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(ref, name, opts),
        "spec": {
            "replicas": opts.replicas,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": {
                "metadata": {
                    "labels": _labels(ref, name),
                    "annotations": {
                        "maestrale.io/ref": str(ref),
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": _pod_spec([serve_container(ref, "serve", port, opts)], opts),
            },
        },
    }
    service: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(ref, name, opts),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    if opts.grpc_port is not None:  # h2c: gRPC in cleartext, so meshes and gateways proxy HTTP/2
        grpc = {"name": "grpc", "port": opts.grpc_port, "targetPort": "grpc", "protocol": "TCP"}
        service["spec"]["ports"].append({**grpc, "appProtocol": "kubernetes.io/h2c"})
    return [deployment, service]


def mlserver_settings(ref: ModelRef) -> dict[str, Any]:
    """MLServer's model-settings.json for the Maestrale runtime (loads `ref` from the registry)."""
    return {
        "name": resource_name(ref),
        "implementation": MLSERVER_RUNTIME,
        "parameters": {"extra": {"ref": str(ref)}},
    }


def render_seldon(ref: ModelRef, opts: RenderOptions) -> list[dict[str, Any]]:
    """A Seldon Core v2 `Model` and a ConfigMap holding its model-settings.json.

    Seldon v2 loads a model from `storageUri`, the folder where model-settings.json must be
    uploaded (the ConfigMap carries the file so it is reviewed and versioned with the Model). It
    schedules the model on a Server advertising the `maestrale` capability: an MLServer whose
    image has `maestrale[mlserver]` installed and whose environment has the MAESTRALE_* settings.
    """
    if not opts.storage_uri:
        raise InvalidInput(
            "--storage-uri is required for --target seldon: the folder Seldon loads "
            "model-settings.json from (e.g. s3://models/seldon/pv-forecast)"
        )
    name = resource_name(ref)
    model = {
        "apiVersion": "mlops.seldon.io/v1alpha1",
        "kind": "Model",
        "metadata": _metadata(ref, name, opts),
        "spec": {
            "storageUri": opts.storage_uri,
            "requirements": [SELDON_CAPABILITY],
            "memory": opts.memory,
            "replicas": opts.replicas,
        },
    }
    settings = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(ref, f"{name}-model-settings", opts),
        "data": {"model-settings.json": json.dumps(mlserver_settings(ref), indent=2) + "\n"},
    }
    return [model, settings]


def render_seldon_v1(ref: ModelRef, opts: RenderOptions) -> list[dict[str, Any]]:
    """A Seldon Core v1 `SeldonDeployment`: one MODEL node, a custom container speaking V2."""
    name = resource_name(ref)
    container = serve_container(ref, name, SELDON_V1_PORT, opts)
    return [
        {
            "apiVersion": "machinelearning.seldon.io/v1",
            "kind": "SeldonDeployment",
            "metadata": _metadata(ref, name, opts),
            "spec": {
                "protocol": "v2",
                "predictors": [
                    {
                        "name": "default",
                        "replicas": opts.replicas,
                        "componentSpecs": [{"spec": _pod_spec([container], opts)}],
                        "graph": {
                            "name": name,  # a graph node is matched to the container of the same name
                            "type": "MODEL",
                            "endpoint": _seldon_v1_endpoint(opts),
                            "children": [],
                        },
                    }
                ],
            },
        }
    ]


def _seldon_v1_endpoint(opts: RenderOptions) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"type": "REST", "httpPort": SELDON_V1_PORT}
    if opts.grpc_port is not None:  # Seldon's executor and Service expose it beside REST
        endpoint["grpcPort"] = opts.grpc_port
    return endpoint


def render_kserve(ref: ModelRef, opts: RenderOptions) -> list[dict[str, Any]]:
    """A KServe `InferenceService` with a custom predictor container on port 8080, protocol v2.

    KServe reads the protocol of a custom container from its PROTOCOL variable. The predictor
    keeps to what Knative (KServe's default, serverless mode) accepts without feature flags: the
    security settings sit on the container, as the pod-level securityContext needs a flag. The
    /tmp emptyDir needs Knative's `kubernetes.podspec-volumes-emptydir` extension enabled (OpenShift
    Serverless asks for it explicitly), or KServe's RawDeployment mode, which has none of these limits.

    With `opts.grpc_port`, the predictor exposes the gRPC port instead of 8080, named `h2c` (HTTP/2
    cleartext, Knative's name for gRPC): KServe routes one port per predictor, HTTP or gRPC, not both.
    The server still answers HTTP on 8080 inside the pod, where the probes go (a probe on another
    port than the served one needs Knative 1.3 or later, or RawDeployment mode).
    """
    name = resource_name(ref)
    container = serve_container(ref, KSERVE_CONTAINER, pod.SERVE_PORT, opts, named_port=False)
    container["env"] = [{"name": "PROTOCOL", "value": "v2"}, *container["env"]]
    if opts.grpc_port is not None:
        container["ports"] = [{"name": "h2c", "containerPort": opts.grpc_port, "protocol": "TCP"}]
    # Knative's pod spec subset has no startupProbe nor terminationGracePeriodSeconds (the
    # revision timeout sets it): a delayed liveness probe gives the model time to load instead.
    del container["startupProbe"]
    container["livenessProbe"].update(initialDelaySeconds=30, failureThreshold=6)
    predictor: dict[str, Any] = {"minReplicas": opts.replicas}
    predictor.update(_pod_spec([container], opts, pod_context=False))
    del predictor["terminationGracePeriodSeconds"]
    return [
        {
            "apiVersion": "serving.kserve.io/v1beta1",
            "kind": "InferenceService",
            "metadata": _metadata(ref, name, opts),
            "spec": {"predictor": predictor},
        }
    ]


_RENDERERS: dict[str, Callable[[ModelRef, RenderOptions], list[dict[str, Any]]]] = {
    "k8s": render_k8s,
    "seldon": render_seldon,
    "seldon-v1": render_seldon_v1,
    "kserve": render_kserve,
}


def render(ref: str | ModelRef, target: str, **options: Any) -> list[dict[str, Any]]:
    """Render the manifests serving `ref` for `target` (one of `TARGETS`); options: `RenderOptions`.

    >>> render("pv@champion", "kserve")[0]["spec"]["predictor"]["containers"][0]["args"][:2]
    ['serve', 'pv@champion']
    """
    if target not in _RENDERERS:
        raise InvalidInput(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    parsed = ModelRef.parse(ref)
    opts = replace(RenderOptions(), **{k: v for k, v in options.items() if v is not None})
    if opts.replicas < 0:
        raise InvalidInput(f"--replicas must be 0 or more, not {opts.replicas}")
    _check_grpc_port(target, opts.grpc_port)
    docs = _RENDERERS[target](parsed, opts)
    for doc in docs:
        if doc["kind"] in _SERVING_KINDS:
            doc["metadata"]["annotations"][REQUIRES] = ",".join(requirements(opts))
    return docs


def _check_grpc_port(target: str, port: int | None) -> None:
    if port is None:
        return
    if target == "seldon":
        raise InvalidInput(
            "--grpc-port does not apply to --target seldon: Seldon Core v2 serves gRPC through its own "
            "MLServer and mesh; use it with k8s, seldon-v1 or kserve"
        )
    taken = SELDON_V1_PORT if target == "seldon-v1" else pod.SERVE_PORT
    if not 1 <= port <= 65535 or port == taken:
        raise InvalidInput(
            f"--grpc-port {port} must be a port from 1 to 65535 other than the HTTP port {taken}, e.g. 8081"
        )


_SERVING_KINDS = {"Deployment", "SeldonDeployment", "InferenceService"}  # those with a pod template


def requirements(opts: RenderOptions) -> list[str]:
    """`Kind/name` of what the model server's pods read but the rendering does not create.

    >>> requirements(RenderOptions())
    ['ConfigMap/maestrale-config', 'Secret/maestrale-secrets']
    """
    needed = [f"ConfigMap/{opts.config_map}", f"Secret/{opts.secret}"]
    if opts.auth and opts.token_secret:
        needed.append(f"Secret/{opts.token_secret}")
    return needed


def to_yaml(docs: Sequence[dict[str, Any]]) -> str:
    """A multi-document YAML stream, keys in the order written (apiVersion, kind, metadata, spec)."""
    return "---\n".join(yaml.safe_dump(d, sort_keys=False, default_flow_style=False) for d in docs)
