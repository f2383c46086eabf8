"""The web UI: the team's window on the fleet, served by `maestrale server` at `/`.

Server-rendered pages (Jinja2) over the same services as the REST API (`maestrale.api`), with htmx
for live parts and uPlot for the charts, every script and style vendored in `static/` (no CDN: plant
networks are often air-gapped). Sign-in takes a token and sets a session cookie; see
`maestrale.ui.web` for the session and CSRF rules and docs/ui.md for the pages.

>>> from maestrale.ui.routes import install
>>> install(app)  # on the REST app: `maestrale server` does this  # doctest: +SKIP
"""
