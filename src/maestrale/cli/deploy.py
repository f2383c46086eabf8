"""`maestrale deploy render|validate`: manifests that serve a model, and their offline validation.

The commands import what they need inside their bodies, so `maestrale --help` stays fast.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["deploy", "render", "pv@champion", "-t", "kserve", "--no-check"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from maestrale.cli.models import RegistryUrl, Token, open_registry
from maestrale.cli.output import JsonFlag, error, note, print_json, say, usage_error

deploy_app = typer.Typer(
    help="Deploy models: render Kubernetes, Seldon Core or KServe manifests; validate manifests offline.",
    no_args_is_help=True,
)


def render(
    ref: Annotated[
        str,
        typer.Argument(metavar="NAME@ALIAS", help="The model to serve (NAME, NAME@ALIAS or NAME:VERSION)."),
    ],
    target: Annotated[
        str,
        typer.Option(
            "--target",
            "-t",
            help="k8s (Deployment + Service), seldon (Seldon Core v2 Model), seldon-v1 "
            "(SeldonDeployment) or kserve (InferenceService).",
        ),
    ] = "k8s",
    image: Annotated[str | None, typer.Option(help="Container image with maestrale installed.")] = None,
    namespace: Annotated[str | None, typer.Option("--namespace", help="metadata.namespace.")] = None,
    replicas: Annotated[int, typer.Option(min=0, help="Model server replicas.")] = 1,
    cpu: Annotated[str, typer.Option(help="CPU request.")] = "250m",
    memory: Annotated[str, typer.Option(help="Memory request and limit (Seldon v2: spec.memory).")] = "512Mi",
    config_map: Annotated[
        str, typer.Option(help="ConfigMap with the non-secret MAESTRALE_* settings (the chart's).")
    ] = "maestrale-config",
    secret: Annotated[
        str, typer.Option(help="Secret with MAESTRALE_DATABASE_URL and the other credentials (the chart's).")
    ] = "maestrale-secrets",
    storage_uri: Annotated[
        str | None,
        typer.Option(help="Seldon v2 only: the folder Seldon loads model-settings.json from."),
    ] = None,
    auth: Annotated[
        bool,
        typer.Option(
            "--auth/--no-auth", help="Bearer tokens on the model server (--no-auth: a gateway checks them)."
        ),
    ] = True,
    token_secret: Annotated[
        str | None,
        typer.Option(
            help="A Secret whose key `tokens` is the token file (default: the registry's token store)."
        ),
    ] = None,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            help="Also serve V2 over gRPC on this port, e.g. 8081: a container and Service port named grpc "
            "(kserve: the predictor's one port, named h2c; seldon-v1: the graph's grpcPort).",
        ),
    ] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write to FILE, not stdout.")] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check/--no-check",
            help="Check that the model resolves in the registry (--registry, else the embedded one) first; "
            "--no-check renders for a registry this machine cannot reach.",
        ),
    ] = True,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Print the manifests that serve NAME@ALIAS with `maestrale serve` (V2 protocol).

    Every target runs the image as a non-root user on a read-only root filesystem, with /tmp on
    an emptyDir, and probes /v2/health/live and /v2/health/ready. The pods read their settings
    from the ConfigMap and Secret of the Helm chart (release `maestrale`), or those you name.

    Example: `maestrale deploy render pv-forecast@champion -t kserve --image reg/maestrale:0.1.0 -o isvc.yaml`
    """
    from maestrale.deploy.render import render as render_docs
    from maestrale.deploy.render import to_yaml
    from maestrale.errors import NotFound

    if check:  # a manifest for a model that does not exist deploys a pod that never gets ready
        try:
            open_registry(registry, token).get_version(ref)
        except NotFound as exc:
            hint = "or pass --no-check if the cluster's registry is another"
            raise NotFound(f"{exc.message}; {hint}") from None
    docs = render_docs(
        ref,
        target,
        image=image,
        namespace=namespace,
        replicas=replicas,
        cpu=cpu,
        memory=memory,
        config_map=config_map,
        secret=secret,
        storage_uri=storage_uri,
        auth=auth,
        token_secret=token_secret,
        grpc_port=grpc_port,
    )
    text = to_yaml(docs)
    if output is None:
        typer.echo(text, nl=False)
        return
    output.write_text(text)
    say(f"wrote {', '.join(d['kind'] + '/' + d['metadata']['name'] for d in docs)} to {output}")


def validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="YAML manifests ('-' for stdin).")],
    kubernetes_version: Annotated[
        str, typer.Option("--kubernetes-version", "-k", help="Kubernetes schema version.")
    ] = "1.29",
    external: Annotated[
        list[str] | None,
        typer.Option(
            "--external",
            metavar="KIND/NAME",
            help="An object that exists outside these files, e.g. Secret/maestrale-secrets (repeatable).",
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Validate manifests offline: strict Kubernetes schemas, CRD schemas, references, security.

    Needs the dev extra (kubernetes-validate, jsonschema). Exit 1 when there are problems.

    Example: `helm template m deploy/helm/maestrale | maestrale deploy validate -`
    """
    import sys

    from maestrale.deploy.validate import declared_external, load_documents, validate_documents

    docs = []
    for f in files:
        docs += load_documents(sys.stdin.read() if str(f) == "-" else f.read_text())
    if not docs:
        from maestrale.errors import InvalidInput

        raise InvalidInput(
            f"no manifests in {', '.join(map(str, files))}: the input is empty (did the command "
            "that wrote it fail?)"
        )
    bad = [e for e in external or [] if "/" not in e]
    if bad:
        raise usage_error(f"--external {bad[0]!r}: write KIND/NAME, e.g. Secret/maestrale-secrets")
    pairs = {(kind, name) for kind, _, name in (e.partition("/") for e in external or [])}
    problems = validate_documents(docs, kubernetes_version, external=pairs)
    assumed = sorted(f"{k}/{n}" for k, n in declared_external(docs) | pairs)
    if as_json:
        print_json({"documents": len(docs), "problems": problems, "assumed": assumed})
    elif not problems:
        say(f"{len(docs)} manifest(s) valid against Kubernetes {kubernetes_version} and the CRD schemas")
        if assumed:
            note(f"taken as existing in the cluster: {', '.join(assumed)}")
    for p in problems if not as_json else []:
        error(p)
    if problems:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Attach `maestrale deploy …` to the root app."""
    deploy_app.command("render")(render)
    deploy_app.command("validate")(validate)
    app.add_typer(deploy_app, name="deploy")
