"""One time-zone rule for every time Maestrale reads: times with an offset are kept, naive ones need a zone.

>>> [str(t) for t in parse_times(["2024-10-27T01:30:00+02:00", "2024-10-27T01:30:00Z"])]
['2024-10-26 23:30:00+00:00', '2024-10-27 01:30:00+00:00']
>>> [str(t) for t in parse_times(["2024-10-27 02:00", "2024-10-27 02:00"], timezone="Europe/Rome")]
['2024-10-27 02:00:00+02:00', '2024-10-27 02:00:00+01:00']

Training data (`timezone:` / `time_format:` in the spec), `maestrale monitor import` (`--timezone`,
`--time-format`), `log_predictions(..., timezone=)` / `log_actuals`, and the time input of a served
model all go through `parse_times`, so they accept and refuse the same values:

- a time written with an offset (`2024-06-01T12:00:00+02:00`, `…Z`) or a tz-aware datetime is exact,
  and is converted to `timezone` when one is given;
- a naive time is refused unless `timezone` says which zone it was written in; it is then localized.
  The hour repeated when daylight saving time ends (02:00–02:59 twice on the last Sunday of October in
  Europe/Rome) is resolved by order (`ambiguous="infer"`): in a series sorted by time, the first
  occurrence is summer time and the second winter time, so no row is merged or lost. A repeated hour
  whose order cannot tell (a single row, unsorted rows) is an error, as is a time inside the hour
  skipped in March (the clock that wrote it was not on local time);
- strings are ISO 8601 unless `time_format` gives their strftime pattern (`"%d/%m/%Y %H:%M"`).

Every refusal is a `TimeParseError` (an `InvalidInput` and a `ValueError`) whose message names the
value, where it is, and how to fix it. pandas is imported on first use, not with this module.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    import pandas as pd

#: What to tell a caller whose times have no zone, by default (callers pass their own `zone_fix`).
ZONE_FIX = "pass timezone='Europe/Rome' (the zone the times were written in) or write them with an offset"
#: What to tell a caller whose strings are not ISO 8601, by default (callers pass their own `format_fix`).
FORMAT_FIX = "pass time_format='%d/%m/%Y %H:%M' (strftime codes) or write ISO 8601"

_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")
_ZONE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,3}$")
# a string that carries its own zone: Z, +hh, +hhmm or +hh:mm right after its time of day
_HAS_OFFSET = re.compile(r"\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)\s*$")
_DAY_FIRST = re.compile(r"^\s*\d{1,2}[/.-]\d{1,2}[/.-]\d{4}")


class TimeParseError(InvalidInput, ValueError):
    """Times that cannot be read as exact instants; the message names the value and the fix."""


def check_timezone(name: str) -> str:
    """`name` if it is an IANA zone (`Europe/Rome`, `UTC`) or a fixed offset (`+01:00`); else TimeParseError.

    >>> check_timezone("Europe/Rome"), check_timezone("+01:00")
    ('Europe/Rome', '+01:00')
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    how = "use an IANA name such as Europe/Rome or UTC, or a fixed offset such as +01:00"
    if not isinstance(name, str) or not name:
        raise TimeParseError(f"time zone {name!r} is not a name: {how}")
    if _OFFSET.match(name):
        hours, minutes = int(name[1:3]), int(name[4:6])
        if hours > 14 or minutes > 59:
            raise TimeParseError(f"time zone offset {name!r} is out of range (-14:00..+14:00): {how}")
        return name
    if not _ZONE_NAME.match(name) or ".." in name:
        raise TimeParseError(f"time zone {name!r} is not a zone name: {how}")
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise TimeParseError(f"unknown time zone {name!r}: {how}") from None
    return name


def parse_times(
    values: Any,
    *,
    timezone: str | None = None,
    time_format: str | None = None,
    what: str = "the time column",
    zone_fix: str = ZONE_FIX,
    format_fix: str = FORMAT_FIX,
) -> pd.DatetimeIndex:
    """Exact instants (a tz-aware `DatetimeIndex`, ns) from strings, datetimes or a datetime column.

    `timezone` is the zone naive values were written in, and the zone of the result; without it the
    result keeps the values' own zone (UTC when their offsets differ, as across a DST change).
    `time_format` is the strftime pattern of string values (default ISO 8601). `what` names the values
    in messages (`"column 'time' of data.csv"`); `zone_fix` / `format_fix` say how *this* caller
    declares a zone or a format (a spec field, a CLI option, a keyword).

    >>> parse_times(["13/01/2024 10:00"], time_format="%d/%m/%Y %H:%M", timezone="Europe/Rome")[0]
    Timestamp('2024-01-13 10:00:00+0100', tz='Europe/Rome')
    >>> parse_times(["2024-01-13T10:00"], what="column 'time' of pv.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    maestrale.timeparse.TimeParseError: column 'time' of pv.csv has no time zone (e.g. '2024-01-13T10:00')...
    """
    import numpy as np

    tz = None if timezone is None else check_timezone(timezone)
    index = _parse(values, time_format, what, format_fix)
    if len(index) and (missing := index.isna()).any():
        first = int(missing.argmax())
        raise TimeParseError(
            f"{what} has {int(np.asarray(missing).sum())} missing time(s) (first at row {first}): drop those "
            "rows or fill the time"
        )
    if index.tz is None:
        if tz is None:
            example = f" (e.g. {_shown(values, 0)!r})" if len(index) else ""
            raise TimeParseError(f"{what} has no time zone{example}: {zone_fix}")
        index = _localize(index, tz, what)
    elif tz is not None:
        index = index.tz_convert(tz)
    return index.as_unit("ns")


