"""The pod pieces every Maestrale workload shares: names, security contexts, probes, writable dirs.

The Helm chart (`deploy/helm/maestrale`) writes the same settings in its templates; the tests
check both against each other, so a change here that the chart does not follow fails a test.

>>> k8s_name("pv_nrel.50")
'pv-nrel-50'
>>> container_security_context()["readOnlyRootFilesystem"]
True
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

# The image's non-root user (deploy/docker/Dockerfile): fixed ids so `runAsNonRoot` can be verified.
USER_ID = 10001
# Writable places on a read-only root filesystem: Python, the training fork server and
# tempfile need /tmp; MAESTRALE_HOME holds the admin token the server writes on its first start.
TMP_DIR = "/tmp"
HOME_DIR = "/var/lib/maestrale"
DEFAULT_IMAGE = "ghcr.io/maestrale/maestrale:0.1.0"
DEFAULT_CONFIG_MAP = "maestrale-config"
DEFAULT_SECRET = "maestrale-secrets"
SERVE_PORT = 8080
_LABEL = re.compile(r"[^a-z0-9-]+")


def k8s_name(text: str, limit: int = 63) -> str:
    """A DNS-1035 label from a model name: what Services, containers and InferenceServices accept.

    Model names may hold '.' and '_' and start with a digit; Kubernetes names may not. Long names
    are cut and given a hash suffix, so two long names never collide.

    >>> k8s_name("50-kw-site")
    'm-50-kw-site'
    """
    name = _LABEL.sub("-", text.lower()).strip("-") or "model"
    if not name[0].isalpha():
        name = f"m-{name}"
    if len(name) > limit:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        name = f"{name[: limit - 9].rstrip('-')}-{digest}"
    return name


def pod_security_context() -> dict[str, Any]:
    """Pod-level context: non-root user and group, RuntimeDefault seccomp.

    >>> pod_security_context()["runAsNonRoot"]
    True
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "fsGroup": USER_ID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> dict[str, Any]:
    """Container-level context, complete on its own (Knative, under KServe, allows only this level).

    >>> container_security_context()["capabilities"]
    {'drop': ['ALL']}
    """
    return {
        "runAsNonRoot": True,
        "runAsUser": USER_ID,
        "runAsGroup": USER_ID,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def writable_volumes() -> list[dict[str, Any]]:
    """emptyDir volumes for /tmp and MAESTRALE_HOME (the root filesystem is read-only)."""
    return [
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        {"name": "home", "emptyDir": {"sizeLimit": "256Mi"}},
    ]


def writable_mounts() -> list[dict[str, Any]]:
    """Mounts matching `writable_volumes()`."""
    return [{"name": "tmp", "mountPath": TMP_DIR}, {"name": "home", "mountPath": HOME_DIR}]


def http_probe(path: str, port: int | str, *, delay: int, period: int = 10, failures: int = 3) -> dict:
    """An HTTP GET probe.

    >>> http_probe("/v2/health/live", 8080, delay=5)["httpGet"]
    {'path': '/v2/health/live', 'port': 8080}
    """
    return {
        "httpGet": {"path": path, "port": port},
        "initialDelaySeconds": delay,
        "periodSeconds": period,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def serving_probes(port: int | str) -> dict[str, dict[str, Any]]:
    """Probes of `maestrale serve` (V2): live once the process answers, ready once the model is loaded.

    The startup probe gives a large model up to 5 minutes to load before liveness counts.
    """
    return {
        "startupProbe": http_probe("/v2/health/live", port, delay=5, period=5, failures=60),
        "livenessProbe": http_probe("/v2/health/live", port, delay=0, period=10, failures=3),
        "readinessProbe": http_probe("/v2/health/ready", port, delay=0, period=5, failures=3),
    }


def resources(cpu: str, memory: str) -> dict[str, Any]:
    """Requests with a memory limit equal to the request and no CPU limit (no throttling).

    >>> resources("250m", "512Mi")
    {'requests': {'cpu': '250m', 'memory': '512Mi'}, 'limits': {'memory': '512Mi'}}
    """
    return {"requests": {"cpu": cpu, "memory": memory}, "limits": {"memory": memory}}


def base_env() -> list[dict[str, str]]:
    """Environment every container gets: MAESTRALE_HOME on its emptyDir, unbuffered logs."""
    return [
        {"name": "MAESTRALE_HOME", "value": HOME_DIR},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
    ]


def env_from(config_map: str, secret: str) -> list[dict[str, Any]]:
    """The chart's ConfigMap (non-secret MAESTRALE_* values) and Secret (URLs with credentials)."""
    return [{"configMapRef": {"name": config_map}}, {"secretRef": {"name": secret}}]
