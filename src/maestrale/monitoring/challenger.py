"""Champion/challenger, a mixin of `Monitor`: adopt a finished retraining at once, judge it, decide.

A retraining the monitor requested becomes the `challenger` as soon as its training completes
(`adopt`: on `maestrale.train.completed` in `maestrale monitor run`, and at every tick), not at the
next scheduled evaluation; what the monitor knows of the request is its own record
(`maestrale.monitoring.retraining`), filled from the training service's events. Its out-of-sample
window starts where its training data ended (the clock at which the monitor asked for it), so the
pairs logged while it trained already count: a challenger trained on data up to June 7 and
registered on June 13 is judged on June 8-13 at once.

>>> mon.adopt("pv-nrel-50")  # the request completed: v4 is the challenger  # doctest: +SKIP
4
"""

from __future__ import annotations

import logging
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import select

from maestrale.errors import NotFound
from maestrale.monitoring import retraining
from maestrale.monitoring import schema as t
from maestrale.monitoring.policy import Policy, policy_for
from maestrale.monitoring.promotion import Comparison, challenger_inputs, compare
from maestrale.platform.clock import utcnow
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    from maestrale.monitoring.monitor import EvaluationResult
    from maestrale.monitoring.store import MonitorStore
    from maestrale.registry.client import Registry
    from maestrale.registry.types import ModelVersion

log = logging.getLogger(__name__)
CHAMPION, CHALLENGER = "champion", "challenger"
_US = timedelta(microseconds=1)


