"""The compare page (`/compare?v=NAME:V&v=NAME:V`): 2 to 10 versions, of one model or several, side
by side: data and code, params and metrics with the differing rows marked, the diff of their recorded
specs, and their holdout forecasts overlaid on the actuals.

>>> # GET /compare?v=pv-foggia:1&v=pv-foggia:2&v=pv-torino@champion
"""

from __future__ import annotations

import difflib
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from maestrale.errors import InvalidInput, NotFound
from maestrale.refs import ModelRef
from maestrale.registry.types import ModelVersion
from maestrale.ui.pages.version import break_gaps, holdout_series, spec_yaml, split_metric
from maestrale.ui.web import current_viewer, render

router = APIRouter()
MIN_REFS, MAX_REFS = 2, 10
MAX_REF_CHARS = 300
#: Points of the overlaid chart: the union of up to 10 holdouts' times is thinned to this many.
MAX_POINTS = 5_000
#: Lower is better for every known metric but these (bias: nearest zero), as `maestrale models compare`.
HIGHER_IS_BETTER = {"skill"}


def parse_refs(raw: list[str]) -> list[ModelRef]:
    """The `v` parameters as references, blanks dropped and repeats kept once; 400 naming the problem.

    >>> [str(r) for r in parse_refs(["pv:1", "", "pv@champion", "pv:1"])]
    ['pv:1', 'pv@champion']
    """
    refs: list[ModelRef] = []
    for text in (t.strip() for t in raw):
        if not text:
            continue
        if len(text) > MAX_REF_CHARS:
            raise InvalidInput(f"v={text[:40]!r}…: a reference is at most {MAX_REF_CHARS} characters")
        try:
            ref = ModelRef.parse(text)
        except InvalidInput as exc:
            raise InvalidInput(f"v={text[:80]!r} is not a version reference ({exc})") from None
        if ref not in refs:
            refs.append(ref)
    if not MIN_REFS <= len(refs) <= MAX_REFS:
        raise InvalidInput(
            f"{len(refs)} distinct version(s) given: compare {MIN_REFS} to {MAX_REFS}, "
            "e.g. /compare?v=pv-foggia:1&v=pv-foggia:2"
        )
    return refs


def _best(metric: str, values: list[Any]) -> int | None:
    base = split_metric(metric)
    known = [(i, v) for i, v in enumerate(values) if isinstance(v, int | float)]
    if base is None or len(known) < 2 or len({v for _, v in known}) < 2:
        return None
    if base[0] in HIGHER_IS_BETTER:
        return max(known, key=lambda iv: iv[1])[0]
    return min(known, key=lambda iv: abs(iv[1]))[0]


def side_by_side(items: list[ModelVersion]) -> dict[str, list[dict[str, Any]]]:
    """Rows of data facts, params and metrics: one value per version, `diff` when they differ and,
    for known metrics, the index of the best one."""

    def rows(section: dict[str, list[Any]], metrics: bool = False) -> list[dict[str, Any]]:
        return [
            {
                "key": key, "cells": values, "diff": len({repr(v) for v in values}) > 1,
                "best": _best(key, values) if metrics else None,
            }
            for key, values in section.items()
        ]  # fmt: skip

    data: dict[str, list[Any]] = {
        "model": [mv.name for mv in items],
        "created": [mv.created_at for mv in items],
        "aliases": [", ".join(mv.aliases) or None for mv in items],
        "reason": [mv.reason for mv in items],
        "data fingerprint": [mv.data_fingerprint for mv in items],
        "data version": [mv.data_version for mv in items],
        "code version": [mv.code_version for mv in items],
        "estimator": [(mv.spec or {}).get("estimator") or mv.artifact.flavor for mv in items],
    }
    params = sorted({k for mv in items for k in mv.params})
    metrics = sorted({k for mv in items for k in mv.metrics}, key=_metric_order)
    return {
        "data": rows(data),
        "params": rows({k: [mv.params.get(k) for mv in items] for k in params}),
        "metrics": rows({k: [mv.metrics.get(k) for mv in items] for k in metrics}, metrics=True),
    }


def _metric_order(key: str) -> tuple[int, str]:
    # the version's own holdout figures first, then baselines and folds, then counts and the rest
    where = split_metric(key)
    return (0 if where and where[1] == "holdout" else 1 if where else 2, key)