def _parse(values: Any, time_format: str | None, what: str, format_fix: str) -> pd.DatetimeIndex:
    """The values as a DatetimeIndex (naive or aware, NaT for missing), or TimeParseError."""
    import pandas as pd

    if isinstance(values, str | datetime | date | pd.Timestamp):
        values = [values]
    if isinstance(values, pd.DatetimeIndex):
        return values
    dtype = getattr(values, "dtype", None)
    if dtype is not None and (
        isinstance(dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(dtype)
    ):
        return pd.DatetimeIndex(values)
    series = pd.Series(list(values) if not isinstance(values, pd.Series | pd.Index) else values.to_numpy())
    if series.dtype.kind in "iufb":
        raise TimeParseError(
            f"{what} holds numbers, not times (e.g. {series.iloc[0]}): write ISO 8601 strings such as "
            "2024-06-01T12:00:00+02:00, or convert epoch seconds first "
            "(pd.to_datetime(x, unit='s', utc=True))"
        )
    fmt = time_format or "ISO8601"
    try:
        return pd.DatetimeIndex(pd.to_datetime(series, format=fmt))
    except (ValueError, TypeError, OverflowError):
        pass  # a value in another format, or offsets that differ (a DST change): find out which
    coerced = pd.to_datetime(series, format=fmt, utc=True, errors="coerce")
    bad = coerced.isna() & series.notna() & (series.astype(str).str.strip() != "")
    if bad.any():
        i = int(bad.to_numpy().argmax())
        raise TimeParseError(_format_message(what, series.iloc[i], i, time_format, format_fix))
    zoned = [_has_zone(v) for v in series if not _missing(v)]
    if all(zoned):
        return pd.DatetimeIndex(coerced)  # every value is exact: their common frame is UTC
    naive = next(v for v in series if not _missing(v) and not _has_zone(v))
    aware = next(v for v in series if not _missing(v) and _has_zone(v))
    raise TimeParseError(
        f"{what} mixes times with and without a time zone (e.g. {str(naive)!r} and {str(aware)!r}): write "
        "every time with an offset, or none and declare the zone they were written in"
    )


def _format_message(what: str, value: Any, row: int, time_format: str | None, format_fix: str) -> str:
    expected = f"in time_format {time_format!r}" if time_format else "ISO 8601 timestamps"
    hint = ""
    if time_format is None and isinstance(value, str) and _DAY_FIRST.match(value):
        hint = " (it looks like day/month/year)"
    return (
        f"{what} holds values that are not {expected}: {str(value)!r} at row {row}{hint}; {format_fix}, "
        "e.g. 2024-01-13T10:00:00+01:00"
    )


def _has_zone(value: Any) -> bool:
    if isinstance(value, str):
        return bool(_HAS_OFFSET.search(value))
    return getattr(value, "tzinfo", None) is not None


def _missing(value: Any) -> bool:
    return (
        value is None
        or (isinstance(value, float) and value != value)
        or (isinstance(value, str) and not value.strip())
    )


def _shown(values: Any, i: int) -> str:
    try:
        return str(list(values)[i]) if not isinstance(values, str | datetime | date) else str(values)
    except (TypeError, IndexError):
        return "?"


def _localize(index: pd.DatetimeIndex, tz: str, what: str) -> pd.DatetimeIndex:
    """Naive local times in `tz`: the repeated autumn hour by order, the skipped spring hour refused."""
    try:
        return index.tz_localize(tz, ambiguous="infer", nonexistent="raise")
    except ValueError as exc:  # pandas' AmbiguousTimeError / NonExistentTimeError are ValueErrors
        text = str(exc)
        if "nonexistent" in text or "NonExistent" in type(exc).__name__:
            raise TimeParseError(
                f"{what}: {text.split(' is a nonexistent')[0]} does not exist in {tz} (clocks skip that hour "
                f"when daylight saving time starts), so these times were not written in {tz} local time: "
                "declare the zone the clock really kept (e.g. a fixed offset such as +01:00 for a logger on "
                "standard time all year) or drop that row"
            ) from None
        raise TimeParseError(
            f"{what}: a time in the hour repeated when daylight saving time ends in {tz} cannot be placed "
            f"({text}): keep the rows sorted by time with both occurrences of that hour, or write those "
            "times with an offset (e.g. 2024-10-27T02:30:00+01:00 for the second one)"
        ) from None


def to_utc_iso(index: Iterable[Any]) -> list[str]:
    """ISO 8601 UTC strings (`2024-06-01T10:00:00.000000Z`) of tz-aware times, as events carry them.

    >>> to_utc_iso(parse_times(["2024-06-01T12:00+02:00"]))
    ['2024-06-01T10:00:00.000000Z']
    """
    import pandas as pd

    stamps = pd.DatetimeIndex(list(index) if not isinstance(index, pd.Index) else index)
    return list(stamps.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%fZ"))


__all__ = ["FORMAT_FIX", "ZONE_FIX", "TimeParseError", "check_timezone", "parse_times", "to_utc_iso"]
