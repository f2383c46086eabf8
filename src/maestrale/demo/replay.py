"""The replay: a day-ahead forecasting service, late actuals and the monitor, one simulated day at a time.

Each local day D at the plant:

1. morning: the actuals of day D - `actual_delay` arrive (`maestrale.log_actuals` → bus) and land in
   the data lake;
2. the monitor ingests them and evaluates (its clock is the latest actual); a breach may request a
   retraining over the bus, which the training service runs on the lake's data; simulated time waits
   for its outcome (`train.completed`, as the monitor learns it), as production would carry on with
   the old champion meanwhile;
3. noon: the forecasting service asks the model server (`maestrale serve pv-nrel-50@champion`,
   V2 protocol) for day D + 1, sending the raw inputs (each hour's time and its weather: the champion
   builds its own features), and logs the forecast with those inputs (`maestrale.log_predictions`).
   Without a server it loads `pv-nrel-50@champion` itself (again only after a promotion).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from maestrale.config import Settings
    from maestrale.demo.scenario import DataLake, Scenario
    from maestrale.demo.serving import DemoServer
    from maestrale.monitoring.monitor import EvaluationResult
    from maestrale.monitoring.service import MonitorService
    from maestrale.registry.client import Registry


@dataclass
class TimelineEvent:
    """One line of the demo's timeline."""

    day: date
    kind: str  # breach | retrain | trained | challenger | promoted | rejected | fault
    text: str
    version: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReplayLog:
    """What happened during the replay."""

    events: list[TimelineEvent] = field(default_factory=list)
    served: dict[date, int] = field(default_factory=dict)  # forecast day -> version that forecast it
    evaluations: int = 0
    published_predictions: int = 0
    published_actuals: int = 0
    training_s: float = 0.0


