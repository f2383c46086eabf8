"""The chart runs several monitors on PostgreSQL (they share the fleet by leases) and refuses it on SQLite."""

from __future__ import annotations

import pytest

pytest.importorskip("kubernetes_validate", reason="needs the dev extra (kubernetes-validate)")
helm = pytest.importorskip("helm_python", reason="needs the dev extra (helm-python-sdk)")
from maestrale.deploy.validate import validate_documents  # noqa: E402
from tests.unit.test_deploy_chart import CREATED, EXISTING, _by, _merge, helm_template  # noqa: E402

SQLITE = {"secrets": {"values": {"databaseUrl": "sqlite:////var/lib/maestrale/registry.db"}}}


def _monitor(values: dict) -> dict:
    return _by(helm_template(values), "Deployment")["maestrale-monitor"]["spec"]


def test_two_monitors_by_default_rolling_with_no_gap() -> None:
    docs = helm_template(CREATED)
    assert validate_documents(docs, external=set()) == []
    spec = _by(docs, "Deployment")["maestrale-monitor"]["spec"]
    assert spec["replicas"] == 2
    # leases keep two monitors from evaluating one model: a rollout may overlap old and new pods
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    assert _monitor(EXISTING)["replicas"] == 2  # the URL is in a Secret the chart cannot read


def test_one_monitor_is_recreated() -> None:
    spec = _monitor(_merge(CREATED, {"monitor": {"replicas": 1}}))
    assert spec["replicas"] == 1 and spec["strategy"] == {"type": "Recreate"}


@pytest.mark.parametrize(
    "values",
    [
        _merge(CREATED, SQLITE),
        _merge(EXISTING, {"config": {"extra": {"MAESTRALE_DATABASE_URL": "sqlite:////data/m.db"}}}),
    ],
)
def test_sqlite_refuses_more_than_one_monitor(values: dict) -> None:
    with pytest.raises(
        helm.HelmError, match=r"monitor.replicas is 2 but the database is SQLite .*set monitor"
    ):
        helm_template(values)
    assert _monitor(_merge(values, {"monitor": {"replicas": 1}}))["replicas"] == 1


def test_zero_monitors_is_not_a_replica_count() -> None:
    with pytest.raises(helm.HelmError, match="/monitor/replicas"):
        helm_template(_merge(EXISTING, {"monitor": {"replicas": 0}}))
