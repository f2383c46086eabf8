"""The Maestrale REST API application.

>>> from maestrale.api.app import create_app
>>> app = create_app()  # MAESTRALE_* settings; serve with `maestrale server`  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest
from sqlalchemy import text
from starlette.middleware import Middleware

from maestrale import __version__
from maestrale.api import audit as audit_routes
from maestrale.api import fleet as fleet_routes
from maestrale.api import monitoring as monitoring_routes
from maestrale.api import registry as registry_routes
from maestrale.api import tokens as token_routes
from maestrale.api import trainings as training_routes
from maestrale.api.errors import install_error_handlers, reject_nul
from maestrale.api.monitoring_metrics import metrics_registry
from maestrale.api.search_lane import SearchLane
from maestrale.api.telemetry import REGISTRY, MetricsMiddleware
from maestrale.asgi import BodyLimit, BodyLimitMiddleware
from maestrale.config import Settings, load_settings
from maestrale.errors import BackendUnavailable
from maestrale.monitoring.store import MonitorStore
from maestrale.platform.db import ensure_schema, exclusive_lock
from maestrale.registry.artifacts import ArtifactStore
from maestrale.registry.store import SqlStore
from maestrale.tokens import TokenCache, create_token, list_tokens

log = logging.getLogger("maestrale.api")
VERSIONS = Gauge("maestrale_registry_versions", "Model versions in the registry", registry=REGISTRY)


def bootstrap_admin_token(settings: Settings) -> Path | None:
    """On a server's first start, create an admin token and store it (mode 0600) under MAESTRALE_HOME."""
    assert settings.database_url
    path = settings.home / "admin.token"
    if not settings.auth:
        return None
    # several pods may start at once on an empty database: only one creates the token
    # (schema first: the upgrade takes the same lock, and flock is not re-entrant)
    engine = ensure_schema(settings.database_url, settings.auto_upgrade)
    with exclusive_lock(engine):
        if list_tokens(settings.database_url):
            return None
        token = create_token(settings.database_url, "admin", "admin", created_by="bootstrap")
    settings.home.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    os.chmod(path, 0o600)  # in case the file existed with looser bits
    return path


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the API on the configured database and storage; raises at once if either is unreachable."""
    settings = settings or load_settings()
    assert settings.database_url and settings.storage_url
    store = SqlStore(settings.database_url, settings.auto_upgrade)
    artifacts = ArtifactStore(settings.storage_url, settings.storage_options)
    artifacts.check()
    token_file = bootstrap_admin_token(settings)
    if token_file:
        log.warning("created an admin token in %s (mode 0600)", token_file)

    app = FastAPI(
        title="Maestrale",
        version=__version__,
        description="Model registry, training, monitoring and serving for energy-forecasting fleets.",
        openapi_url="/openapi.json",
        dependencies=[Depends(reject_nul)],
    )
    app.state.settings = settings
    app.state.store = store
    app.state.artifacts = artifacts
    app.state.tokens = TokenCache(settings.database_url)
    app.state.admin_token_file = token_file
    app.state.monitor_store = MonitorStore(settings.database_url, auto_upgrade=settings.auto_upgrade)
    # per app, not in the process-wide REGISTRY: each app scrapes its own database
    monitor_metrics = metrics_registry(app.state.monitor_store)
    # Added before the metrics so that they wrap it: a 413 is counted like any other response.
    # Artifact uploads stream to a spool file under their own, larger limit.
    uploads = BodyLimit.from_mb(settings.max_upload_mb, "MAESTRALE_MAX_UPLOAD_MB")
    app.add_middleware(
        BodyLimitMiddleware, limit=BodyLimit.from_mb(settings.max_body_mb, "MAESTRALE_MAX_BODY_MB"),
        respond=lambda message: _error(413, "too_large", message), per_path={"/api/v1/artifacts": uploads},
    )  # fmt: skip
    app.add_middleware(MetricsMiddleware)

    install_error_handlers(app)
    # innermost, inside the 500 envelope and the metrics: the search's fast lane (api/search_lane.py)
    app.user_middleware.append(Middleware(SearchLane))

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> Any:
        """Readiness: the database and the storage answer."""
        try:
            with store.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            artifacts.check()
        except (BackendUnavailable, Exception) as exc:
            return _error(503, "unavailable", f"not ready: {exc}")
        return {"status": "ready"}

    @app.get("/metrics", tags=["health"], response_class=PlainTextResponse)
    def metrics() -> PlainTextResponse:
        """Prometheus metrics."""
        VERSIONS.set(store.count_versions())
        body = generate_latest(REGISTRY) + generate_latest(monitor_metrics)
        return PlainTextResponse(body, media_type=CONTENT_TYPE_LATEST)

    app.include_router(registry_routes.router)
    app.include_router(token_routes.router)
    app.include_router(training_routes.router)
    app.include_router(monitoring_routes.router)
    app.include_router(fleet_routes.router)
    app.include_router(audit_routes.router, prefix="/api/v1")
    if settings.ui:
        from maestrale.ui.routes import install as install_ui

        install_ui(app)  # the web UI at `/`, on the same stores and tokens
    return app
