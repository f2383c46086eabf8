"""A pending challenger decided by a person: recorded exactly as the monitor records its own decisions.

The monitor judges a challenger on out-of-sample pairs and settles it in `ChallengerMixin._record`:
the `challenger` alias goes, one `monitor_decisions` row says what was decided and why, the model's
state frees it for the next retraining. A person (the web UI's "decide by hand") goes through that
same method, so the timeline, `GET /monitoring/models/{name}/decisions` and the audit trail show a
hand decision like any other; a promotion moves `champion` with the person as the actor and their
reason in the alias history (`maestrale.model.promoted` follows, as always).

>>> decide_challenger(monitor_store, registry_store, "pv-nrel-50", "rejected",
...                   reason="v5 trained on the faulty week", actor="alice")  # doctest: +SKIP
Decision(model='pv-nrel-50', challenger=5, champion=4, outcome='rejected', ...)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from maestrale.errors import Conflict, InvalidInput
from maestrale.limits import text_problem
from maestrale.monitoring.challenger import CHALLENGER, CHAMPION, ChallengerMixin
from maestrale.monitoring.policy import Policy, default_policy, policy_for
from maestrale.monitoring.promotion import Comparison

if TYPE_CHECKING:
    from maestrale.monitoring.store import MonitorStore
    from maestrale.registry.client import Registry
    from maestrale.registry.stores import RegistryStore
    from maestrale.registry.types import AliasChange

OUTCOMES = ("promoted", "rejected")
MAX_REASON = 500  # the alias history's and the decision's reason are bounded text


@dataclass(frozen=True, slots=True)
class Decision:
    """What a hand decision did."""

    model: str
    challenger: int
    champion: int | None
    outcome: str
    reason: str
    actor: str


class _Aliases:
    """The two alias moves `ChallengerMixin` makes, on a registry store, in a person's name."""

    def __init__(self, store: RegistryStore, actor: str) -> None:
        self.store, self.actor = store, actor

    def set_alias(self, name: str, alias: str, version: int, *, reason: str | None = None) -> AliasChange:
        return self.store.set_alias(name, alias, version, actor=self.actor, reason=reason)

    def delete_alias(self, name: str, alias: str) -> AliasChange:
        return self.store.delete_alias(name, alias, actor=self.actor)


class _ByHand(ChallengerMixin):
    """The monitor's decision recording (`_record`), with a person instead of a comparison."""

    def __init__(self, store: MonitorStore, aliases: _Aliases, policies: list[Policy]) -> None:
        self.store = store
        # `_record` only moves and deletes aliases: the store-backed stand-in does both, in the actor's name
        self.registry = cast("Registry", aliases)
        self.policies = policies


def decide_challenger(
    store: MonitorStore,
    registry: RegistryStore,
    model: str,
    outcome: str,
    *,
    reason: str,
    actor: str,
    policies: list[Policy] | None = None,
) -> Decision:
    """Promote or reject `model`'s pending challenger by hand; `Conflict` (409) when none is pending.

    The decision row carries the evidence so far (the out-of-sample pairs counted since the
    challenger's window opened) and the reason prefixed with "by hand (actor)".
    """
    if outcome not in OUTCOMES:
        raise InvalidInput(f"outcome {outcome!r}: choose promoted or rejected")
    reason = (reason or "").strip()
    if not reason:
        raise InvalidInput("give a reason: it goes into the decision record and the alias history")
    if problem := text_problem(reason, "reason"):
        raise InvalidInput(problem)
    if len(reason) > MAX_REASON:
        raise InvalidInput(f"the reason has {len(reason)} characters: keep it to {MAX_REASON}")
    aliases = registry.get_model(model).aliases
    challenger_v = aliases.get(CHALLENGER)
    if challenger_v is None:
        raise Conflict(f"{model!r} has no pending challenger: nothing to decide (it may have been decided)")
    if store.decided(model, challenger_v):
        raise Conflict(f"{model}:{challenger_v} was decided already; see its decision on the monitoring page")
    judge = _ByHand(store, _Aliases(registry, actor), policies or [default_policy()])
    policy = policy_for(judge.policies, model) or default_policy()
    state = store.state(model)
    now = datetime.now(UTC)
    since, as_of = state.get("challenger_since"), state.get("as_of") or now
    champion_v = aliases.get(CHAMPION)
    pairs = store.pairs_since(model, since, champion_v) if since is not None else 0
    said = f"by hand ({actor}): {reason}"[:MAX_REASON]
    if outcome == "promoted":
        registry.set_alias(model, CHAMPION, challenger_v, actor=actor, reason=said)
    challenger = registry.get_version(f"{model}:{challenger_v}")
    champion: Any = registry.get_version(f"{model}:{champion_v}") if champion_v is not None else _NoChampion()
    comparison = Comparison(outcome, said, pairs, {}, {})
    judge._record(model, champion, challenger, since or as_of, as_of, policy, comparison)
    return Decision(model, challenger_v, champion_v, outcome, said, actor)


class _NoChampion:
    """A model whose challenger has no champion to beat (the decision row allows a NULL champion)."""

    version = None
