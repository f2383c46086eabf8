"""The fleet replay: every plant's day-ahead forecast, late actuals, the monitor and retrainings, day by day.

Each replayed UTC day D, in this order (as `maestrale.demo.replay` does for one plant):

1. morning, ingest: the data pipeline lands the measured day D - 1 of every plant in the lake and
   sends it to the monitor (`maestrale.log_actuals`, one call for the fleet); the monitor stores it;
2. monitoring: `Monitor.tick()` evaluates each model whose data clock moved a day; breaches open
   alert episodes and request retrainings; finished retrainings become challengers and are promoted
   only if they beat their champion out of sample;
3. training: the day waits for the retrainings it requested (production carries on with the old
   champions meanwhile), done by the training service's workers in child processes;
4. noon: each plant's forecasting service logs its forecast for day D + 1 from its current champion
   (`maestrale.log_predictions`, with the inputs the model was called with).

A champion's forecast depends only on its version and its inputs, and the inputs (the weather
forecast) are known ahead, so each champion's forecasts are computed once, for the rest of the
replay, when it becomes champion; each day logs its slice. What is logged is exactly what a daily
call would have produced, without loading 1,000 models every day.

CPU time is measured per phase with `time.process_time()` (this process, all its threads: the
bus consumers store what ingest sent while ingest waits for them) and, for training, the CPU of the
child processes that train (`children_cpu`, from /proc: the fork server and the jobs it reaped).

>>> replay = FleetReplay(world, settings, registry, service, policy)  # doctest: +SKIP
>>> log = replay.run(progress=lambda day: None)  # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from maestrale.demo.fleet_world import TARGET

if TYPE_CHECKING:
    from maestrale.config import Settings
    from maestrale.demo.fleet_world import FleetWorld
    from maestrale.monitoring.monitor import EvaluationResult
    from maestrale.monitoring.policy import Policy
    from maestrale.monitoring.service import MonitorService
    from maestrale.registry.client import Registry

ACTUAL_DELAY = 1  # the actuals of day D arrive on D + 1
ISSUE_HOURS_BEFORE = 13  # forecasts are issued at 11:00 UTC (noon in Italy in winter) the day before
TRAINING_TIMEOUT_S = 900.0


@dataclass
class FleetEvent:
    """One thing that happened to one plant: alert (an episode opened), retrain, trained, promoted…"""

    day: int
    plant: int
    kind: str
    condition: str | None = None
    retrain: bool = False  # an alert of a condition whose action is to retrain
    version: int | None = None
    text: str = ""


@dataclass
class FleetLog:
    """What the replay did, and what it cost."""

    events: list[FleetEvent] = field(default_factory=list)
    breaches: list[tuple[int, int, str, bool]] = field(default_factory=list)  # day, plant, condition, retrain
    evaluations: int = 0
    predictions: int = 0
    actuals: int = 0
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def count(self, kind: str) -> int:
        return sum(1 for e in self.events if e.kind == kind)


def children_cpu() -> float:
    """CPU seconds of this process's descendants: live ones, and those they or this process reaped.

    The training jobs run in children of the multiprocessing fork server, which reaps them, so their
    time lands in the fork server's `cutime`. Linux only (reads /proc); 0.0 elsewhere.
    """
    try:
        stats = {}
        for entry in os.scandir("/proc"):
            if entry.name.isdigit():
                try:
                    with open(f"/proc/{entry.name}/stat", "rb") as fh:
                        text = fh.read().decode()
                except OSError:
                    continue  # exited meanwhile
                rest = text[text.rfind(")") + 2 :].split()
                stats[int(entry.name)] = (int(rest[1]), [int(x) for x in rest[11:15]])
    except OSError:
        return 0.0
    kids: dict[int, list[int]] = defaultdict(list)
    for pid, (ppid, _) in stats.items():
        kids[ppid].append(pid)

    def tree(pid: int) -> int:  # own time + reaped descendants + live descendants
        return sum(stats[pid][1]) + sum(tree(c) for c in kids[pid])

    me = os.getpid()
    ticks = sum(stats[me][1][2:]) + sum(tree(c) for c in kids[me]) if me in stats else 0
    return ticks / os.sysconf("SC_CLK_TCK")


class FleetReplay:
    """Drives the simulated days of the whole fleet; `on_event` sees every event (for printing)."""

    def __init__(
        self,
        world: FleetWorld,
        settings: Settings,
        registry: Registry,
        service: MonitorService,
        policy: Policy,
        *,
        on_event: Callable[[FleetEvent], None] | None = None,
    ) -> None:
        self.world, self.settings, self.registry = world, settings, registry
        self.service, self.policy = service, policy
        self.on_event = on_event or (lambda e: None)
        self.log = FleetLog()
        self.index = {p.name: p.index for p in world.plants}
        self._retrain_conditions = {c.name for c in policy.conditions if "retrain" in policy.actions_of(c)}

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        """Count this process's CPU and the wall time of the block under `name`."""
        c0, t0 = time.process_time(), time.perf_counter()
        try:
            yield
        finally:
            self.log.cpu[name] += time.process_time() - c0
            self.log.wall[name] += time.perf_counter() - t0

    def _emit(self, event: FleetEvent) -> None:
        self.log.events.append(event)
        self.on_event(event)

    # -- forecasts --------------------------------------------------------------------------------
    def forecast_from(self, index: int, day: int, version: int, *, first: bool = False) -> None:
        """Plant `index`'s forecasts from day `day` to the end by `version` (its new champion)."""
        plant = self.world.plants[index]
        model = self.registry.load(f"{plant.name}:{version}")
        hours = slice(day * 24, self.world.days * 24)
        pred = np.asarray(model.predict(self.world.inputs(index, hours)), dtype="float64")
        # a forecast of negative power is never right: the service clips it, as a real one would
        pred = np.clip(pred, 0.0, None)
        self.world.served[index, hours] = pred
        self.world.served_version[index, day:] = version
        if first:
            self.world.first[index, hours] = pred

    def log_forecasts(self, day: int) -> None:
        """Every plant's forecasting service logs its day-ahead forecast for replay day `day`."""
        from maestrale.monitoring.client import log_predictions

        hours = self.world.hours(day)
        issued = self.world.day_start(day) - np.timedelta64(ISSUE_HOURS_BEFORE, "h")
        for plant in self.world.plants:
            frame = self.world.inputs(plant.index, hours)
            frame["prediction"] = np.asarray(self.world.served[plant.index, hours], dtype="float64")
            version = int(self.world.served_version[plant.index, day])
            sent = log_predictions(
                frame, model=plant.name, version=version, entity=plant.name, issued_at=issued,
                settings=self.settings,
            )  # fmt: skip
            self.log.predictions += int(sent)

    def deliver_actuals(self, day: int) -> None:
        """The measured day `day` of every plant lands in the lake and reaches the monitor."""
        import pandas as pd

        from maestrale.monitoring.client import log_actuals

        self.world.deliver(day)
        hours = self.world.hours(day)
        n = len(self.world.plants)
        frame = pd.DataFrame(
            {
                "entity": np.repeat([p.name for p in self.world.plants], 24),
                TARGET: np.concatenate([self.world.actual(p.index, hours) for p in self.world.plants]),
            },
            index=np.tile(self.world.times[hours], n),
        )
        self.log.actuals += int(log_actuals(frame, value=TARGET, settings=self.settings))

    def wait_ingested(self, timeout: float = 120.0) -> None:
        """Until the monitor stored everything sent so far (the bus is asynchronous)."""
        stats = self.service.stats
        deadline = time.monotonic() + timeout
        while stats.actuals < self.log.actuals or stats.predictions + stats.duplicates < self.log.predictions:
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the monitor stored {stats.predictions} of {self.log.predictions} predictions and "
                    f"{stats.actuals} of {self.log.actuals} actuals in {timeout:.0f} s: is the broker up?"
                )
            time.sleep(0.002)

    # -- the monitor and training -----------------------------------------------------------------
    def evaluate(self, day: int) -> tuple[list[str], list[tuple[int, int]]]:
        """The monitor's tick: the retraining requests it made, and the (plant, version) it promoted."""
        requested, promoted = [], []
        for result in self.service.monitor.tick():
            self.log.evaluations += 1
            self._report(day, result)
            if result.retrain_request:
                requested.append(result.retrain_request)
            if result.promoted and result.model in self.index:
                promoted.append((self.index[result.model], result.promoted))
        return requested, promoted

    def _report(self, day: int, result: EvaluationResult) -> None:
        index = self.index.get(result.model)
        if index is None:
            return
        for b in result.breaches:
            retrain = b.condition in self._retrain_conditions
            _, opened = result.episodes.get(b.condition, (None, True))
            # every breach counts for detection (an episode open since before a fault still fires on
            # it); an alert is the opening of an episode, what a person is paged for
            self.log.breaches.append((day, index, b.condition, retrain))
            if opened:
                event = FleetEvent(day, index, "alert", b.condition, retrain, result.version, b.description)
                self._emit(event)
        if result.retrain_request:
            self._emit(FleetEvent(day, index, "retrain", version=result.version))
        d = result.decision
        if d is not None and d.outcome is not None:
            self._emit(FleetEvent(day, index, d.outcome, version=result.challenger, text=d.reason))

    def wait_trainings(self, day: int, ids: Sequence[str]) -> None:
        """Until the monitor learnt the outcome of every retraining it asked for today (the simulated
        day waits for them; the training service runs them `--workers` at a time)."""
        for request_id in ids:
            rec = self.service.wait_retraining(request_id, timeout=TRAINING_TIMEOUT_S)
            kind = "trained" if rec.status == "completed" else "failed"
            self._emit(
                FleetEvent(
                    day, self.index.get(rec.model, -1), kind, version=rec.version, text=rec.error or ""
                )
            )

    # -- the days ---------------------------------------------------------------------------------
    def run(self, progress: Callable[[int], None] | None = None) -> FleetLog:
        """Replay every day; the forecasts of day 0 are issued the day before it."""
        children0 = children_cpu()
        with self.phase("ingest"):
            self.log_forecasts(0)
        for day in range(self.world.days):
            if day >= ACTUAL_DELAY:
                with self.phase("ingest"):
                    self.deliver_actuals(day - ACTUAL_DELAY)
                    self.wait_ingested()
                with self.phase("monitoring"):
                    requested, promoted = self.evaluate(day)
                with self.phase("forecast"):  # the forecasting service switches to the new champions
                    for index, version in promoted:
                        if day + 1 < self.world.days:
                            self.forecast_from(index, day + 1, version)
                with self.phase("training"):
                    self.wait_trainings(day, requested)
            if day + 1 < self.world.days:
                with self.phase("ingest"):
                    self.log_forecasts(day + 1)
            if progress:
                progress(day)
        self.log.cpu["training_jobs"] += children_cpu() - children0
        return self.log
