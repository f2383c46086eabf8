"""A challenger decided by hand (`maestrale.monitoring.manual`) is recorded like the monitor's own
decisions: the challenger alias goes, one decision row, champion moved with the actor and the reason."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from maestrale.errors import Conflict, InvalidInput
from maestrale.monitoring.manual import decide_challenger
from maestrale.monitoring.store import MonitorStore
from maestrale.registry.artifacts import ArtifactStore
from maestrale.registry.formats import serialize
from maestrale.registry.store import SqlStore
from maestrale.registry.types import VersionCreate


def _world(url: str, tmp_path, name: str) -> tuple[SqlStore, MonitorStore]:
    """`name` with v1 champion and v2 challenger, the monitor judging v2 since 1 July."""
    from sklearn.linear_model import Ridge

    store, blobs = SqlStore(url), ArtifactStore(f"file://{tmp_path}/artifacts")
    for alpha in (1.0, 2.0):
        ser = serialize(Ridge(alpha=alpha).fit(np.arange(8.0).reshape(4, 2), [0.0, 1, 2, 3]), None, None)
        obj = blobs.put_bytes(ser.data)
        artifact = {"key": obj.key, "sha256": obj.sha256, "size": obj.size, "format": ser.format,
                    "flavor": ser.flavor}  # fmt: skip
        store.create_version(name, VersionCreate(artifact=artifact))
    store.set_alias(name, "champion", 1, actor="tests")
    store.set_alias(name, "challenger", 2, actor="monitor", reason="retrained by r-1")
    monitor = MonitorStore(url)
    with monitor._writer.begin() as conn:
        monitor.set_state(
            conn, name, as_of=datetime(2012, 7, 20, tzinfo=UTC), last_retrain_request="r-1",
            challenger_since=datetime(2012, 7, 1, tzinfo=UTC), retrain_status="completed",
        )  # fmt: skip
    return store, monitor


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_promote_by_hand_is_recorded_like_the_monitors_decision(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'r.db'}" if backend == "sqlite" else request.getfixturevalue("fresh_pg")
    store, monitor = _world(url, tmp_path, "pv-hand")
    with pytest.raises(InvalidInput, match="give a reason"):
        decide_challenger(monitor, store, "pv-hand", "promoted", reason="  ", actor="alice")
    with pytest.raises(InvalidInput, match="promoted or rejected"):
        decide_challenger(monitor, store, "pv-hand", "maybe", reason="x", actor="alice")
    done = decide_challenger(monitor, store, "pv-hand", "promoted", reason="clear skies back", actor="alice")
    assert (done.champion, done.challenger, done.outcome) == (1, 2, "promoted")
    assert store.get_model("pv-hand").aliases == {
        "champion": 2
    }  # challenger alias gone, as after the monitor
    moves = store.alias_history("pv-hand")
    promoted = next(m for m in moves if m.alias == "champion" and m.version == 2)
    assert promoted.actor == "alice" and promoted.reason == "by hand (alice): clear skies back"
    assert moves[-1].alias == "challenger" and moves[-1].version is None and moves[-1].actor == "alice"
    [decision] = monitor.decisions("pv-hand")
    assert decision["outcome"] == "promoted" and decision["champion_version"] == 1
    assert decision["challenger_version"] == 2 and decision["reason"].startswith("by hand (alice)")
    state = monitor.state("pv-hand")
    assert state["challenger_since"] is None and state["last_retrain_request"] is None
    with pytest.raises(Conflict, match="no pending challenger"):
        decide_challenger(monitor, store, "pv-hand", "rejected", reason="again", actor="alice")


def test_reject_by_hand_keeps_the_champion(tmp_path):
    store, monitor = _world(f"sqlite:///{tmp_path / 'r.db'}", tmp_path, "pv-no")
    decide_challenger(monitor, store, "pv-no", "rejected", reason="trained on the faulty week", actor="bob")
    assert store.get_model("pv-no").aliases == {"champion": 1}
    assert monitor.decisions("pv-no")[0]["outcome"] == "rejected"


def test_the_audit_trail_names_the_person_who_decided(tmp_path):
    from maestrale.api.audit import audit_trail

    url = f"sqlite:///{tmp_path / 'r.db'}"
    store, monitor = _world(url, tmp_path, "pv-who")
    decide_challenger(monitor, store, "pv-who", "rejected", reason="sensor was iced", actor="bob_1")
    [mine] = audit_trail(store, monitor, url, kinds=("decision",), actor="bob_1")
    assert mine["actor"] == "bob_1" and mine["details"]["outcome"] == "rejected"
    assert audit_trail(store, monitor, url, kinds=("decision",), actor="monitor") == []
    assert audit_trail(store, monitor, url, kinds=("decision",), actor="bob%") == []  # LIKE is escaped