def spec_diffs(items: list[ModelVersion]) -> list[dict[str, Any]]:
    """Each version's spec against the first's, as unified-diff lines tagged add/del/hunk/context."""
    texts = [spec_yaml(mv.spec).splitlines(True) for mv in items]  # each dumped once
    out = []
    for mv, text in zip(items[1:], texts[1:], strict=True):
        lines = difflib.unified_diff(texts[0], text, items[0].ref, mv.ref)
        tagged = []
        for line in lines:
            kind = (
                "head"
                if line.startswith(("---", "+++"))
                else "hunk"
                if line.startswith("@@")
                else ("add" if line.startswith("+") else "del" if line.startswith("-") else "ctx")
            )
            tagged.append((kind, line.rstrip("\n")))
        out.append({"from": items[0].ref, "to": mv.ref, "lines": tagged})
    return out


def overlay(
    items: list[ModelVersion], docs: list[dict[str, Any] | None], target: str
) -> dict[str, Any] | None:
    """One line per version's holdout forecast, and one actual per model, on the union of their times.

    When the holdouts carry entities, each version's most sampled entity is drawn (the caption says so).
    """
    by_version: dict[str, dict[int, float]] = {}
    actual: dict[str, dict[int, float]] = {}
    for mv, doc in zip(items, docs, strict=True):
        if doc is None:
            continue
        groups = holdout_series(doc)
        if not groups:  # a series of no points: nothing to draw for this version
            continue
        group = groups[0]
        by_version[mv.ref] = dict(zip(group["x"], group["forecast"], strict=True))
        actual.setdefault(mv.name, {}).update(zip(group["x"], group["actual"], strict=True))
    if not by_version:
        return None
    times = sorted({t for series in by_version.values() for t in series})
    if len(times) > MAX_POINTS:  # evenly thinned: the chart stays light whatever the holdouts
        step = len(times) / MAX_POINTS
        times = [times[int(i * step)] for i in range(MAX_POINTS)]
    labels = [f"actual {name}" if len(actual) > 1 else "actual" for name in actual] + list(by_version)
    x, columns = break_gaps(
        times, *([s.get(t) for t in times] for s in [*actual.values(), *by_version.values()])
    )
    series = [
        {"label": label, "values": values, **({"color": "#1b1f24", "width": 2} if i < len(actual) else {})}
        for i, (label, values) in enumerate(zip(labels, columns, strict=True))
    ]
    return {"type": "line", "x": x, "series": series, "y_label": target}


def _holdout(store: Any, mv: ModelVersion) -> tuple[dict[str, Any] | None, str | None]:
    try:
        doc = store.holdout(mv.ref)
    except NotFound as exc:  # a malformed stored series: the comparison still opens without it
        return None, str(exc)
    return doc, None if doc is not None else "no holdout series recorded"


def _slots(picked: list[str]) -> list[str]:
    # the picker's inputs: the refs compared, and one empty input more (at least two, at most ten)
    return (picked + [""] * MAX_REFS)[: min(MAX_REFS, max(MIN_REFS, len(picked) + 1))]


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request, v: list[str] = Query([])) -> HTMLResponse:
    """The comparison of the `v` versions; without any, the form to pick them."""
    viewer = current_viewer(request)
    if len(v) > 50:  # before parsing: a long repeated list is refused whole
        raise InvalidInput(f"{len(v)} v parameters: compare {MIN_REFS} to {MAX_REFS} versions")
    if not any(t.strip() for t in v):
        return render(request, "compare.html", viewer=viewer, items=[], slots=_slots([]))
    refs = parse_refs(v)
    store = request.app.state.store
    items = [store.get_version(ref) for ref in refs]  # NotFound: 404 naming the missing one
    if len({mv.ref for mv in items}) < MIN_REFS:  # an alias resolved to a version also given by number
        raise InvalidInput(f"{', '.join(map(str, refs))} are one version: pick {MIN_REFS} different ones")
    holdouts = [_holdout(store, mv) for mv in items]
    targets = {str((mv.spec or {}).get("target") or "target") for mv in items}
    chart = overlay(items, [doc for doc, _ in holdouts], " / ".join(sorted(targets)))
    return render(
        request, "compare.html", viewer=viewer, items=items, slots=_slots([str(r) for r in refs]),
        table=side_by_side(items), diffs=spec_diffs(items), chart=chart,
        missing=[(mv.ref, why) for mv, (_, why) in zip(items, holdouts, strict=True) if why],
        entities=any(doc and doc["entity"] for doc, _ in holdouts),
    )  # fmt: skip