class ChallengerMixin:
    """`adopt`, `_challenge` and `_record` of `Monitor` (which provides the attributes below)."""

    store: MonitorStore
    registry: Registry
    policies: list[Policy]

    if TYPE_CHECKING:  # provided by Monitor

        def version(self, ref: str) -> ModelVersion: ...
        def serving_version(self, model: str) -> ModelVersion: ...
        def _model(self, mv: ModelVersion) -> Any: ...

    def awaiting_training(self) -> list[str]:
        """Models whose retraining request has no outcome the monitor has seen yet (one query)."""
        s = t.monitor_state
        q = select(s.c.model).where(s.c.last_retrain_request.is_not(None), s.c.challenger_since.is_(None))
        with self.store.engine.connect() as conn:
            return list(conn.execute(q).scalars())

    def adopt(self, model: str) -> int | None:
        """If `model`'s retraining completed, make it the challenger now; returns its version.

        A failed retraining (or one given up as lost, see `_lost`) is recorded in the monitor's state
        (`retrain_status`, `retrain_note`) and frees the model for the next request; one still running
        is left alone.
        """
        state = self.store.state(model)
        request_id = state.get("last_retrain_request")
        if not request_id or state.get("challenger_since") is not None:
            return None
        rec = retraining.get(self.store.engine, request_id)
        lost = self._lost(model, rec, state) if rec is not None and rec.status == "requested" else None
        if rec is not None and rec.status == "requested" and lost is None:
            return None
        if rec is None or rec.status != "completed" or rec.version is None:
            status = "lost" if lost or (rec is not None and rec.status == "lost") else "failed"
            note = "no record of the request" if rec is None else (lost or rec.error or rec.status)
            with self.store._writer.begin() as conn:
                if lost:
                    retraining.mark_lost(conn, request_id, lost)
                self.store.set_state(
                    conn, model, last_retrain_request=None, retrain_status=status,
                    retrain_note=f"{request_id}: {note}"[:500],
                )  # fmt: skip
            log.warning("%s: retraining %s did not complete: %s", model, request_id, note)
            return None
        if self.store.decided(model, rec.version):  # judged already (a redelivered completion)
            with self.store._writer.begin() as conn:
                self.store.set_state(conn, model, last_retrain_request=None, retrain_status="completed")
            return None
        self.registry.set_alias(model, CHALLENGER, rec.version, reason=f"retrained by {request_id}")
        # out of sample from the end of its training data: the clock the monitor retrained at
        since = state.get("last_retrain_at") or state.get("as_of")
        policy = policy_for(self.policies, model)
        with self.store._writer.begin() as conn:
            self.store.set_state(
                conn, model, challenger_since=since, retrain_status="completed",
                retrain_note=f"registered {model}:{rec.version}",
                challenger_min_samples=policy.promotion.min_samples if policy is not None else None,
            )  # fmt: skip
        log.info("%s:%s is the challenger, judged on target times after %s", model, rec.version, since)
        return rec.version

    def _lost(self, model: str, rec: retraining.Retraining, state: dict[str, Any]) -> str | None:
        """Why `rec` is given up, when it waited for its outcome longer than `promotion.max_wait` in data
        time and in wall time both (a backfill runs weeks of data time in seconds); else None.
        """
        policy = policy_for(self.policies, model)
        wait = parse_window(policy.promotion.max_wait if policy is not None else "14D")
        clock = state.get("as_of")
        if clock is None or clock < rec.as_of + wait or utcnow() < rec.requested_at + wait:
            return None
        return f"no outcome from the training service within {wait.days} days: lost"

    def _challenge(self, policy: Policy, model: str, as_of: datetime, result: EvaluationResult) -> None:
        self.adopt(model)
        since = self.store.state(model).get("challenger_since")
        if since is None:
            return
        try:
            challenger = self.version(f"{model}@{CHALLENGER}")
        except NotFound:
            with self.store._writer.begin() as conn:
                self.store.set_state(conn, model, challenger_since=None)
            return
        champion = self.serving_version(model)
        result.challenger = challenger.version
        if challenger.version == champion.version:
            self._record(model, champion, challenger, since, as_of, policy, Comparison(
                "promoted", "already champion", 0, {}, {}))  # fmt: skip
            return
        # Out of sample: only target times after the challenger's training data ended.
        frame = self.store.scored(model, since + _US, as_of + _US, version=champion.version, features=True)
        if frame.empty:
            need = policy.promotion.min_samples
            comparison = Comparison(None, f"0 of {need} out-of-sample pairs so far", 0, {}, {})
        else:
            X = challenger_inputs(challenger, frame)
            pred = np.asarray(self._model(challenger).predict(X), dtype="float64")
            capacity = (champion.spec or {}).get("capacity")
            comparison = compare(  # each plant against its own capacity, as in the evaluation
                frame, pred, policy.promotion, capacity=capacity, entity_capacity=policy.capacity
            )
        result.decision = comparison
        if comparison.outcome is None and as_of >= since + parse_window(policy.promotion.max_wait):
            comparison.outcome = "expired"
            comparison.reason = f"undecided after {policy.promotion.max_wait}: {comparison.reason}"
        if comparison.outcome is None:
            return
        if comparison.outcome == "promoted":
            self.registry.set_alias(
                model, CHAMPION, challenger.version, reason=f"monitor: {comparison.reason}"[:500]
            )
            result.promoted = challenger.version
        self._record(model, champion, challenger, since, as_of, policy, comparison)

    def _record(
        self, model: str, champion: ModelVersion, challenger: ModelVersion, since: datetime, as_of: datetime,
        policy: Policy, comparison: Comparison,
    ) -> None:  # fmt: skip
        with suppress(NotFound):
            self.registry.delete_alias(model, CHALLENGER)
        with self.store._writer.begin() as conn:
            if not self.store.decided(model, challenger.version):
                self.store.add_decision(
                    conn, model=model, champion_version=champion.version,
                    challenger_version=challenger.version, outcome=comparison.outcome,
                    reason=comparison.reason, metric=policy.promotion.metric, margin=policy.promotion.margin,
                    window_start=since, window_end=as_of, n=comparison.n,
                    champion_metrics=comparison.champion, challenger_metrics=comparison.challenger,
                    as_of=as_of,
                )  # fmt: skip
            self.store.set_state(conn, model, challenger_since=None, last_retrain_request=None)
        log.info("%s: challenger %s %s: %s", model, challenger.version, comparison.outcome, comparison.reason)
