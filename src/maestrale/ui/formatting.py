"""Jinja2 filters: numbers, times and states the way the UI shows them (one place, every page).

>>> num(0.041234), num(None), pct(1.4), ago(None)
('0.04123', '–', '+40.0%', '–')
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any


def num(value: Any, digits: int = 4) -> str:
    """A figure with `digits` significant digits; '–' for missing or non-finite."""
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "–" if value is None or isinstance(value, int | float) else str(value)
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:.{digits}g}" if abs(value) < 10**digits else f"{value:,.0f}"


def pct(ratio: Any) -> str:
    """A ratio to a reference as a change: 1.4 -> '+40.0%'."""
    if not isinstance(ratio, int | float) or not math.isfinite(ratio):
        return "–"
    return f"{(ratio - 1) * 100:+.1f}%"


def when(value: Any) -> str:
    """A UTC time, minutes precision: '2026-12-05 11:30Z'."""
    if not isinstance(value, datetime):
        return "–" if value is None else str(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%MZ")


def ago(value: Any, now: datetime | None = None) -> str:
    """How long ago: '3 h ago', '12 d ago'."""
    if not isinstance(value, datetime):
        return "–"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    seconds = ((now or datetime.now(UTC)) - value).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f} {unit} ago"
    return "just now"


def iso(value: Any) -> str:
    """A time for a machine (data attributes, sorting): ISO 8601 UTC."""
    if not isinstance(value, datetime):
        return ""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat()


def with_query(query: dict[str, Any], **changes: Any) -> str:
    """A query string from `query` with `changes` applied; empty and false values are left out.

    >>> with_query({"name": "pv", "sort": "model", "desc": False}, sort="nmae", desc=True)
    '?name=pv&sort=nmae&desc=true'
    """
    from urllib.parse import urlencode

    merged = {**query, **changes}
    pairs = [(k, "true" if v is True else str(v)) for k, v in merged.items() if v not in (None, "", False)]
    return "?" + urlencode(pairs) if pairs else "?"


FILTERS = {"num": num, "pct": pct, "when": when, "ago": ago, "iso": iso, "with_query": with_query}
