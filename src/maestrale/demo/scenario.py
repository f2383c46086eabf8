"""The demo's world: NREL system 50 as a plant in production, an optional capacity fault, its data lake.

The measured series (2011-04-15 → 2013-12-31, hourly) plays production. From `fault_start` (a local
date at the plant) the measured power is multiplied by `1 - fault_loss`, as when a string of panels
or an inverter stage fails: the weather is unchanged, the plant delivers less. The PSM3 weather
stands in for the weather forecast a real day-ahead service would use.

The "data lake" is a Parquet file the plant's data pipeline appends to as actuals arrive; training
specs read it, so a retraining sees exactly the data delivered by then and nothing later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

MODEL = "pv-nrel-50"
ENTITY = "nrel-50"
SITE_TZ = "America/Denver"
TARGET = "power_kw"
#: What the forecasting service sends the model besides the time: the weather `pv_features` reads.
#: The champion is a feature pipeline (`maestrale.features`): it builds its features from these itself.
WEATHER = ["ghi", "ghi_clear", "temp_air"]
TRAIN_START = date(2011, 4, 15)
TRAIN_END = date(2012, 3, 31)  # the first months: almost a year, so every season has been seen once
HOLDOUT_START = date(2012, 3, 1)
REPLAY_START = date(2012, 4, 1)
REPLAY_END = date(2012, 12, 31)  # `--end 2013-12-31` replays the rest of the series
SERIES_END = date(2013, 12, 31)
DEFAULT_FAULT_START = date(2012, 7, 2)
DEFAULT_FAULT_LOSS = 0.2
ISSUE_HOUR = 12  # day-ahead forecasts are issued at local noon for the next local day


@dataclass
class Scenario:
    """The replayed plant: hourly weather + (possibly faulted) measured power, UTC index."""

    frame: pd.DataFrame
    fault_start: date | None
    fault_loss: float
    capacity: float

    def local_day(self, day: date) -> pd.DataFrame:
        """Rows of one local calendar day at the plant (24 hours, 23 or 25 on DST days)."""
        import pandas as pd

        start = pd.Timestamp(day, tz=SITE_TZ).tz_convert("UTC")
        end = (pd.Timestamp(day, tz=SITE_TZ) + pd.Timedelta(days=1)).tz_convert("UTC")
        return self.frame.loc[start : end - pd.Timedelta(seconds=1)]

    def issue_time(self, day: date) -> pd.Timestamp:
        """When the forecast for local day `day` is issued: noon of the day before."""
        import pandas as pd

        return (
            pd.Timestamp(day, tz=SITE_TZ) - pd.Timedelta(days=1) + pd.Timedelta(hours=ISSUE_HOUR)
        ).tz_convert("UTC")


def build_scenario(fault_start: date | None, fault_loss: float) -> Scenario:
    """Load the real series and apply the fault (none when `fault_start` is None)."""
    import pandas as pd

    from maestrale.datasets import NREL_SYSTEM50_ESTIMATED_CAPACITY_KW, nrel_system50

    if not 0 <= fault_loss < 1:
        raise ValueError(
            f"--fault-loss {fault_loss} must be a fraction in [0, 1), e.g. 0.2 for 20% capacity lost"
        )
    frame = nrel_system50("1h")
    if fault_start is not None:
        if not REPLAY_START < fault_start <= SERIES_END:
            raise ValueError(
                f"--fault-start {fault_start} must fall inside the replay, after {REPLAY_START} and up to "
                f"{SERIES_END}, e.g. {DEFAULT_FAULT_START}"
            )
        start = pd.Timestamp(fault_start, tz=SITE_TZ).tz_convert("UTC")
        frame.loc[frame.index >= start, TARGET] *= 1.0 - fault_loss
    return Scenario(frame, fault_start, fault_loss, NREL_SYSTEM50_ESTIMATED_CAPACITY_KW)


class DataLake:
    """The plant's history as a Parquet file, appended as actuals are delivered."""

    def __init__(self, path: Path, scenario: Scenario) -> None:
        self.path = path
        self.scenario = scenario
        path.parent.mkdir(parents=True, exist_ok=True)

    def deliver_until(self, end: pd.Timestamp) -> None:
        """Write every row before `end` (what the pipeline has delivered so far)."""
        frame = self.scenario.frame
        frame.loc[frame.index < end].to_parquet(self.path)

    @property
    def uri(self) -> str:
        """The spec's data URI (an absolute path: the training worker may run elsewhere)."""
        return str(self.path.resolve())


def initial_spec(data_uri: str, capacity: float) -> dict[str, Any]:
    """The first champion's training spec (what `maestrale train` would read from YAML)."""
    return {
        "name": MODEL,
        "description": "HistGradientBoosting on calendar + irradiance features, NREL system 50",
        "data": {"uri": data_uri},
        "target": TARGET,
        "feature_set": "pv_features",
        "estimator": "hgb",
        "params": {"max_iter": 200, "learning_rate": 0.05, "random_state": 0},
        "train_window": {"start": TRAIN_START.isoformat(), "end": TRAIN_END.isoformat()},
        "split": {"holdout": {"test_start": HOLDOUT_START.isoformat()}},
        "baselines": {"persistence": {"lag": "24h"}, "climatology": {"by": "hour_of_day"}},
        "capacity": capacity,
        "tags": {"site": ENTITY, "target": TARGET},
        "time_limit_s": 600,
    }
