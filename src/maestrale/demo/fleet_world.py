"""The fleet demo's world: N synthetic plants, their replay year on disk, and the fleet's data lake.

Each plant's two-year frame (`maestrale.datasets.fleet`) is built once, at setup: its first year
goes into the data lake the training specs read, its replayed days into one float32 file on disk
(memory-mapped), so a fleet of 1,000 plants holds no frame in memory and the replay slices a day of
any plant in microseconds. The day-ahead forecasts the plants' forecasting service issues (each
day's slice from the champion of that day) and those of the first champions, never retrained, live
in two more such files.

The data lake is a SQLite file with one table per kind of plant (`pv`, `wind`), appended as each
day's actuals are delivered: a retraining reads exactly the rows delivered by then (its `:end`
bound is the monitor's clock), as `maestrale.demo.scenario.DataLake` does for the single plant.

Days are UTC days: the plants are in Italy (UTC+1/+2), so a day boundary always falls at night.

>>> world = FleetWorld(home, synthetic_fleet(50, seed=7), days=120)  # doctest: +SKIP
>>> world.build()                       # frames once: first year -> lake, replay -> disk  # doctest: +SKIP
>>> world.inputs(3, world.hours(0))     # day 0 of plant 3: its forecast inputs  # doctest: +SKIP
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.datasets.fleet import Fleet, Site

TARGET = "power_kw"
#: What each kind of plant's forecasting service sends its model (the weather "forecast").
INPUTS = {
    "pv": ("ghi", "ghi_clear", "temp_air"),
    "wind": ("wind_speed", "wind_direction", "air_density", "temp_air"),
}
_WIDTH = max(len(v) for v in INPUTS.values()) + 1  # inputs + the measured power
#: The lake's time format: the one SQLAlchemy binds `:start` / `:end` in on SQLite (naive UTC), so
#: the training query compares like with like.
_LAKE_TIME = "%Y-%m-%d %H:%M:%S.%f"
MAX_DAYS = 365


@dataclass(frozen=True)
class Plant:
    """One member of the replayed fleet: its row in the world's arrays and its model inputs."""

    index: int
    site: Site

    @property
    def name(self) -> str:
        """The plant's name: also its model's name and its entity in the monitor."""
        return self.site.name

    @property
    def kind(self) -> str:
        return self.site.kind

    @property
    def inputs(self) -> tuple[str, ...]:
        return INPUTS[self.site.kind]

    @property
    def capacity(self) -> float:
        return self.site.capacity_kw


