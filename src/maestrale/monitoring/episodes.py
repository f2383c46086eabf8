"""Alert episodes: repeated breaches of one condition are one episode, with a start, an end and a peak.

A condition evaluated daily over a 7-day window that fires for a week is one problem, not seven. The
monitor still records each breach (the audit trail), and groups them here:

- a breach of a condition with no open episode opens one (`started_at` = its evaluation's clock);
  only then does the monitor publish `maestrale.monitor.breach`;
- a later breach of the same condition joins the open episode: `last_at`, `breaches` and the peak
  (the worst value in the condition's direction) move;
- an evaluation where the condition does not fire marks the episode `clear_since`; once it has
  stayed clear for the condition's own window (every point the breach was computed on has left the
  window), the episode ends at `clear_since`. A breach before that resumes the same episode, so a
  condition flickering around its threshold is still one episode.

>>> peak_of(condition_below, [0.15, 0.08, 0.12])  # doctest: +SKIP
0.08
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from maestrale.monitoring import schema as t
from maestrale.platform.clock import aware
from maestrale.vocabulary import parse_window

if TYPE_CHECKING:
    from maestrale.monitoring.conditions import Breach
    from maestrale.monitoring.policy import Condition, Policy


def worse(c: Condition | None, value: float, than: float) -> bool:
    """True if `value` is a worse reading than `than` for condition `c` (lower for `below`, |·| for bias).

    >>> worse(None, 0.3, 0.2)
    True
    """
    if c is not None and c.below is not None:
        return value < than
    if c is not None and c.abs_above is not None:
        return abs(value) > abs(than)
    return value > than


def update_episodes(
    conn: Connection,
    *,
    model: str,
    version: int,
    policy: Policy,
    as_of: datetime,
    breaches: Iterable[Breach],
    breach_ids: dict[str, int],
) -> dict[str, tuple[int, bool]]:
    """Fold one evaluation's breaches into the model's episodes, inside the caller's transaction.

    `breach_ids` maps a condition name to the id of its breach row just recorded (linked to the
    episode). Returns `{condition: (episode id, opened now)}` for each breach; conditions of the policy
    that did not fire move their open episode towards its end.
    """
    e = t.monitor_episodes
    now = datetime.now(UTC)
    fired = {b.condition: b for b in breaches}
    q = select(e).where(e.c.model == model, e.c.ended_at.is_(None))
    open_rows = {r["condition"]: dict(r) for r in conn.execute(q).mappings().all()}
    out: dict[str, tuple[int, bool]] = {}
    conditions = {c.name: c for c in policy.conditions}
    for name, b in fired.items():
        c = conditions.get(name)
        row = open_rows.get(name)
        if row is None:
            res = conn.execute(
                insert(e).values(
                    model=model, policy=policy.name, condition=name, window=b.window, threshold=b.threshold,
                    started_at=as_of, last_at=as_of, clear_since=None, ended_at=None, peak_value=b.value,
                    peak_at=as_of, peak_metric=b.metric, breaches=1, first_version=version,
                    last_version=version, actions=_actions({}, b.actions), description=b.description,
                    updated_at=now,
                )
            )  # fmt: skip
            key = res.inserted_primary_key
            assert key is not None  # an INSERT of one row always has its key
            episode_id, opened = int(key[0]), True
        else:
            episode_id, opened = int(row["id"]), False
            values: dict[str, Any] = {
                "last_at": as_of, "clear_since": None, "breaches": row["breaches"] + 1,
                "last_version": version, "actions": _actions(row["actions"] or {}, b.actions),
                "updated_at": now,
            }  # fmt: skip
            if worse(c, b.value, row["peak_value"]):
                values.update(peak_value=b.value, peak_at=as_of, peak_metric=b.metric)
                values["description"] = b.description
            conn.execute(update(e).where(e.c.id == episode_id).values(**values))
        if name in breach_ids:
            conn.execute(
                update(t.monitor_breaches)
                .where(t.monitor_breaches.c.id == breach_ids[name])
                .values(episode_id=episode_id)
            )
        out[name] = (episode_id, opened)
    for name, row in open_rows.items():
        if name in fired:
            continue
        clear_since = aware(row["clear_since"]) if row["clear_since"] is not None else as_of
        window = conditions[name].window if name in conditions else row["window"]
        values = {"clear_since": clear_since, "updated_at": now}
        if as_of >= clear_since + parse_window(window):
            values["ended_at"] = clear_since  # clear for a whole window: the episode is over
        conn.execute(update(e).where(e.c.id == row["id"]).values(**values))
    return out


def _actions(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """Actions of an episode: `breach` once true stays true; retraining request ids accumulate."""
    merged = dict(old)
    if new.get("breach"):
        merged["breach"] = True
    merged.setdefault("breach", bool(new.get("breach")))
    retrain = new.get("retrain")
    if isinstance(retrain, str) and not retrain.startswith("not requested"):
        merged["retrain"] = [*merged.get("retrain", []), retrain]  # request ids, oldest first
    elif retrain is not None:
        merged["retrain_note"] = retrain  # why none was requested (the latest reason)
    return merged


def episodes(conn: Connection, model: str, *, limit: int = 1_000) -> list[dict[str, Any]]:
    """The newest `limit` episodes of `model`, oldest first, with aware datetimes and `open`."""
    e = t.monitor_episodes
    q = select(e).where(e.c.model == model).order_by(e.c.started_at.desc(), e.c.id.desc()).limit(limit)
    rows = conn.execute(q).mappings().all()
    out = []
    for r in reversed(rows):
        row = {k: (aware(v) if isinstance(v, datetime) else v) for k, v in r.items()}
        row["open"] = row["ended_at"] is None
        out.append(row)
    return out
