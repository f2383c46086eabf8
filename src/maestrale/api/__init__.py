"""REST API (FastAPI): registry endpoints under /api/v1, health, Prometheus metrics, token auth."""
