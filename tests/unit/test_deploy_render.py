"""`maestrale deploy render`: every target validates offline, and the validator is not a no-op.

Core kinds are checked with kubernetes-validate (strict, Kubernetes 1.29), the CRDs with the JSON
Schemas in `maestrale/deploy/schemas`, plus cross-references and security contexts.
"""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from maestrale.cli.main import app
from maestrale.deploy import pod
from maestrale.deploy.render import MLSERVER_RUNTIME, TARGETS, render, to_yaml
from maestrale.errors import InvalidInput

pytest.importorskip("kubernetes_validate", reason="needs the dev extra (kubernetes-validate)")
from maestrale.deploy.validate import (
    check_references,
    check_security,
    load_documents,
    pod_specs,
    validate_document,
    validate_documents,
)

CHART_OBJECTS = {("ConfigMap", pod.DEFAULT_CONFIG_MAP), ("Secret", pod.DEFAULT_SECRET)}
OPTIONS: dict[str, Any] = {"image": "registry.local/maestrale:0.1.0", "namespace": "forecasting"}


def _render(target: str, ref: str = "pv-nrel-50@champion", **extra: Any) -> list[dict[str, Any]]:
    storage = {"storage_uri": "s3://models/seldon/pv-nrel-50"} if target == "seldon" else {}
    return render(ref, target, **OPTIONS, **storage, **extra)


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for _, spec in pod_specs(doc) for c in spec.get("containers", [])]


@pytest.mark.parametrize("target", TARGETS)
def test_every_target_validates(target: str) -> None:
    docs = _render(target)
    assert validate_documents(docs, external=CHART_OBJECTS) == []
    assert all(d["metadata"]["namespace"] == "forecasting" for d in docs)
    # the YAML we print is the YAML we validated
    assert load_documents(to_yaml(docs)) == docs


@pytest.mark.parametrize("target", ["k8s", "seldon-v1", "kserve"])
def test_model_server_container(target: str) -> None:
    (container,) = [c for d in _render(target, replicas=3) for c in _containers(d)]
    args = container["args"]
    assert args[:2] == ["serve", "pv-nrel-50@champion"]
    assert args[args.index("--host") + 1] == "0.0.0.0"
    port = int(args[args.index("--port") + 1])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["livenessProbe"]["httpGet"]["path"] == "/v2/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/v2/health/ready"
    assert container["image"] == OPTIONS["image"]
    assert container["securityContext"] == pod.container_security_context()
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]
    assert args[args.index("--auth") + 1] == "on"  # it listens beyond loopback: tokens, always


@pytest.mark.parametrize("target", ["k8s", "seldon-v1", "kserve"])
def test_model_server_tokens_from_a_mounted_secret(target: str) -> None:
    docs = _render(target, token_secret="serve-tokens")
    assert validate_documents(docs, external=CHART_OBJECTS) == []
    [(_, spec)] = [s for d in docs for s in pod_specs(d)]
    (container,) = spec["containers"]
    assert container["args"][-2:] == ["--token-file", "/etc/maestrale/serve-tokens/tokens"]
    mount = {"name": "serve-tokens", "mountPath": "/etc/maestrale/serve-tokens", "readOnly": True}
    assert mount in container["volumeMounts"]  # the whole volume, no subPath: rotations reach the pod
    volume = {"secretName": "serve-tokens", "items": [{"key": "tokens", "path": "tokens"}]}
    assert {"name": "serve-tokens", "secret": volume} in spec["volumes"]
    (off,) = [c for d in _render(target, auth=False) for c in _containers(d)]
    assert off["args"][-2:] == ["--auth", "off"]


def test_kserve_custom_predictor_speaks_v2_on_8080() -> None:
    (isvc,) = _render("kserve", replicas=2)
    predictor = isvc["spec"]["predictor"]
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert {"name": "PROTOCOL", "value": "v2"} in container["env"]
    assert container["ports"] == [{"containerPort": 8080, "protocol": "TCP"}]
    assert predictor["minReplicas"] == 2
    assert "securityContext" not in predictor  # Knative: the container carries it all
    # fields Knative's pod spec subset refuses
    assert "startupProbe" not in container and "terminationGracePeriodSeconds" not in predictor


def test_seldon_v2_model_and_mlserver_settings() -> None:
    model, settings = _render("seldon", replicas=2, memory="1Gi")
    assert model["spec"] == {
        "storageUri": "s3://models/seldon/pv-nrel-50",
        "requirements": ["maestrale"],
        "memory": "1Gi",
        "replicas": 2,
    }
    content = json.loads(settings["data"]["model-settings.json"])
    assert content["implementation"] == MLSERVER_RUNTIME
    assert content["parameters"]["extra"]["ref"] == "pv-nrel-50@champion"
    assert content["name"] == model["metadata"]["name"]