class Replay:
    """Drives the simulated days; `on_event` is called for every timeline event (for printing)."""

    def __init__(
        self,
        settings: Settings,
        scenario: Scenario,
        lake: DataLake,
        registry: Registry,
        service: MonitorService,
        *,
        actual_delay: int = 1,
        on_event: Callable[[TimelineEvent], None] | None = None,
        server: DemoServer | None = None,
    ) -> None:
        from maestrale.demo.scenario import WEATHER

        self.settings, self.scenario, self.lake = settings, scenario, lake
        self.registry, self.service = registry, service
        self.actual_delay = actual_delay
        self.server = server
        self.on_event = on_event or (lambda e: None)
        self.log = ReplayLog()
        # the model's raw inputs (a feature pipeline: it builds pv_features from them itself)
        self.inputs = scenario.frame[WEATHER]
        self._loaded: tuple[int, Any] | None = None

    def _emit(self, day: date, kind: str, text: str, version: int | None = None, **detail: Any) -> None:
        event = TimelineEvent(day, kind, text, version, detail)
        self.log.events.append(event)
        self.on_event(event)

    # -- the three steps of a day -----------------------------------------------------------------
    def deliver_actuals(self, day: date) -> None:
        """The measured power of local day `day` arrives; the lake gets it too."""
        import pandas as pd

        from maestrale.demo.scenario import ENTITY, SITE_TZ, TARGET
        from maestrale.monitoring.client import log_actuals

        rows = self.scenario.local_day(day)[TARGET]
        self.log.published_actuals += int(log_actuals(rows, entity=ENTITY, settings=self.settings))
        self.lake.deliver_until((pd.Timestamp(day, tz=SITE_TZ) + pd.Timedelta(days=1)).tz_convert("UTC"))

    def forecast(self, day: date) -> None:
        """Issue and log the day-ahead forecast for local day `day` with the current champion."""
        from maestrale.demo.scenario import ENTITY, MODEL
        from maestrale.monitoring.client import log_predictions

        rows = self.scenario.local_day(day)
        X = self.inputs.loc[rows.index]  # UTC index: the target times
        frame = X.copy()
        if self.server is not None:
            frame["prediction"], version = self.server.infer(MODEL, X.reset_index())
        else:
            version = self.registry.get_version(f"{MODEL}@champion").version
            if self._loaded is None or self._loaded[0] != version:
                self._loaded = (version, self.registry.load(f"{MODEL}:{version}"))
            frame["prediction"] = self._loaded[1].predict(X)
        issued = self.scenario.issue_time(day)
        n = log_predictions(
            frame, model=MODEL, version=version, entity=ENTITY, issued_at=issued, settings=self.settings
        )
        self.log.published_predictions += int(n)
        self.log.served[day] = version

    def wait_ingested(self, timeout: float = 60.0) -> None:
        """Until the monitor stored everything published so far (the bus is asynchronous)."""
        stats = self.service.stats
        deadline = time.monotonic() + timeout
        while (
            stats.actuals < self.log.published_actuals
            or stats.predictions + stats.duplicates < self.log.published_predictions
        ):
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the monitor stored {stats.predictions} of {self.log.published_predictions} predictions "
                    f"and {stats.actuals} of {self.log.published_actuals} actuals in {timeout:.0f} s: "
                    "is the broker up?"
                )
            time.sleep(0.002)

    def evaluate(self, day: date) -> None:
        """Let the monitor evaluate; wait for any retraining it requested and report what it did.

        The monitor learns the outcome as production would: from `train.completed` / `train.failed`
        on the bus, into its own record (`MonitorService.wait_retraining`).
        """
        for result in self.service.monitor.tick():
            self.log.evaluations += 1
            self._report(day, result)
            if result.retrain_request:
                t0 = time.perf_counter()
                rec = self.service.wait_retraining(result.retrain_request)
                self.log.training_s += time.perf_counter() - t0
                if rec.status == "completed":
                    mv = self.registry.get_version(f"{rec.model}:{rec.version}")
                    window = (mv.spec or {}).get("train_window") or {"end": "?"}
                    self._emit(
                        day, "trained",
                        f"training service registered {mv.ref} in {time.perf_counter() - t0:.1f} s "
                        f"(holdout nMAE {mv.metrics.get('nmae', float('nan')):.4f}, window "
                        f"{window.get('start', '…')[:10]} → {window['end'][:10]})",
                        mv.version,
                    )  # fmt: skip
                else:
                    self._emit(day, "failed", f"retraining failed: {rec.error}")

    def _report(self, day: date, result: EvaluationResult) -> None:
        for b in result.breaches:
            action = b.actions.get("retrain", "")
            suffix = (
                " → retraining requested"
                if result.retrain_request and action == result.retrain_request
                else f" ({action})"
                if action
                else ""
            )
            episode, opened = result.episodes.get(b.condition, (None, True))
            self._emit(
                day, "breach", f"{b.condition}: {b.description}{suffix}", result.version,
                condition=b.condition, retrain_action="retrain" in b.actions, episode=episode, opened=opened,
            )  # fmt: skip
        if result.retrain_request:
            self._emit(day, "retrain", f"train.requested {result.retrain_request[:8]}", result.version)
        d = result.decision
        if d is not None and d.outcome is not None:
            kind = "promoted" if d.outcome == "promoted" else "rejected"
            self._emit(
                day,
                kind,
                f"challenger v{result.challenger} {d.outcome}: {d.reason} (n={d.n})",
                result.challenger,
            )
            if kind == "promoted" and self.server is not None and result.promoted:
                self._relay_promotion()
                seconds = self.server.wait_for_version(result.model, result.promoted)
                self._emit(
                    day, "served", f"the model server answers with v{result.promoted} "
                    f"(hot reload {1000 * seconds:.0f} ms after the promotion, no restart)", result.promoted,
                )  # fmt: skip

    def _relay_promotion(self) -> None:
        """Publish the outbox now (`model.promoted`) instead of waiting for the relay's next poll."""
        from maestrale.bus.relay import OutboxRelay
        from maestrale.bus.transport import get_transport

        assert self.settings.database_url
        transport = get_transport(self.settings.broker_url, self.settings.bus_namespace)
        OutboxRelay(self.settings.database_url, transport).run_once()

    def run(self, start: date, end: date, progress: Callable[[date], None] | None = None) -> ReplayLog:
        """Replay local days [start, end]; the first forecast is issued the day before `start`."""
        self.forecast(start)
        day = start
        while day <= end:
            self.deliver_actuals(day - timedelta(days=self.actual_delay))
            self.wait_ingested()
            self.evaluate(day)
            if day + timedelta(days=1) <= end:
                self.forecast(day + timedelta(days=1))
            if progress:
                progress(day)
            day += timedelta(days=1)
        return self.log
