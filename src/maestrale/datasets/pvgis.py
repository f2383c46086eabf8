"""PVGIS typical meteorological year (TMY) for 45.000 N, 8.000 E (Piedmont, northern Italy).

Source: PVGIS © European Union, 2001-2024. Reuse is authorised provided the source is acknowledged.
The file is the one distributed in pvlib 0.11.2's test data (BSD-3-Clause); see
``maestrale/datasets/data/README.md``.
"""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from maestrale.datasets._files import PVGIS_ITALY_TMY_FILE, data_file

if TYPE_CHECKING:
    import pandas as pd

#: Credit line that must travel with the PVGIS data wherever it is shown or redistributed.
PVGIS_CREDIT = "PVGIS © European Union, 2001-2024; reuse is authorised provided the source is acknowledged."

# PVGIS column → pvlib-style name used across maestrale (units unchanged, listed in the docstring).
_PVGIS_COLUMNS = {
    "G(h)": "ghi",
    "Gb(n)": "dni",
    "Gd(h)": "dhi",
    "T2m": "temp_air",
    "RH": "relative_humidity",
    "WS10m": "wind_speed",
    "WD10m": "wind_direction",
    "SP": "pressure",
    "IR(h)": "ir",
}
_TIME_COLUMN = "time(UTC)"


def _parse_header(lines: list[str]) -> tuple[dict[str, object], int]:
    """Read the PVGIS preamble (site and source year of each month); return it and the data header's row."""
    meta: dict[str, object] = {}
    months: dict[int, int] = {}
    for i, line in enumerate(lines):
        if line.startswith(_TIME_COLUMN):
            meta["months_selected"] = months
            return meta, i
        key, _, value = line.partition(":")
        if value and key.startswith(("Latitude", "Longitude", "Elevation")):
            meta[key.split(" ")[0].lower()] = float(value)
        elif "," in line and line.split(",")[0].isdigit():
            month, year = line.split(",")[:2]
            months[int(month)] = int(year)
    raise ValueError(
        f"{PVGIS_ITALY_TMY_FILE}: no {_TIME_COLUMN!r} header line; the file is not a PVGIS TMY CSV"
    )


def pvgis_italy_tmy(coerce_year: int | None = None) -> pd.DataFrame:
    """Hourly PVGIS typical meteorological year for 45.000 N, 8.000 E, 250 m (Piedmont, northern Italy).

    >>> from maestrale.datasets import pvgis_italy_tmy
    >>> tmy = pvgis_italy_tmy(coerce_year=2021)
    >>> tmy.shape
    (8760, 9)

    Source: **PVGIS © European Union, 2001-2024**.
    Reuse is authorised provided the source is acknowledged: keep this credit wherever the data, or
    results derived from it, are shown.

    A TMY stitches together real months from different years (2005-2023): each month keeps its own year
    in the PVGIS file (January 2018, February 2007, ...). By default the index keeps those true UTC stamps,
    in month order (so it is not monotonic across month boundaries). Pass ``coerce_year`` to relabel every
    row to one year, which gives a monotonic hourly index; ``df.attrs["months_selected"]`` still tells
    which year each month came from.

    Index: tz-aware **UTC** ``DatetimeIndex`` named ``time``, 8760 hourly rows (``YYYYMMDD:HHMM`` stamps of
    the ``time(UTC)`` column). Columns (units as in PVGIS):

    - ``ghi``, ``dni``, ``dhi``: global horizontal, direct normal, diffuse horizontal irradiance, W/m²
    - ``temp_air``: 2 m air temperature, °C
    - ``relative_humidity``: %
    - ``wind_speed``: 10 m wind speed, m/s; ``wind_direction``: degrees, 0 = N, 90 = E
    - ``pressure``: surface air pressure, Pa
    - ``ir``: surface infrared (thermal) irradiance on a horizontal plane, W/m²

    ``df.attrs`` holds ``latitude``, ``longitude``, ``elevation``, ``months_selected`` and ``credit``.

    Args:
        coerce_year: if given, a year (e.g. 2021) that replaces each row's year. Any year works, leap
            or not: PVGIS Februaries have 28 days.

    Raises:
        ValueError: if ``coerce_year`` is not a year in 1900-2200.
    """
    import pandas as pd

    # Bounded to years every pandas timestamp unit can hold.
    if coerce_year is not None and not (1900 <= int(coerce_year) <= 2200):
        raise ValueError(
            f"coerce_year={coerce_year!r} is not a year in 1900-2200: pass e.g. coerce_year=2021, or None"
        )

    lines = data_file(PVGIS_ITALY_TMY_FILE).read_text(encoding="utf-8").splitlines()
    meta, header = _parse_header(lines)
    # The data block ends at the first blank line; a legend of the variables and the credit follow it.
    end = next((i for i in range(header + 1, len(lines)) if not lines[i].strip()), len(lines))
    raw = pd.read_csv(io.StringIO("\n".join(lines[header:end])))

    index = pd.DatetimeIndex(
        pd.to_datetime(raw.pop(_TIME_COLUMN), format="%Y%m%d:%H%M", utc=True), name="time"
    )
    if coerce_year is not None:
        # Replace the year field only: month, day and hour stay as PVGIS gave them.
        parts = {
            "year": int(coerce_year),
            "month": index.month,
            "day": index.day,
            "hour": index.hour,
            "minute": index.minute,
        }
        index = pd.DatetimeIndex(pd.to_datetime(pd.DataFrame(parts), utc=True), name="time")
    frame = raw.rename(columns=_PVGIS_COLUMNS)[list(_PVGIS_COLUMNS.values())].astype("float64")
    frame.index = index
    # PVGIS writes "-0.0" for night DNI; normalise the sign so that "< 0" checks stay meaningful.
    frame = frame + 0.0
    source = "PVGIS TMY, via pvlib 0.11.2 test data"
    frame.attrs = {**{str(k): v for k, v in meta.items()}, "credit": PVGIS_CREDIT, "source": source}
    return frame
