"""What registering a version writes: its `versions` row and its params, metrics, tags and lineage.

>>> with engine.begin() as conn:  # doctest: +SKIP
...     vid = conn.execute(INSERT_VERSION, version_row(model_id, 3, utcnow(), new)).scalar_one()
...     insert_details(conn, vid, "pv-forecast", new)
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert

from maestrale.registry import schema as s
from maestrale.registry.types import LineageEntry, VersionCreate

# Built once: SQLAlchemy then reuses their compiled form, which matters on the register hot path.
INSERT_VERSION = insert(s.versions).returning(s.versions.c.id)
_INSERT_PARAM = insert(s.version_params)
_INSERT_METRIC = insert(s.version_metrics)
_INSERT_TAG = insert(s.version_tags)
_INSERT_LINEAGE = insert(s.lineage)


def param_num(v: Any) -> float | None:
    """The numeric view of a param for range filters: None for non-numbers and non-finite values.

    >>> param_num("0.5"), param_num(10**400), param_num(True)
    (0.5, None, None)
    """
    if isinstance(v, bool) or v is None:
        return None
    try:
        num = float(v)  # "0.5" counts too: params often arrive as strings from configs
    except (TypeError, ValueError, OverflowError):
        return None
    return num if math.isfinite(num) else None


def version_row(model_id: int, number: int, now: datetime, new: VersionCreate) -> dict[str, Any]:
    """The `versions` row of a new version."""
    a = new.artifact
    return {
        "model_id": model_id,
        "version": number,
        "status": "ready",
        "created_at": now,
        "created_by": new.created_by,
        "description": new.description,
        "artifact_key": a.key,
        "artifact_sha256": a.sha256,
        "artifact_size": a.size,
        "artifact_format": a.format,
        "flavor": a.flavor,
        "data_fingerprint": new.data_fingerprint,
        "data_version": new.data_version,
        "input_schema": [c.model_dump() for c in new.input_schema] if new.input_schema else None,
        "code_version": new.code_version,
        "package_versions": new.package_versions,
        "duration_s": new.duration_s,
        "parent_version": new.parent_version,
        "reason": new.reason,
        "spec": new.spec,
        "profile": new.profile,
        "holdout": new.holdout,
        "idempotency_key": new.idempotency_key,
    }


def insert_details(conn: Connection, vid: int, name: str, new: VersionCreate) -> None:
    """Params, metrics, tags and lineage of version row `vid` (plus its `parent` entry), in `conn`."""
    if new.params:
        conn.execute(
            _INSERT_PARAM,
            [
                {"version_id": vid, "key": k, "value": json.dumps(v), "value_num": param_num(v)}
                for k, v in new.params.items()
            ],
        )
    if new.metrics:
        conn.execute(
            _INSERT_METRIC, [{"version_id": vid, "key": k, "value": float(v)} for k, v in new.metrics.items()]
        )
    if new.tags:
        conn.execute(
            _INSERT_TAG, [{"version_id": vid, "key": k, "value": str(v)} for k, v in new.tags.items()]
        )
    lineage = list(new.lineage)
    if new.parent_version is not None:
        parent = f"{name}:{new.parent_version}"
        lineage.append(LineageEntry(relation="parent", target=parent, detail={"reason": new.reason}))
    if lineage:
        conn.execute(
            _INSERT_LINEAGE,
            [
                {"version_id": vid, "relation": x.relation, "target": x.target, "detail": x.detail}
                for x in lineage
            ],
        )
