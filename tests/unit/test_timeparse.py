"""One time-zone rule (`maestrale.timeparse`): offsets kept, naive times only with a zone, real Europe/Rome
DST days (the spring hour that does not exist, the autumn hour that happens twice), declared formats, and
messages that name the row, the value and the fix.
"""

from __future__ import annotations

import pandas as pd
import pytest

from maestrale.timeparse import TimeParseError, check_timezone, parse_times, to_utc_iso

ROME = "Europe/Rome"


def test_times_with_offsets_are_exact_and_naive_ones_are_refused_with_the_fix():
    got = parse_times(["2024-06-01T12:00:00+02:00", "2024-06-01T10:00:00Z"])
    assert list(got) == [pd.Timestamp("2024-06-01T10:00Z")] * 2
    assert parse_times(["2024-06-01T12:00:00+02:00"], timezone="UTC")[0] == pd.Timestamp("2024-06-01T10:00Z")
    with pytest.raises(
        TimeParseError,
        match=r"column 'time' of pv\.csv has no time zone \(e\.g\. "
        r"'2024-06-01 12:00'\): pass timezone='Europe/Rome'",
    ):
        parse_times(["2024-06-01 12:00"], what="column 'time' of pv.csv")
    # a naive pandas column is just as naive as a string
    with pytest.raises(TimeParseError, match="has no time zone"):
        parse_times(pd.Series(pd.to_datetime(["2024-06-01 12:00"])))
    with pytest.raises(TimeParseError, match="mixes times with and without a time zone"):
        parse_times(["2024-06-01T12:00+02:00", "2024-06-01T13:00"])


def test_rome_autumn_fall_back_hour_is_resolved_by_order_not_merged():
    # 27 Oct 2024, Europe/Rome: 02:00-02:59 happens twice (CEST, then CET); a logger on local time
    # writes 01:00, 02:00, 02:00, 03:00 - four distinct hours
    local = ["2024-10-27 01:00", "2024-10-27 02:00", "2024-10-27 02:00", "2024-10-27 03:00"]
    got = parse_times(local, timezone=ROME)
    assert to_utc_iso(got) == [
        "2024-10-26T23:00:00.000000Z",
        "2024-10-27T00:00:00.000000Z",  # 02:00 CEST
        "2024-10-27T01:00:00.000000Z",  # 02:00 CET
        "2024-10-27T02:00:00.000000Z",
    ]
    assert got.is_unique and got.is_monotonic_increasing
    # a whole local day: 25 distinct hours, none merged
    day = (
        pd.date_range("2024-10-27", periods=25, freq="h", tz=ROME)
        .tz_localize(None)
        .strftime("%Y-%m-%d %H:%M")
    )
    assert parse_times(list(day), timezone=ROME).nunique() == 25
    # one row of that hour alone cannot say which one it is: refused, with the way out
    with pytest.raises(
        TimeParseError,
        match=r"hour repeated when daylight saving time ends in Europe/Rome.*"
        r"with an offset \(e\.g\. 2024-10-27T02:30:00\+01:00",
    ):
        parse_times(["2024-10-27 02:30"], timezone=ROME)


def test_rome_spring_forward_hour_does_not_exist():
    # 31 Mar 2024, Europe/Rome: clocks go 01:59 -> 03:00
    got = parse_times(["2024-03-31 01:00", "2024-03-31 03:00"], timezone=ROME)
    assert to_utc_iso(got) == ["2024-03-31T00:00:00.000000Z", "2024-03-31T01:00:00.000000Z"]
    with pytest.raises(
        TimeParseError, match=r"2024-03-31 02:30:00 does not exist in Europe/Rome.*fixed offset"
    ):
        parse_times(["2024-03-31 01:00", "2024-03-31 02:30", "2024-03-31 03:00"], timezone=ROME)
    # the same instants written with their offsets need no zone at all, across the change
    exact = parse_times(["2024-03-31T01:00+01:00", "2024-03-31T03:00+02:00"])
    assert list(exact) == list(got)


def test_declared_formats_and_bad_values_name_row_and_value():
    got = parse_times(["13/01/2024 10:00", "14/01/2024 10:00"], time_format="%d/%m/%Y %H:%M", timezone=ROME)
    assert to_utc_iso(got) == ["2024-01-13T09:00:00.000000Z", "2024-01-14T09:00:00.000000Z"]
    # undeclared day-first dates: the value, its row, and the format to declare (never '?')
    with pytest.raises(TimeParseError) as err:
        parse_times(["2024-01-12 10:00", "13/01/2024 10:00"], timezone=ROME, what="column 'time' of pv.csv")
    assert "'13/01/2024 10:00' at row 1 (it looks like day/month/year)" in err.value.message
    assert "time_format='%d/%m/%Y %H:%M'" in err.value.message and "'?'" not in err.value.message
    with pytest.raises(TimeParseError, match=r"not in time_format '%d/%m/%Y %H:%M': '2024-01-13' at row 2"):
        parse_times(["13/01/2024 10:00", "13/01/2024 11:00", "2024-01-13"], time_format="%d/%m/%Y %H:%M",
                    timezone=ROME)  # fmt: skip
    with pytest.raises(TimeParseError, match=r"1 missing time\(s\) \(first at row 1\)"):
        parse_times(["2024-01-13T10:00Z", None])
    with pytest.raises(TimeParseError, match="holds numbers, not times"):
        parse_times([1_700_000_000])


@pytest.mark.parametrize("bad", ["Europe/Nowhere", "../../etc/passwd", "+25:00", ""])
def test_unknown_zones_are_refused_with_examples(bad: str):
    with pytest.raises(TimeParseError, match="Europe/Rome"):
        check_timezone(bad)
