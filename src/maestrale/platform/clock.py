"""The one clock of stored times: timezone-aware UTC, and the zone SQLite drops restored on read.

>>> from datetime import datetime
>>> aware(datetime(2024, 6, 1, 12)).isoformat()
'2024-06-01T12:00:00+00:00'
"""

from __future__ import annotations

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Timezone-aware now, the only clock the stores use."""
    return datetime.now(UTC)


def aware(dt: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything is stored in UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