def test_the_mlserver_runtime_class_exists() -> None:
    module, _, cls = MLSERVER_RUNTIME.rpartition(".")
    try:  # the module imports mlserver: find and read it, do not import it
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        pytest.skip(f"{module} is not in this tree yet")
    tree = ast.parse(Path(spec.origin).read_text())
    assert cls in {n.name for n in tree.body if isinstance(n, ast.ClassDef)}


def test_seldon_v2_needs_a_storage_uri() -> None:
    with pytest.raises(InvalidInput, match="--storage-uri is required"):
        render("pv@champion", "seldon")


def test_seldon_v1_graph_node_matches_its_container() -> None:
    (sdep,) = _render("seldon-v1")
    predictor = sdep["spec"]["predictors"][0]
    (container,) = predictor["componentSpecs"][0]["spec"]["containers"]
    assert sdep["spec"]["protocol"] == "v2"
    assert predictor["graph"]["name"] == container["name"]
    assert predictor["graph"]["type"] == "MODEL"
    assert predictor["graph"]["endpoint"]["httpPort"] == container["ports"][0]["containerPort"]


@pytest.mark.parametrize(
    ("ref", "name"),
    [
        ("pv-nrel-50@champion", "pv-nrel-50"),
        ("pv-nrel-50", "pv-nrel-50"),
        ("pv-nrel-50@challenger", "pv-nrel-50-challenger"),
        ("pv_site.50:3", "pv-site-50-v3"),
        ("50kw@champion", "m-50kw"),
    ],
)
def test_resource_names_are_dns_labels(ref: str, name: str) -> None:
    docs = _render("kserve", ref)
    assert docs[0]["metadata"]["name"] == name
    assert validate_documents(docs, external=CHART_OBJECTS) == []


def test_long_names_are_cut_without_collisions() -> None:
    a, b = pod.k8s_name("x" * 100 + "a"), pod.k8s_name("x" * 100 + "b")
    assert len(a) == len(b) == 63 and a != b


