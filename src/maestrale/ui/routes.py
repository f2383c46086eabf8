"""Mounts the web UI on the REST app: every page module's router, the vendored assets, the error page.

Each module of `maestrale.ui.pages` exposes a `router`; adding a page is adding a module.

>>> install(app)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from fastapi import FastAPI
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from maestrale.ui import pages
from maestrale.ui.web import HERE, render_error


class _Static(StaticFiles):
    """The vendored assets, with headers a browser can cache and CSP-safe content types."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["X-Content-Type-Options"] = "nosniff"
        # file names carry no hash, so let browsers revalidate (ETag) rather than cache for ever
        response.headers["Cache-Control"] = "public, max-age=300, must-revalidate"
        return response


def install(app: FastAPI) -> None:
    """Add the UI's pages, `/ui/static/...` and the HTML error page to `app`."""
    for info in sorted(pkgutil.iter_modules(pages.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{pages.__name__}.{info.name}")
        app.include_router(module.router, include_in_schema=False)
    app.mount("/ui/static", _Static(directory=HERE / "static"), name="ui-static")
    app.state.html_errors = render_error
