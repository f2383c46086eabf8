"""`maestrale serve NAME@ALIAS …`: the V2 model server from the shell."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from maestrale.cli.output import note, say, table


class AuthMode(StrEnum):
    """`--auth`: bearer tokens on, off, or on whenever the server listens beyond loopback."""

    auto = "auto"
    on = "on"
    off = "off"


def serve(
    refs: Annotated[
        list[str],
        typer.Argument(
            metavar="NAME@ALIAS...", help="Models to serve: NAME@ALIAS follows the alias, NAME:V is pinned."
        ),
    ],
    host: Annotated[str, typer.Option("--host", help="Interface to bind; 0.0.0.0 for all.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=1,
            max=65535,
            help="TCP port. 8000, not the 8080 of `maestrale server`, so that a registry server and "
            "model servers run side by side on one machine; in a pod (Helm chart, `deploy render`) "
            "the port is always given.",
        ),
    ] = 8000,
    log: Annotated[
        bool, typer.Option("--log/--no-log", help="Log predictions and their inputs to the monitor (bus).")
    ] = True,
    reload_poll: Annotated[
        float, typer.Option("--reload-poll", min=0, help="Seconds between alias checks (0: bus events only).")
    ] = 30.0,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            help="Server processes sharing --port and --grpc-port (SO_REUSEPORT; Linux), 1 to 4 per CPU, "
            "under a supervisor that restarts a dead one; each loads, reloads and logs on its own.",
        ),
    ] = 1,
    grpc_port: Annotated[
        int | None,
        typer.Option(
            "--grpc-port",
            min=1,
            max=65535,
            help="Also serve V2 over gRPC (inference.GRPCInferenceService) on this port, e.g. 8081; "
            "off when not given. Needs maestrale[grpc].",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option("--log-level", help="uvicorn log level.")] = "info",
    trust_type: Annotated[
        list[str] | None,
        typer.Option("--trust-type", help="A custom class (module.Class) the artifacts may contain; repeat."),
    ] = None,
    auth: Annotated[
        AuthMode | None,
        typer.Option(
            "--auth",
            help="Bearer tokens: auto (on unless --host is loopback), on or off [MAESTRALE_SERVE_AUTH].",
        ),
    ] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="A file of tokens, one per line, instead of the token store [MAESTRALE_SERVE_TOKEN_FILE].",
        ),
    ] = None,
) -> None:
    """Serve registered models over the Open Inference Protocol (V2), reloading them when promoted.

    Endpoints: /v2/health/ready, /v2/models/NAME, POST /v2/models/NAME/infer (JSON or binary tensors),
    POST /models/NAME/predict (plain JSON records) and /metrics; with --grpc-port, the V2 gRPC service.
    Each worker consumes `maestrale.model.promoted` on a queue of its
    own and polls the alias every --reload-poll seconds; predictions go to the monitor over the bus.

    Beyond loopback, inference needs a bearer token with scope predict (from `maestrale token create
    NAME --scope predict`, or a line of --token-file); health and /metrics stay open.

    Example: maestrale serve pv-nrel-50@champion --host 0.0.0.0 --port 8000
    """
    from maestrale.errors import ConfigError

    try:
        import uvicorn

        from maestrale.serving.app import create_app
        from maestrale.serving.auth import describe, resolve_auth
        from maestrale.serving.workers import Supervisor, check_workers, ensure_free, worker_env
    except ImportError as exc:
        raise ConfigError(
            f"`maestrale serve` needs the server extra ({exc.name} is missing): "
            "pip install 'maestrale[server]'"
        ) from None
    from maestrale.config import load_settings

    check_workers(workers)
    # the flags win over MAESTRALE_SERVE_AUTH and MAESTRALE_SERVE_TOKEN_FILE
    settings = load_settings(serve_auth=auth.value if auth else None, serve_token_file=token_file)
    enabled = resolve_auth(settings.serve_auth, host)
    poll = reload_poll or None
    if settings.broker_url.startswith("memory"):
        note(
            "MAESTRALE_BROKER_URL is memory://: promotions made by other processes arrive through the "
            "alias poll only, and logged predictions reach no monitor (set amqp://… to connect both)"
        )
    if workers == 1:
        if grpc_port is not None:  # grpc binds with SO_REUSEPORT: it would share a port in use, not fail
            ensure_free(host, grpc_port, "--grpc-port")
        app = create_app(
            settings, refs, log_predictions=log, reload_poll_s=poll, trusted_types=trust_type or None,
            auth=enabled, host=host, grpc_port=grpc_port,
        )  # fmt: skip
        tokens = app.state.auth
        served = [app.state.repository.get(n) for n in app.state.repository.names()]
        rows = [[s.name, _follows(s.alias, s.version), s.version, s.sha256[:12]] for s in served]
    else:  # each worker loads its own copy; resolve here only to say what they will serve
        tokens, rows = _plan_workers(settings, refs, host, (port, grpc_port), enabled)
    table("serving", ["model", "follows", "version", "sha256"], rows)
    say(describe(tokens))
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    say(f"serving on http://{shown}:{port}/v2 (V2 inference: POST /v2/models/NAME/infer)")
    if grpc_port is not None:
        say(f"serving V2 gRPC on {shown}:{grpc_port} (inference.GRPCInferenceService)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, log_level=log_level)
        return
    say(f"{workers} workers share the port(s) (SO_REUSEPORT); each loads, reloads and logs on its own")
    env = worker_env(
        refs=refs, host=host, port=port, grpc_port=grpc_port, log=log, reload_poll=reload_poll,
        trust_types=trust_type or [], auth=enabled, log_level=log_level,
        token_file=None if settings.serve_token_file is None else str(settings.serve_token_file),
    )  # fmt: skip
    code = Supervisor(workers, env, say=note).run()
    if code:
        raise typer.Exit(code)


def _plan_workers(
    settings: Any, refs: list[str], host: str, ports: tuple[int, int | None], enabled: bool
) -> tuple[Any, list[list[Any]]]:
    """Before any worker starts: the ports free, the token source readable, the models' rows to show."""
    from maestrale.refs import ModelRef
    from maestrale.registry.client import Registry
    from maestrale.serving.auth import token_source
    from maestrale.serving.workers import ensure_free

    for p, option in zip(ports, ("--port", "--grpc-port"), strict=True):
        if p is not None:  # SO_REUSEPORT would let the workers join a server already there
            ensure_free(host, p, option)
    tokens = token_source(settings) if enabled else None  # a missing source fails here, once
    reg = Registry(settings=settings)
    parsed = [ModelRef.parse(r) for r in refs]
    metas = [reg.get_version(str(r)) for r in parsed]
    rows = [[m.name, _follows(r.alias, m.version), m.version, m.artifact.sha256[:12]]
            for r, m in zip(parsed, metas, strict=True)]  # fmt: skip
    return tokens, rows


def _follows(alias: str | None, version: int) -> str:
    return f"@{alias}" if alias else f":{version} (pinned)"


def register(app: typer.Typer) -> None:
    """Attach `serve` to the root app."""
    app.command("serve")(serve)