class FleetWorld:
    """The replayed days of every plant (on disk), the data lake, and the forecasts issued."""

    def __init__(self, home: Path, fleet: Fleet, days: int) -> None:
        import pandas as pd

        if not 1 <= days <= MAX_DAYS:
            raise ValueError(f"--days {days}: replay from 1 to {MAX_DAYS} days of the second year")
        self.home, self.fleet, self.days = home, fleet, days
        self.plants = [Plant(i, s) for i, s in enumerate(fleet.sites)]
        self.start = fleet.replay_start
        self.times = pd.date_range(self.start, periods=days * 24, freq="h", name="time")
        home.mkdir(parents=True, exist_ok=True)
        shape = (len(self.plants), days * 24)
        # float32 files: 1,000 plants x 8,760 h x 5 columns are 175 MB on disk, none of it held
        self.data = _memmap(home / "world.f32", (*shape, _WIDTH))
        self.served = _memmap(home / "served.f32", shape)  # the forecast logged for each hour
        self.first = _memmap(home / "first.f32", shape)  # the first champion's, never retrained
        self.served_version = np.zeros((len(self.plants), days), dtype=np.int32)
        self.lake_path = home / "lake" / "fleet.db"

    # -- setup ------------------------------------------------------------------------------------
    def build(self, progress: Callable[[Plant], None] | None = None) -> None:
        """Build each plant's frame once: its first year into the lake, its replayed days to disk."""
        self.lake_path.parent.mkdir(parents=True, exist_ok=True)
        with self._lake() as lake:
            for kind, columns in INPUTS.items():
                cols = ", ".join(f"{c} REAL NOT NULL" for c in (*columns, TARGET))
                lake.execute(
                    f"CREATE TABLE IF NOT EXISTS {kind} (site TEXT NOT NULL, time TEXT NOT NULL, {cols}, "
                    "PRIMARY KEY (site, time)) WITHOUT ROWID"
                )
            for plant in self.plants:
                frame = self.fleet.frame(plant.name)
                first = frame.loc[frame.index < self.start]
                self._append(lake, plant, first)
                replay = frame.loc[self.times[0] : self.times[-1], [*plant.inputs, TARGET]]
                block = np.full((len(self.times), _WIDTH), np.nan, dtype=np.float32)
                block[:, : len(plant.inputs)] = replay[list(plant.inputs)].to_numpy(dtype=np.float32)
                block[:, -1] = replay[TARGET].to_numpy(dtype=np.float32)
                self.data[plant.index] = block
                if progress:
                    progress(plant)
        self.data.flush()

    def _lake(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.lake_path, timeout=60)
        # WAL: the training jobs read while the pipeline appends the next day
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    @staticmethod
    def _append(lake: sqlite3.Connection, plant: Plant, frame: pd.DataFrame) -> None:
        import pandas as pd

        times = pd.DatetimeIndex(frame.index).tz_convert("UTC").strftime(_LAKE_TIME)
        values = frame[[*plant.inputs, TARGET]].to_numpy(dtype="float64").tolist()
        marks = ", ".join("?" * (len(plant.inputs) + 3))
        lake.executemany(
            f"INSERT OR REPLACE INTO {plant.kind} VALUES ({marks})",
            [(plant.name, t, *v) for t, v in zip(times, values, strict=True)],
        )

    # -- the replay -------------------------------------------------------------------------------
    def hours(self, day: int) -> slice:
        """The positions of replay day `day` (0 = the first replayed day) in the hourly arrays."""
        return slice(day * 24, (day + 1) * 24)

    def day_start(self, day: int) -> pd.Timestamp:
        """Midnight UTC opening replay day `day`."""
        return self.times[day * 24]

    def inputs(self, index: int, hours: slice) -> pd.DataFrame:
        """The model inputs of plant `index` over `hours`, indexed by UTC time (float64)."""
        import pandas as pd

        plant = self.plants[index]
        block = np.asarray(self.data[index, hours, : len(plant.inputs)], dtype="float64")
        return pd.DataFrame(block, index=self.times[hours], columns=list(plant.inputs))

    def actual(self, index: int, hours: slice) -> np.ndarray:
        """The measured power of plant `index` over `hours` (kW, faults included)."""
        return np.asarray(self.data[index, hours, -1], dtype="float64")

    def deliver(self, day: int) -> None:
        """The data pipeline lands replay day `day` of every plant in the lake (with its actuals)."""
        hours = self.hours(day)
        with self._lake() as lake:
            for plant in self.plants:
                frame = self.inputs(plant.index, hours)
                frame[TARGET] = self.actual(plant.index, hours)
                self._append(lake, plant, frame)

    def lake_query(self, kind: str) -> str:
        """The training spec's query for a kind of plant (`{site}` is the fleet spec's variable)."""
        columns = ", ".join((*INPUTS[kind], TARGET))
        return (
            f"SELECT time, {columns} FROM {kind} WHERE site = '{{site}}' AND time >= :start AND time < :end "
            "ORDER BY time"
        )

    @property
    def lake_url(self) -> str:
        return f"sqlite:///{self.lake_path.resolve()}"


def _memmap(path: Path, shape: tuple[int, ...]) -> np.memmap:
    return np.memmap(path, dtype=np.float32, mode="w+", shape=shape)
