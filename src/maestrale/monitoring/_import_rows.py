"""Row-level checks of `maestrale.monitoring.importer`: one chunk of a file → records and rejected rows.

>>> import pandas as pd
>>> from maestrale.monitoring.importer import ColumnMap
>>> chunk = pd.DataFrame({"t": ["2024-06-01T10:00Z", "June 1st"], "v": ["2.5", "2.6"]})
>>> m = ColumnMap(time="t", value="v", entity="p1")
>>> records, rows, rejects = build_records("actuals", chunk, m, 0, "a.csv")
>>> rows, rejects[0].row, rejects[0].column
([1], 2, 't')
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from maestrale.monitoring.importer import ColumnMap, RowReject

if TYPE_CHECKING:
    import pandas as pd

ZONE_FIX = (
    "pass --timezone Europe/Rome (the zone the file's times were written in) or write them with an offset"
)
FORMAT_FIX = "pass --time-format '%d/%m/%Y %H:%M' (strftime codes) or write ISO 8601"


def build_records(
    kind: str,
    chunk: pd.DataFrame,
    m: ColumnMap,
    offset: int,
    filename: str,
    previous: pd.DataFrame | None = None,
) -> tuple[list[dict[str, Any]], list[int], list[RowReject]]:
    """The records of the chunk's good rows, their row numbers (from 1), and the rejected rows.

    `previous` is the end of the previous chunk: its times are parsed with this chunk's, so the hour
    repeated at the end of daylight saving time is placed by order even across a chunk boundary.
    """
    import pandas as pd

    from maestrale.timeparse import to_utc_iso

    chunk = chunk.reset_index(drop=True)
    n = len(chunk)
    bad: dict[int, RowReject] = {}

    def reject(i: int, column: str | None, reason: str) -> None:
        bad.setdefault(i, RowReject(offset + 1 + i, column, reason))

    def context(col: str) -> pd.Series | None:
        return previous[col] if previous is not None and col in previous.columns else None

    targets = _times(chunk[m.time], m, m.time, filename, reject, context(m.time))
    if m.entity_col:
        entities = chunk[m.entity_col].astype(str).str.strip()
        for i in entities.index[entities.isin(["", "nan", "None"])]:
            reject(int(i), m.entity_col, "empty entity")
    else:
        entities = pd.Series([m.entity] * n)
    value_col = m.value if kind == "actuals" else m.prediction
    values = _numbers(chunk[value_col], value_col, reject, required=True)
    if kind == "predictions":
        if m.issued_at_col:
            col = m.issued_at_col
            issued = _times(chunk[col], m, col, filename, reject, context(col))
        else:
            one = _times(pd.Series([m.issued_at]), m, "--issued-at", filename, lambda *a: None)
            issued = pd.Series([one.iloc[0]] * n)
        features = _features(chunk, m, reject)
    good = [i for i in range(n) if i not in bad]
    target_iso = to_utc_iso(pd.DatetimeIndex(targets.iloc[good])) if good else []
    records: list[dict[str, Any]] = []
    if kind == "actuals":
        for j, i in enumerate(good):
            records.append(
                {"entity": entities.iloc[i], "target_time": target_iso[j], "value": values.iloc[i]}
            )
    else:
        issued_iso = to_utc_iso(pd.DatetimeIndex(issued.iloc[good])) if good else []
        ids = chunk[m.record_id_col].astype(str) if m.record_id_col else None
        for j, i in enumerate(good):
            ent = entities.iloc[i]
            records.append({
                "record_id": ids.iloc[i] if ids is not None else f"{ent}/{issued_iso[j]}/{target_iso[j]}",
                "entity": ent, "issued_at": issued_iso[j], "target_time": target_iso[j],
                "features": {k: _finite(col.iloc[i]) for k, col in features.items()},
                "prediction": values.iloc[i],
            })  # fmt: skip
    return records, [offset + 1 + i for i in good], sorted(bad.values(), key=lambda r: r.row)


def _times(
    values: pd.Series, m: ColumnMap, column: str, filename: str, reject: Any, context: pd.Series | None = None
) -> pd.Series:
    """UTC times of a column (NaT on rejected rows); a whole-column mistake raises TimeParseError.

    `context`: the values just before these in the file (read again for their order, not returned).
    """
    import pandas as pd

    from maestrale.timeparse import parse_times

    values = values.reset_index(drop=True)
    text = values.astype(str).str.strip() if values.dtype == object else None
    empty = values.isna() | (text.isin(["", "NaT", "nan", "None"]) if text is not None else False)
    fmt = m.time_format or "ISO8601"
    coerced = pd.to_datetime(values.where(~empty), format=fmt, utc=True, errors="coerce")
    unreadable = coerced.isna() & ~empty
    for i in values.index[empty]:
        reject(int(i), column, "empty time")
    for i in values.index[unreadable]:
        shown = values.iloc[i]
        expected = (
            f"in --time-format {m.time_format!r}"
            if m.time_format
            else "ISO 8601 (e.g. 2024-06-01T12:00+02:00)"
        )
        hint = (
            "; it looks like day/month/year: " + FORMAT_FIX if "/" in str(shown) and not m.time_format else ""
        )
        reject(int(i), column, f"not a time {expected}: {str(shown)[:60]!r}{hint}")
    ok = ~(empty | unreadable)
    if unreadable.any() and not ok.any():  # not one time readable: the format, not a few rows
        parse_times(
            values[~empty], timezone=m.timezone, time_format=m.time_format,
            what=f"column {column!r} of {filename}", zone_fix=ZONE_FIX, format_fix=FORMAT_FIX,
        )  # fmt: skip
    out = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns, UTC]")
    if ok.any():
        # the good rows together, in file order: the repeated autumn hour is placed by its order
        before = pd.Series(dtype=object) if context is None else _readable(context, m)
        parsed = parse_times(
            pd.concat([before, values[ok]], ignore_index=True), timezone=m.timezone,
            time_format=m.time_format,
            what=f"column {column!r} of {filename}", zone_fix=ZONE_FIX, format_fix=FORMAT_FIX,
        )  # fmt: skip
        out[ok] = parsed[len(before) :].tz_convert("UTC")
    return out


def _readable(values: pd.Series, m: ColumnMap) -> pd.Series:
    """The values of `values` that read as times (the context of the next chunk)."""
    import pandas as pd

    fmt = m.time_format or "ISO8601"
    readable = pd.to_datetime(values, format=fmt, utc=True, errors="coerce").notna()
    return values[readable.to_numpy()].reset_index(drop=True)


def _numbers(values: pd.Series, column: str, reject: Any, *, required: bool) -> pd.Series:
    """Floats of a column; a non-number (or an empty cell when `required`) rejects its row."""
    import pandas as pd

    values = values.reset_index(drop=True)
    nums = pd.to_numeric(values, errors="coerce").astype("float64")
    text = values.astype(str).str.strip()
    empty = values.isna() | text.isin(["", "nan", "NaN", "None"])
    for i in values.index[nums.isna() & ~empty]:
        reject(int(i), column, f"not a number: {str(values.iloc[i])[:60]!r}")
    if required:
        for i in values.index[empty]:
            reject(int(i), column, "empty value")
    for i in values.index[nums.notna() & ~nums.map(math.isfinite)]:
        reject(int(i), column, f"not a finite number: {values.iloc[i]!r}")
    return nums


def _features(chunk: pd.DataFrame, m: ColumnMap, reject: Any) -> dict[str, pd.Series]:
    """The model inputs logged with each prediction: listed, or every other numeric column."""
    import pandas as pd

    if m.features is not None:
        return {f: _numbers(chunk[f], f, reject, required=False) for f in m.features}
    mapped = {m.time, m.prediction, m.entity_col, m.issued_at_col, m.record_id_col}
    out = {}
    for c in chunk.columns:
        if c in mapped:
            continue
        nums = pd.to_numeric(chunk[c], errors="coerce")
        if nums.notna().any():  # a text column (a site name) is not an input; a numeric one is
            out[str(c)] = _numbers(chunk[c], str(c), reject, required=False)
    return out


def _finite(v: Any) -> float | None:
    return float(v) if v is not None and math.isfinite(v) else None
