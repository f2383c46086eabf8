"""The Helm chart `deploy/helm/maestrale`, rendered by Helm's own engine and validated offline.

Helm comes from the `helm-python-sdk` wheel (Helm 4's Go SDK behind ctypes; `Chart.render` is
what `helm template` runs, values schema included). Every rendered manifest is validated as
in test_deploy_render.py: strict Kubernetes 1.29 schemas, CRD schemas, references, security.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from maestrale.bus.transport import get_transport
from maestrale.deploy import pod
from maestrale.training.worker import QUEUE

pytest.importorskip("kubernetes_validate", reason="needs the dev extra (kubernetes-validate)")
helm = pytest.importorskip("helm_python", reason="needs the dev extra (helm-python-sdk)")
from maestrale.deploy.validate import load_documents, pod_specs, validate_documents  # noqa: E402

CHART = Path(__file__).resolve().parents[2] / "deploy" / "helm" / "maestrale"
EXISTING = {"secrets": {"existingSecret": "prod-credentials"}}
CREATED = {
    "secrets": {
        "values": {
            "databaseUrl": "postgresql+psycopg://maestrale:pw@postgres:5432/maestrale",
            "brokerUrl": "amqp://maestrale:pw@rabbitmq:5672/prod",
            "storageOptions": '{"connection_string": "DefaultEndpointsProtocol=https;..."}',
        }
    }
}
SERVERS = {
    "modelServers": [
        {"name": "pv-nrel-50", "ref": "pv-nrel-50@champion", "replicas": 2},
        {"name": "wind", "ref": "wind-farm:3", "resources": {"requests": {"cpu": "1", "memory": "1Gi"}}},
    ],
    "monitor": {"policies": {"pv.yaml": "name: pv\nmodels: ['pv-*']\n"}},
}


def helm_template(values: dict[str, Any], release: str = "maestrale") -> list[dict[str, Any]]:
    """What `helm template RELEASE CHART -n ml -f values.yaml` prints, as manifests (hooks included)."""
    with helm.Chart.load(str(CHART)) as chart:
        rendered = chart.render(values, name=release, namespace="ml", is_install=True)
    text = "".join(f"---\n# Source: {k}\n{v}\n" for k, v in sorted(rendered.items()) if k.endswith(".yaml"))
    return load_documents(text)


def _merge(*parts: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            out[key] = _merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def _by(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


SCENARIOS = {
    "existing-secret, keda on": (EXISTING, {("Secret", "prod-credentials")}),
    "chart secret, keda off": (_merge(CREATED, {"workers": {"keda": {"enabled": False}}}), set()),
    "model servers and policies": (_merge(EXISTING, SERVERS), {("Secret", "prod-credentials")}),
    "no migration, no relay": (
        _merge(CREATED, {"migration": {"enabled": False}, "relay": {"enabled": False}}),
        set(),
    ),
}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_rendered_manifest_validates(scenario: str) -> None:
    values, external = SCENARIOS[scenario]
    docs = helm_template(values)
    assert validate_documents(docs, external=external) == []
    assert _by(docs, "Deployment"), "nothing rendered"


def test_defaults_alone_ask_for_the_credentials() -> None:
    with pytest.raises(helm.HelmError, match="the database URL is missing: set secrets.existingSecret"):
        helm_template({})


def test_keda_scales_workers_on_the_training_queue() -> None:
    docs = helm_template(_merge(EXISTING, {"config": {"busNamespace": "prod"}}))
    (so,) = _by(docs, "ScaledObject").values()
    (auth,) = _by(docs, "TriggerAuthentication").values()
    (trigger,) = so["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == get_transport("memory://", "prod").queue_name(QUEUE)
    assert trigger["metadata"]["mode"] == "QueueLength"
    assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
    assert auth["spec"]["secretTargetRef"] == [
        {"parameter": "host", "name": "prod-credentials", "key": "MAESTRALE_BROKER_URL"}
    ]
    worker = _by(docs, "Deployment")[so["spec"]["scaleTargetRef"]["name"]]
    assert "replicas" not in worker["spec"]  # KEDA owns it; an upgrade must not reset it
    assert worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 900


def test_without_keda_workers_have_a_fixed_count() -> None:
    docs = helm_template(_merge(EXISTING, {"workers": {"replicas": 3, "keda": {"enabled": False}}}))
    assert not _by(docs, "ScaledObject") and not _by(docs, "TriggerAuthentication")
    assert _by(docs, "Deployment")["maestrale-worker"]["spec"]["replicas"] == 3


def _container(docs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    (container,) = _by(docs, "Deployment")[name]["spec"]["template"]["spec"]["containers"]
    return container


def test_probes_use_the_real_endpoints() -> None:
    docs = helm_template(_merge(EXISTING, SERVERS))
    api = _container(docs, "maestrale-api")
    assert api["args"][:5] == ["server", "--host", "0.0.0.0", "--port", "8080"]
    assert api["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert api["readinessProbe"]["httpGet"]["path"] == "/readyz"
    serve = _container(docs, "maestrale-serve-pv-nrel-50")
    assert serve["args"][:2] == ["serve", "pv-nrel-50@champion"]
    assert serve["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert serve["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert _by(docs, "Deployment")["maestrale-serve-pv-nrel-50"]["spec"]["replicas"] == 2
    wind = _container(docs, "maestrale-serve-wind")
    assert wind["args"][1] == "wind-farm:3"
    assert wind["resources"]["requests"] == {"cpu": "1", "memory": "1Gi"}
    assert wind["resources"]["limits"] == {"memory": "1Gi"}  # the default, merged
    assert set(_by(docs, "Service")) == {
        "maestrale-api",
        "maestrale-serve-pv-nrel-50",
        "maestrale-serve-wind",
    }
    monitor = _container(docs, "maestrale-monitor")
    assert monitor["args"][-2:] == ["--policy", "/etc/maestrale/policies/pv.yaml"]
    assert "--no-relay" in monitor["args"]  # the relay Deployment publishes the outbox


def test_model_servers_require_tokens() -> None:
    docs = helm_template(_merge(EXISTING, SERVERS))
    serve = _container(docs, "maestrale-serve-pv-nrel-50")
    assert serve["args"][-2:] == ["--auth", "on"]  # the registry's token store (MAESTRALE_DATABASE_URL)
    config = _by(docs, "ConfigMap")["maestrale-config"]["data"]
    assert (config["MAESTRALE_MAX_BODY_MB"], config["MAESTRALE_SERVE_MAX_BODY_MB"]) == ("16", "32")
    values = _merge(EXISTING, SERVERS, {"modelServerDefaults": {"tokenSecret": "serve-tokens"}})
    docs = helm_template(values)
    external = {("Secret", "prod-credentials"), ("Secret", "serve-tokens")}
    assert validate_documents(docs, external=external) == []
    spec = _by(docs, "Deployment")["maestrale-serve-wind"]["spec"]["template"]["spec"]
    (serve,) = spec["containers"]
    assert serve["args"][-4:] == ["--auth", "on", "--token-file", "/etc/maestrale/serve-tokens/tokens"]
    mount = {"name": "serve-tokens", "mountPath": "/etc/maestrale/serve-tokens", "readOnly": True}
    assert mount in serve["volumeMounts"]
    secret = {"secretName": "serve-tokens", "items": [{"key": "tokens", "path": "tokens"}]}
    assert {"name": "serve-tokens", "secret": secret} in spec["volumes"]
    servers = [{**SERVERS["modelServers"][0], "auth": False}]
    (serve,) = _by(helm_template(_merge(EXISTING, {"modelServers": servers})), "Deployment")[
        "maestrale-serve-pv-nrel-50"
    ]["spec"]["template"]["spec"]["containers"]
    assert serve["args"][-2:] == ["--auth", "off"]


def test_model_servers_expose_grpc_when_asked() -> None:
    servers = [{**SERVERS["modelServers"][0], "grpcPort": 8081}]
    docs = helm_template(_merge(EXISTING, {"modelServers": servers}))
    assert validate_documents(docs, external={("Secret", "prod-credentials")}) == []
    serve = _container(docs, "maestrale-serve-pv-nrel-50")
    assert serve["args"][-2:] == ["--grpc-port", "8081"]
    assert {"name": "grpc", "containerPort": 8081, "protocol": "TCP"} in serve["ports"]
    ports = _by(docs, "Service")["maestrale-serve-pv-nrel-50"]["spec"]["ports"]
    named = [(p["name"], p["port"], p["targetPort"]) for p in ports]
    assert named == [("http", 8080, "http"), ("grpc", 8081, "grpc")]
    assert ports[1]["appProtocol"] == "kubernetes.io/h2c"  # as `deploy render` writes it
    default = _container(helm_template(_merge(EXISTING, SERVERS)), "maestrale-serve-pv-nrel-50")
    assert "--grpc-port" not in default["args"] and len(default["ports"]) == 1


def test_every_pod_has_the_renderers_security_settings() -> None:
    docs = helm_template(_merge(CREATED, SERVERS))
    specs = [(where, spec) for d in docs for where, spec in pod_specs(d)]
    assert len(specs) == 7  # api, worker, monitor, relay, 2 model servers, migration job
    for where, spec in specs:
        assert spec["securityContext"] == pod.pod_security_context(), where
        assert spec["automountServiceAccountToken"] is False, where
        assert {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}} in spec["volumes"], where
        for c in spec["containers"]:
            assert c["securityContext"] == pod.container_security_context(), where
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"], where
            assert {"name": "MAESTRALE_HOME", "value": pod.HOME_DIR} in c["env"], where
            assert "limits" in c["resources"] and "requests" in c["resources"], where


def test_secrets_stay_out_of_the_config_map() -> None:
    docs = helm_template(CREATED)
    config = _by(docs, "ConfigMap")["maestrale-config"]["data"]
    assert config["MAESTRALE_STORAGE_URL"] == "abfs://models/prod"
    assert config["MAESTRALE_AUTO_UPGRADE"] == "false"  # the migration hook owns the schema
    assert not any("pw@" in v for v in config.values())
    secret = _by(docs, "Secret")["maestrale-secrets"]["stringData"]
    assert secret["MAESTRALE_DATABASE_URL"].startswith("postgresql+psycopg://maestrale:pw@")
    env = {e["name"]: e for e in _container(docs, "maestrale-api")["env"]}
    assert env["MAESTRALE_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "maestrale-secrets"
    assert env["MAESTRALE_TOKEN"]["valueFrom"]["secretKeyRef"]["optional"] is True


def test_migration_runs_as_a_hook_before_the_pods() -> None:
    docs = helm_template(CREATED)
    job = _by(docs, "Job")["maestrale-migrate"]
    hook = job["metadata"]["annotations"]
    assert hook["helm.sh/hook"] == "pre-install,pre-upgrade"
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["db", "upgrade"]
    # hooks run before the release's Secret exists: the Job reads a hook copy made just before it
    ref = container["env"][-1]["valueFrom"]["secretKeyRef"]
    copy = _by(docs, "Secret")[ref["name"]]["metadata"]["annotations"]
    assert copy["helm.sh/hook"] == hook["helm.sh/hook"]
    assert int(copy["helm.sh/hook-weight"]) < int(hook["helm.sh/hook-weight"])
    assert "serviceAccountName" not in job["spec"]["template"]["spec"]  # the chart's is not there yet
    existing = _by(helm_template(EXISTING), "Job")["maestrale-migrate"]
    (container,) = existing["spec"]["template"]["spec"]["containers"]
    assert container["env"][-1]["valueFrom"]["secretKeyRef"]["name"] == "prod-credentials"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"workers": {"keda": {"enable": True}}}, "additional properties 'enable' not allowed"),
        ({"modelServers": [{"name": "PV", "ref": "pv@champion"}]}, "/modelServers/0/name"),
        ({"modelServers": [{"name": "pv", "ref": "pv@@x"}]}, "/modelServers/0/ref"),
        ({"config": {"storageUrl": "ftp://x"}}, "/config/storageUrl"),
    ],
)
def test_values_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message):
        helm_template(_merge(EXISTING, values))


def test_values_yaml_matches_its_schema_without_helm() -> None:
    from jsonschema import Draft7Validator

    schema = json.loads((CHART / "values.schema.json").read_text())
    Draft7Validator.check_schema(schema)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(Draft7Validator(schema).iter_errors(values)) == []


def test_helm_lint_is_clean() -> None:
    report = helm.lint(str(CHART), EXISTING, strict=True, kube_version="v1.29.0")
    assert report["errors"] == []
    # severity: 1 info, 2 warning, 3 error; the only info is "icon is recommended"
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
