"""Seeded faults of a synthetic PV plant, applied to its measured power from a start date on.

| kind | what happens from `start` | magnitude |
|---|---|---|
| `abrupt` | an inverter stage or a string trips: capacity is lost | 15–40 % |
| `soiling` | dust builds up: the loss grows every day, up to a cap | 0.3–0.8 %/day, cap 25 % |
| `shading` | a new obstruction shades the array a few hours a day | 60–90 % lost, 2–3 hours |
| `offset` | the meter reads a constant amount too much or too little | ±3–8 % of capacity |

>>> fault = draw_fault(np.random.default_rng(0), "abrupt", pd.Timestamp("2022-01-01", tz="UTC"),
...                    pd.Timestamp("2023-01-01", tz="UTC"))
>>> fault.kind, 0.15 <= fault.magnitude <= 0.40
('abrupt', True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

KINDS = ("abrupt", "soiling", "shading", "offset")
#: No fault starts in the first 30 days of the replay (the monitor needs a baseline) or the last 45
#: (it needs time to detect it); a replay shorter than 120 days keeps those proportions.
LEAD_DAYS, TAIL_DAYS = 30, 45


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, when it starts (UTC) and its size; `hours` are the shaded UTC hours."""

    kind: str
    start: pd.Timestamp
    magnitude: float
    hours: tuple[int, ...] = ()
    rate_per_day: float = 0.0

    def describe(self) -> str:
        """A line for the demo's listing, e.g. `abrupt loss of 23% from 2022-05-04`."""
        day = self.start.strftime("%Y-%m-%d")
        if self.kind == "abrupt":
            return f"abrupt loss of {self.magnitude:.0%} from {day}"
        if self.kind == "soiling":
            return f"soiling, {self.rate_per_day:.2%}/day up to {self.magnitude:.0%}, from {day}"
        if self.kind == "shading":
            span = f"{self.hours[0]:02d}-{self.hours[-1] + 1:02d} UTC"
            return f"shading {span}, {self.magnitude:.0%} lost, from {day}"
        return f"meter offset of {self.magnitude:+.1%} of capacity from {day}"


def draw_fault(
    rng: np.random.Generator, kind: str, replay_start: pd.Timestamp, replay_end: pd.Timestamp
) -> Fault:
    """A fault of `kind` at a random date of the replay, with a random size in the ranges above."""
    if kind not in KINDS:
        raise ValueError(f"unknown fault kind {kind!r}: choose from {', '.join(KINDS)}")
    # a short replay keeps the same proportions: a quarter of it before, three eighths after
    days = max(1, (replay_end - replay_start).days)
    lead, tail = min(LEAD_DAYS, days // 4), min(TAIL_DAYS, days * 3 // 8)
    first = replay_start + pd.Timedelta(days=lead)
    span_days = max(1, days - lead - tail)
    start = first + pd.Timedelta(days=int(rng.integers(0, span_days)))
    if kind == "abrupt":
        return Fault(kind, start, float(rng.uniform(0.15, 0.40)))
    if kind == "soiling":
        return Fault(kind, start, 0.25, rate_per_day=float(rng.uniform(0.003, 0.008)))
    if kind == "shading":
        first_hour = int(rng.choice([6, 7, 14, 15]))  # morning or afternoon (UTC, Italy is UTC+1/+2)
        length = int(rng.integers(2, 4))
        return Fault(
            kind, start, float(rng.uniform(0.6, 0.9)), hours=tuple(range(first_hour, first_hour + length))
        )
    sign = 1.0 if rng.random() < 0.5 else -1.0
    return Fault(kind, start, sign * float(rng.uniform(0.03, 0.08)))


def apply_fault(times: pd.DatetimeIndex, power: np.ndarray, fault: Fault, capacity_kw: float) -> np.ndarray:
    """The measured power with `fault` in effect from its start (a new array; `power` is not changed)."""
    after = np.asarray(times >= fault.start)
    out = power.copy()
    if fault.kind == "abrupt":
        out[after] *= 1.0 - fault.magnitude
    elif fault.kind == "soiling":
        days = np.asarray((times - fault.start) / pd.Timedelta(days=1), dtype="float64")
        loss = np.clip(days * fault.rate_per_day, 0.0, fault.magnitude)
        out = np.where(after, out * (1.0 - loss), out)
    elif fault.kind == "shading":
        shaded = after & np.isin(np.asarray(times.hour), fault.hours)
        out[shaded] *= 1.0 - fault.magnitude
    else:
        out[after] = np.maximum(out[after] + fault.magnitude * capacity_kw, 0.0)
    return out


def active(times: pd.DatetimeIndex, fault: Fault | None) -> np.ndarray:
    """True where `fault` affects the measured power (False everywhere for a healthy plant)."""
    if fault is None:
        return np.zeros(len(times), dtype=bool)
    after = np.asarray(times >= fault.start)
    if fault.kind == "shading":
        return after & np.isin(np.asarray(times.hour), fault.hours)
    return after