@pytest.mark.parametrize(
    ("ref", "target", "message"),
    [
        ("PV!", "k8s", "invalid model name"),
        ("pv@champion", "docker", "unknown target 'docker'"),
    ],
)
def test_bad_input_is_refused(ref: str, target: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        render(ref, target)


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of `doc` with `value` at a dotted path (list indexes as numbers)."""
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value
    return doc


def _drop(doc: dict[str, Any], path: str) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    *parents, last = path.split(".")
    node: Any = doc
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    del node[last]
    return doc


_C = "spec.template.spec.containers.0"
_SDEP_C = "spec.predictors.0.componentSpecs.0.spec.containers.0"


@pytest.mark.parametrize(
    ("target", "index", "mutate", "expected"),
    [
        ("k8s", 0, lambda d: _set(d, f"{_C}.imagePulPolicy", "Always"), "'imagePulPolicy' was unexpected"),
        ("k8s", 0, lambda d: _set(d, "spec.replicas", "two"), "is not of type"),
        ("k8s", 0, lambda d: _drop(d, f"{_C}.name"), "'name' is a required property"),
        ("k8s", 1, lambda d: _set(d, "spec.ports.0.port", "http"), "is not of type"),
        ("k8s", 1, lambda d: _set(d, "spec.selectors", {}), "'selectors' was unexpected"),
        ("seldon", 0, lambda d: _set(d, "spec.storageURI", "s3://x"), "'storageURI' was unexpected"),
        ("seldon", 0, lambda d: _drop(d, "spec.storageUri"), "'storageUri' is a required property"),
        ("seldon", 0, lambda d: _set(d, "spec.replicas", -1), "less than the minimum"),
        ("seldon-v1", 0, lambda d: _set(d, "spec.predictors.0.graph.typ", "MODEL"), "'typ' was unexpected"),
        ("seldon-v1", 0, lambda d: _set(d, "spec.protocol", "v3"), "is not one of"),
        ("seldon-v1", 0, lambda d: _set(d, f"{_SDEP_C}.livenesProbe", {}), "'livenesProbe' was unexpected"),
        ("kserve", 0, lambda d: _set(d, "spec.predictor.minReplica", 1), "'minReplica' was unexpected"),
        ("kserve", 0, lambda d: _set(d, "spec.predictor.containers.0.env.0.value", "v3"), "is not one of"),
        ("kserve", 0, lambda d: _set(d, "metadata.name", "50kw"), "does not match"),
        ("kserve", 0, lambda d: _set(d, "spec.predictor.containers", []), "is not valid under any"),
    ],
)
def test_a_typo_fails_validation(target: str, index: int, mutate: Any, expected: str) -> None:
    doc = _render(target)[index]
    assert validate_document(doc) == []
    problems = validate_document(mutate(doc))
    assert problems and any(expected in p for p in problems), problems


def test_unknown_kinds_are_reported_not_passed() -> None:
    doc = {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}}
    assert validate_document(doc) == [
        "Widget/w: no schema for Widget example.com/v1: cannot be validated offline"
    ]


def test_references_are_checked() -> None:
    deployment, service = _render("k8s")
    assert check_references([deployment, service]) != []  # the chart's ConfigMap and Secret are absent
    broken = _set(deployment, "spec.template.metadata.labels", {"app": "other"})
    broken = _set(broken, f"{_C}.volumeMounts.0.name", "scratch")
    broken = _set(broken, f"{_C}.readinessProbe.httpGet.port", "web")
    problems = "\n".join(check_references([broken, service], CHART_OBJECTS))
    assert "selector does not match the pod template's labels" in problems
    assert "volumeMount 'scratch' has no volume" in problems
    assert "readinessProbe port 'web' is no container port name" in problems
    assert "Service/pv-nrel-50: selector matches no pod template" in problems


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("readOnlyRootFilesystem", False, "readOnlyRootFilesystem must be true"),
        ("runAsNonRoot", None, "runAsNonRoot must be true"),
        ("allowPrivilegeEscalation", True, "allowPrivilegeEscalation must be false"),
        ("capabilities", {"drop": ["NET_RAW"]}, "drop must include ALL"),
        ("seccompProfile", {"type": "Unconfined"}, "seccompProfile must be RuntimeDefault"),
    ],
)
def test_security_contexts_are_checked(field: str, value: Any, message: str) -> None:
    for target in ("k8s", "seldon-v1", "kserve"):
        doc = _render(target)[0]
        assert check_security([doc]) == []
        (container,) = _containers(doc)
        container["securityContext"][field] = value
        if field == "seccompProfile":
            next(pod_specs(doc))[1].pop("securityContext", None)
        assert any(message in p for p in check_security([doc])), target


@pytest.fixture
def home_with_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An embedded registry (MAESTRALE_HOME) where pv-nrel-50@champion exists."""
    import numpy as np
    from sklearn.linear_model import Ridge

    from maestrale import Registry

    home = tmp_path / "home"
    for var in ("MAESTRALE_DATABASE_URL", "MAESTRALE_STORAGE_URL", "MAESTRALE_REGISTRY_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("MAESTRALE_HOME", str(home))
    reg = Registry(database_url=f"sqlite:///{home}/registry.db", storage_url=(home / "artifacts").as_uri())
    X = np.arange(20.0).reshape(10, 2)
    mv = reg.register("pv-nrel-50", Ridge().fit(X, X.sum(axis=1)))
    reg.set_alias("pv-nrel-50", "champion", mv.version)
    return home


@pytest.mark.parametrize("target", TARGETS)
def test_cli_validate_accepts_what_render_prints(target: str, home_with_model: Path) -> None:
    runner = CliRunner()
    seldon = ["--storage-uri", "s3://models/seldon/pv-nrel-50"] if target == "seldon" else []
    rendered = runner.invoke(app, ["deploy", "render", "pv-nrel-50@champion", "-t", target, *seldon])
    assert rendered.exit_code == 0, rendered.output
    out = home_with_model.parent / f"{target}.yaml"
    out.write_text(rendered.stdout)
    # no --external: the manifests name the chart's ConfigMap and Secret they need, and validate says so
    result = runner.invoke(app, ["deploy", "validate", str(out)])
    assert result.exit_code == 0, result.output
    assert "valid against Kubernetes 1.29" in result.stdout
    if target != "seldon":  # the Seldon v2 Model has no pods: it reads nothing from the cluster
        assert "taken as existing in the cluster: ConfigMap/maestrale-config, Secret/maestrale-secrets" in (
            result.stderr
        )


def test_cli_render_then_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "isvc.yaml"
    result = runner.invoke(
        app,
        ["deploy", "render", "pv-nrel-50@champion", "-t", "kserve", "--replicas", "2", "-o", str(out),
         "--no-check"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "InferenceService/pv-nrel-50" in result.output
    result = runner.invoke(app, ["deploy", "validate", str(out)])
    assert result.exit_code == 0, result.output
    out.write_text(out.read_text().replace("minReplicas:", "minReplica:"))
    result = runner.invoke(app, ["deploy", "validate", str(out)])
    assert result.exit_code == 1
    assert "'minReplica' was unexpected" in result.output
    # a reference the manifests neither contain nor declare is still a problem
    out.write_text(out.read_text().replace("name: maestrale-secrets", "name: other-secrets"))
    result = runner.invoke(app, ["deploy", "validate", str(out), "--json"])
    assert result.exit_code == 1 and "Secret 'other-secrets' not found" in result.output


def test_cli_validate_refuses_an_empty_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    result = CliRunner().invoke(app, ["deploy", "validate", str(empty)])
    assert result.exit_code == 1 and "no manifests in" in result.stderr


def test_cli_render_refuses_an_unknown_model(home_with_model: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "render", "pv-other@champion"])
    assert result.exit_code == 1
    assert "'pv-other' not found" in result.stderr and "--no-check" in result.stderr
    result = runner.invoke(app, ["deploy", "render", "pv-nrel-50@challenger"])
    assert result.exit_code == 1 and "no alias 'challenger'" in result.stderr
    assert runner.invoke(app, ["deploy", "render", "pv-other@champion", "--no-check"]).exit_code == 0


def test_cli_render_to_stdout_and_errors() -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["deploy", "render", "pv@champion", "--no-check"])
    assert result.exit_code == 0
    assert [d["kind"] for d in load_documents(result.stdout)] == ["Deployment", "Service"]
    result = runner.invoke(app, ["deploy", "render", "pv@champion", "--target", "seldon", "--no-check"])
    assert result.exit_code == 1
    assert "--storage-uri is required" in result.output


@pytest.mark.parametrize("target", ["k8s", "seldon-v1", "kserve"])
def test_the_grpc_port_is_exposed_when_asked(target: str) -> None:
    docs = _render(target, grpc_port=8081)
    assert validate_documents(docs, external=CHART_OBJECTS) == []
    (container,) = [c for d in docs for c in _containers(d)]
    assert container["args"][-2:] == ["--grpc-port", "8081"]
    http = int(container["args"][container["args"].index("--port") + 1])
    assert container["readinessProbe"]["httpGet"]["port"] in ("http", http)  # probes stay on HTTP
    if target == "kserve":  # one port per predictor: gRPC's, under Knative's name for HTTP/2 cleartext
        assert container["ports"] == [{"name": "h2c", "containerPort": 8081, "protocol": "TCP"}]
        return
    assert container["ports"][1:] == [{"name": "grpc", "containerPort": 8081, "protocol": "TCP"}]
    if target == "k8s":
        service = docs[1]["spec"]["ports"]
        assert [(p["name"], p["port"], p["targetPort"]) for p in service] == [
            ("http", 8080, "http"),
            ("grpc", 8081, "grpc"),
        ]
        assert service[1]["appProtocol"] == "kubernetes.io/h2c"
    else:  # Seldon Core v1: the graph node's endpoint names both ports
        graph = docs[0]["spec"]["predictors"][0]["graph"]
        assert graph["endpoint"] == {"type": "REST", "httpPort": 9000, "grpcPort": 8081}
    # the validator checks the Service against the container: a renamed port is caught
    if target == "k8s":
        docs[0]["spec"]["template"]["spec"]["containers"][0]["ports"][1]["name"] = "grcp"
        assert validate_documents(docs, external=CHART_OBJECTS) == [
            "Service/pv-nrel-50: targetPort 'grpc' is no container port name"
        ]


@pytest.mark.parametrize("target", ["k8s", "seldon-v1", "kserve"])
def test_without_a_grpc_port_there_is_none(target: str) -> None:
    docs = _render(target)
    text = to_yaml(docs)
    assert "grpc" not in text.lower() and "h2c" not in text


@pytest.mark.parametrize(
    ("target", "port", "message"),
    [
        ("seldon", 8081, "--grpc-port does not apply to --target seldon: Seldon Core v2 serves gRPC"),
        (
            "k8s",
            8080,
            "--grpc-port 8080 must be a port from 1 to 65535 other than the HTTP port 8080, e.g. 8081",
        ),
        ("kserve", 70000, "--grpc-port 70000 must be a port from 1 to 65535"),
        ("seldon-v1", 9000, "other than the HTTP port 9000"),
    ],
)
def test_a_grpc_port_that_cannot_work_is_refused(target: str, port: int, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(")):
        _render(target, grpc_port=port)


def test_cli_render_with_grpc_then_validate(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "k8s.yaml"
    cmd = ["deploy", "render", "pv-nrel-50@champion", "--grpc-port", "8081", "-o", str(out), "--no-check"]
    result = runner.invoke(app, cmd)
    assert result.exit_code == 0, result.output
    assert "appProtocol: kubernetes.io/h2c" in out.read_text()
    result = runner.invoke(app, ["deploy", "validate", str(out)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, [*cmd[:-3], "-t", "seldon", "--storage-uri", "s3://m/pv", "--no-check"])
    assert result.exit_code == 1 and "--grpc-port does not apply to --target seldon" in result.output
