"""The monitor: evaluates each model on production data, applies its policy, closes the loop.

One evaluation of a model, at the monitor's clock `as_of` (the latest target time that has an actual):

1. performance of the serving version over each window the policy's conditions use, against the
   version's training metrics; drift of the logged features and predictions against its profile;
2. each condition that fires is recorded as a breach with its numbers; consecutive breaches of one
   condition form an episode (`maestrale.monitoring.episodes`), and when one opens, in the same
   transaction, a `maestrale.monitor.breach` event goes to the outbox (one alert per episode);
3. a `retrain` action (outside the cooldown, with no retraining already in flight) writes
   `maestrale.train.requested` to the outbox with the champion's recorded spec, its window moved to
   `as_of`, in one transaction with the monitor's record of it (`maestrale.monitoring.retraining`):
   the monitor talks to the training service over the bus only;
4. when `train.completed` reports the new version, it becomes `challenger` at once, judged on the pairs
   after its training data (`maestrale.monitoring.challenger`); once there are enough, both are
   scored on the same rows and the challenger is promoted to `champion`
   only if it wins by the policy's margin and holds the guardrails (`maestrale.model.promoted`).

>>> mon = Monitor(store, registry, retrain=True, policies=[default_policy()])  # doctest: +SKIP
>>> mon.tick()  # evaluate every model whose clock moved by the schedule  # doctest: +SKIP
>>> mon.backfill("pv-nrel-50", start, end)  # every scheduled step of a past range  # doctest: +SKIP
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from maestrale.errors import NotFound
from maestrale.monitoring import retraining
from maestrale.monitoring.challenger import CHALLENGER, CHAMPION, ChallengerMixin  # noqa: F401 (re-exported)
from maestrale.monitoring.conditions import Breach, check_condition, window_drift
from maestrale.monitoring.episodes import update_episodes
from maestrale.monitoring.leases import open_leases
from maestrale.monitoring.performance import (
    PerformanceReport,
    capacities_to_keep,
    performance,
    stored_capacities,
)
from maestrale.monitoring.policy import Condition, Policy, default_policy, policy_for
from maestrale.monitoring.retrain import moved_spec
from maestrale.platform.outbox import add_event
from maestrale.vocabulary import parse_window, persistence_lag

if TYPE_CHECKING:
    from maestrale.monitoring.promotion import Comparison
    from maestrale.monitoring.store import MonitorStore
    from maestrale.registry.client import Registry
    from maestrale.registry.types import ModelVersion

log = logging.getLogger(__name__)
MAX_LOADED_MODELS = 16  # estimators kept loaded (challengers being judged), least recently used out
MAX_CACHED_VERSIONS = 1_024
MAX_BACKFILL_STEPS = 5_000  # about 14 years of daily evaluations in one call
EVENT_SOURCE = "maestrale/monitor"
_T = TypeVar("_T")


@dataclass
class EvaluationResult:
    """What one evaluation of one model found and did."""

    model: str
    version: int
    as_of: datetime
    performance: dict[str, PerformanceReport]
    drift: dict[str, dict[str, Any]]
    breaches: list[Breach]
    retrain_request: str | None = None
    challenger: int | None = None
    decision: Comparison | None = None
    promoted: int | None = None
    # condition -> (episode id, opened by this evaluation); see `maestrale.monitoring.episodes`
    episodes: dict[str, tuple[int, bool]] = field(default_factory=dict)


def _iso_window(start: datetime, end: datetime) -> str:
    return f"{start.isoformat()}/{end.isoformat()}"


class Monitor(ChallengerMixin):
    """Evaluates models against their policy; see the module docstring for the loop."""

    def __init__(
        self,
        store: MonitorStore,
        registry: Registry,
        retrain: bool | None = False,
        policies: list[Policy] | None = None,
    ) -> None:
        self.store = store
        self.registry = registry
        # False or None: breaches are recorded, no retraining is asked (`monitor evaluate` without --retrain)
        self.retrain = bool(retrain)
        self.policies = policies or [default_policy()]
        # bounded, least recently used first out: a fleet of thousands of models must not keep every
        # estimator loaded (one can weigh hundreds of MB); a version's metadata is small but not tiny
        self._versions: OrderedDict[str, ModelVersion] = OrderedDict()
        self._models: OrderedDict[str, Any] = OrderedDict()
        self.leases = open_leases(store.engine)  # who evaluates which model, among several monitors

    # -- versions and models, cached (versions are immutable) ------------------------------------
    def version(self, ref: str) -> ModelVersion:
        """Metadata of `NAME:VERSION` (cached) or of an alias (resolved each time)."""
        if ":" in ref and ref in self._versions:
            self._versions.move_to_end(ref)
            return self._versions[ref]
        mv = self.registry.get_version(ref)
        _remember(self._versions, mv.ref, mv, MAX_CACHED_VERSIONS)
        return mv

    def _model(self, mv: ModelVersion) -> Any:
        if mv.ref in self._models:
            self._models.move_to_end(mv.ref)
            return self._models[mv.ref]
        return _remember(self._models, mv.ref, self.registry.load(mv.ref), MAX_LOADED_MODELS)

    def serving_version(self, model: str) -> ModelVersion:
        """The champion, or without one the version of the latest logged predictions."""
        try:
            return self.version(f"{model}@{CHAMPION}")
        except NotFound:
            latest = self.store.latest_version(model)
            if latest is None:
                raise NotFound(f"no predictions logged for {model!r} and no champion alias") from None
            return self.version(f"{model}:{latest}")

    # -- scheduling -------------------------------------------------------------------------------
    def due(self, model: str) -> datetime | None:
        """The clock to evaluate `model` at, if its policy's schedule says it is time."""
        policy = policy_for(self.policies, model)
        if policy is None:
            return None
        clock = self.store.data_time(model)
        if clock is None:
            return None
        last = self.store.state(model).get("as_of")
        if last is not None and clock < last + parse_window(policy.schedule.every):
            return None
        return clock

    def tick(self) -> list[EvaluationResult]:
        """Evaluate every model that is due; also promote or reject pending challengers.

        Several monitors may tick over one database: each model is evaluated under its lease
        (`maestrale.monitoring.leases`), a model leased by another monitor is skipped, and the schedule
        is checked again once the lease is held, so a step another monitor just evaluated is not
        evaluated twice. One model at a time, with its own queries: memory does not grow with the fleet.

        >>> [r.model for r in monitor.tick()]  # doctest: +SKIP
        ['pv-foggia', 'pv-torino']
        """
        results: list[EvaluationResult] = []
        with self.leases.fleet() as ours:
            if not ours:
                log.info("another monitor is evaluating this SQLite database; this tick is skipped")
                return results
            for model in self.awaiting_training():  # a finished retraining is the challenger at once
                with self.leases.hold(model) as held:
                    try:
                        if held:
                            self.adopt(model)
                    except Exception:
                        log.exception("adopting the retrained version of %s failed; retried next tick", model)
            for model in self.store.models():
                if self.due(model) is None:  # most models, most ticks: no lease needed to know it
                    continue
                with self.leases.hold(model) as held:
                    as_of = self.due(model) if held else None  # another monitor may have just evaluated it
                    if as_of is not None:
                        results.extend(self._evaluate_due(model, as_of))
        return results

    def _evaluate_due(self, model: str, as_of: datetime) -> list[EvaluationResult]:
        try:
            return [self.evaluate(model, as_of)]
        except Exception:  # one broken model must not stop the fleet's monitoring
            log.exception("evaluating %s at %s failed; next try after the schedule period", model, as_of)
            # move its clock anyway: a model that cannot be evaluated (not registered, no
            # policy) is retried once per period, not on every tick
            with self.store._writer.begin() as conn:
                self.store.set_state(conn, model, as_of=as_of)
            return []

    def backfill(self, model: str, start: datetime, end: datetime) -> list[EvaluationResult]:
        """Evaluate `model` at every step of its schedule from `start` to `end` (both included).

        Data logged in bulk (an import, two months sent at once) gets the evaluations the service
        would have made day by day: one per `schedule.every`, each over its own windows, with its
        breaches, episodes and challenger decisions. Steps after the monitor's clock (the latest
        target time with an actual) are not evaluated: there is nothing to judge there yet.
        """
        policy = policy_for(self.policies, model)
        if policy is None:
            raise NotFound(f"no monitoring policy applies to {model!r}: add its name to a policy's models")
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end need a time zone, e.g. 2012-06-01T00:00Z")
        if end < start:
            raise ValueError(f"the range ends ({end.isoformat()}) before it starts ({start.isoformat()})")
        clock = self.store.data_time(model)
        if clock is None:
            raise NotFound(f"no prediction of {model!r} has an actual yet: nothing to evaluate")
        step = parse_window(policy.schedule.every)
        last = min(end, clock)
        count = int((last - start) / step) + 1 if last >= start else 0
        if count > MAX_BACKFILL_STEPS:
            raise ValueError(
                f"{count} evaluations from {start.isoformat()} to {last.isoformat()} every "
                f"{policy.schedule.every}: backfill at most {MAX_BACKFILL_STEPS} at once (split the range)"
            )
        results = []
        for i in range(count):
            as_of = start + i * step
            self.adopt(model)
            results.append(self.evaluate(model, as_of))
        return results

    # -- one evaluation ---------------------------------------------------------------------------
    def evaluate(self, model: str, as_of: datetime) -> EvaluationResult:
        """Evaluate `model` at data time `as_of` and act on its policy (see the module docstring)."""
        policy = policy_for(self.policies, model)
        if policy is None:
            raise NotFound(f"no monitoring policy applies to {model!r}: add its name to a policy's models")
        mv = self.serving_version(model)
        spec = mv.spec or {}
        capacity = spec.get("capacity")
        lag = persistence_lag(spec)  # skill against the reference the version was trained against
        perf: dict[str, PerformanceReport] = {}
        drift: dict[str, dict[str, Any]] = {}
        for window in dict.fromkeys(c.window for c in policy.conditions if c.metric):
            perf[window] = performance(
                self.store, model, as_of, window, version=mv.version, capacity=capacity,
                training=mv.metrics, persistence_lag=lag, entity_capacity=policy.capacity,
            )  # fmt: skip
        for c in policy.conditions:
            if c.drift and c.window not in drift:
                try:
                    drift[c.window] = window_drift(self.store, mv, as_of, c)
                except Exception as exc:  # drift must not stop the performance checks
                    log.exception("%s: drift over %s failed", mv.ref, c.window)
                    drift[c.window] = {"n": 0, "note": f"drift failed: {exc}"}
        breaches = [b for c in policy.conditions if (b := check_condition(c, perf, drift, mv)) is not None]
        result = EvaluationResult(model, mv.version, as_of, perf, drift, breaches)
        state = self.store.state(model)
        # the policy's capacities of this model's plants, kept for the REST API (which has no policy)
        stored = stored_capacities(state.get("entity_capacity"))
        kept = capacities_to_keep(stored, perf.values(), policy.capacity)
        changed = {} if kept == stored else {"entity_capacity": kept or None}
        retrain = [b for b in breaches if "retrain" in policy.actions_of(self._condition(policy, b))]
        if retrain:
            self._maybe_retrain(policy, mv, as_of, state, retrain, result)
        with self.store._writer.begin() as conn:
            for window, rep in perf.items():
                self.store.add_evaluation(
                    conn, model=model, version=mv.version, kind="performance", window=window, as_of=as_of,
                    n=rep.n, values=rep.as_dict(),
                )  # fmt: skip
            for window, d in drift.items():
                self.store.add_evaluation(
                    conn, model=model, version=mv.version, kind="drift", window=window, as_of=as_of,
                    n=int(d.get("n", 0)), values=d,
                )  # fmt: skip
            ids: dict[str, int] = {}
            for b in breaches:
                b.actions.setdefault("breach", "breach" in policy.actions_of(self._condition(policy, b)))
                ids[b.condition] = self.store.add_breach(
                    conn, model=model, version=mv.version, policy=policy.name, condition=b.condition,
                    metric=b.metric, value=b.value, threshold=b.threshold, window=b.window, n=b.n,
                    as_of=as_of, actions=b.actions, details={"description": b.description},
                )  # fmt: skip
            episodes = update_episodes(
                conn, model=model, version=mv.version, policy=policy, as_of=as_of, breaches=breaches,
                breach_ids=ids,
            )  # fmt: skip
            for b in breaches:
                episode, opened = episodes[b.condition]
                result.episodes[b.condition] = (episode, opened)
                # one alert per episode: a condition that keeps firing does not page again each day
                if b.actions["breach"] and opened:
                    start = as_of - parse_window(b.window)
                    add_event(
                        conn, "maestrale.monitor.breach", model,
                        {"model": model, "version": mv.version, "policy": policy.name, "metric": b.metric,
                         "value": b.value, "threshold": b.threshold, "window": _iso_window(start, as_of),
                         "condition": b.condition, "n": b.n, "description": b.description,
                         "episode": episode},
                        source=EVENT_SOURCE,
                    )  # fmt: skip
            self.store.set_state(conn, model, as_of=as_of, **changed)
        self._challenge(policy, model, as_of, result)
        return result

    @staticmethod
    def _condition(policy: Policy, breach: Breach) -> Condition:
        return next(c for c in policy.conditions if c.name == breach.condition)

    # -- retraining -------------------------------------------------------------------------------
    def _maybe_retrain(
        self, policy: Policy, mv: ModelVersion, as_of: datetime, state: dict[str, Any],
        breaches: list[Breach],
        result: EvaluationResult,
    ) -> None:  # fmt: skip
        why = "; ".join(f"{b.condition}: {b.description}" for b in breaches)
        last = state.get("last_retrain_at")
        pending = state.get("last_retrain_request")
        if not self.retrain:
            note = "retraining is off in this monitor (it only records breaches)"
        elif pending and not self._request_done(pending):
            note = f"retraining {pending} still running"
        elif state.get("challenger_since") is not None:
            note = "a challenger is still being evaluated"
        elif last is not None and as_of < last + self._cooldown(policy, mv.name):
            note = f"cooldown until {(last + self._cooldown(policy, mv.name)).isoformat()}"
        elif mv.spec is None:
            note = f"{mv.ref} has no recorded spec to retrain from"
        else:
            spec = moved_spec(mv.spec, as_of, policy.retrain)
            key = f"monitor/{mv.name}/{as_of.strftime('%Y%m%dT%H%M%S')}"
            with self.store._writer.begin() as conn:  # the event exists if and only if the state says so
                request_id = retraining.request(
                    conn, model=mv.name, spec=spec, reason=f"monitor: {why}"[:500],
                    parent_version=mv.version, as_of=as_of, idempotency_key=key,
                )  # fmt: skip
                self.store.set_state(
                    conn, mv.name, last_retrain_at=as_of, last_retrain_request=request_id,
                    retrain_status="requested", retrain_note=None,
                )  # fmt: skip
            result.retrain_request = request_id
            for b in breaches:
                b.actions["retrain"] = request_id
            log.info("%s: retraining requested (%s): %s", mv.name, request_id, why)
            return
        for b in breaches:
            b.actions["retrain"] = f"not requested: {note}"

    def _cooldown(self, policy: Policy, model: str) -> timedelta:
        """The policy's cooldown, multiplied by `backoff` per rejected challenger since the last promotion."""
        from sqlalchemy import select

        from maestrale.monitoring.schema import monitor_decisions as d

        q = select(d.c.outcome).where(d.c.model == model).order_by(d.c.as_of.desc(), d.c.id.desc()).limit(10)
        with self.store.engine.connect() as conn:
            outcomes = list(conn.execute(q).scalars())
        rejected = 0
        for outcome in outcomes:
            if outcome == "promoted":
                break
            rejected += 1
        factor = min(policy.backoff**rejected, policy.max_backoff)
        return parse_window(policy.cooldown) * factor

    def _request_done(self, request_id: str) -> bool:
        record = retraining.get(self.store.engine, request_id)
        return record is None or record.done


def _remember(cache: OrderedDict[str, _T], key: str, value: _T, size: int) -> _T:
    """Put `value` in the LRU `cache`, dropping the least recently used entries beyond `size`."""
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > size:
        cache.popitem(last=False)
    return value


def utcnow() -> datetime:
    """Wall-clock now (UTC)."""
    return datetime.now(UTC)
