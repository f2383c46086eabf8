"""One version for a person to read (`models show NAME:VERSION`), and versions side by side (`compare`).

A trained version records about 45 metrics: holdout, backtest mean and per fold, and the baselines.
They are shown as one matrix, a row per metric and a column per evaluation (`holdout`, `backtest`,
`fold1`…, `persistence`, `climatology`), which fits a screen and reads in both directions.

>>> split_metric("backtest_fold2_nmae"), split_metric("persistence_rmse"), split_metric("skill")
(('nmae', 'fold2'), ('rmse', 'persistence'), ('skill', 'holdout'))
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from maestrale.cli.models import Metrics, RegistryUrl, Token, metric_columns, open_registry
from maestrale.cli.output import (
    JsonFlag,
    console,
    fields,
    fmt_map,
    fmt_metric,
    fmt_size,
    fmt_time,
    print_json,
    say,
    table,
    usage_error,
)

if TYPE_CHECKING:
    from maestrale.registry.types import ModelVersion

#: Metrics the trainer records, in the order a forecaster reads them.
BASE_METRICS = ("nmae", "nrmse", "mae", "rmse", "bias", "mape", "skill")
BASELINES = ("persistence", "climatology")
#: Lower is better for all but these (bias: closest to zero).
HIGHER_IS_BETTER = {"skill"}
_FOLD = re.compile(r"^backtest_fold(\d+)_(.+)$")
MAX_COMPARE = 10


def split_metric(key: str) -> tuple[str, str] | None:
    """`(metric, evaluation)` of a recorded metric key, or None for one outside the matrix (`n_train`)."""
    if m := _FOLD.match(key):
        return (m[2], f"fold{m[1]}") if m[2] in BASE_METRICS else None
    for prefix in ("backtest", *BASELINES):
        if key.startswith(prefix + "_") and key[len(prefix) + 1 :] in BASE_METRICS:
            return key[len(prefix) + 1 :], prefix
    return (key, "holdout") if key in BASE_METRICS else None


def metric_matrix(metrics: dict[str, float]) -> tuple[list[str], list[list[str]], dict[str, float]]:
    """`(columns, rows, others)`: the matrix of `split_metric` keys, and the keys outside it."""
    cells: dict[tuple[str, str], float] = {}
    others: dict[str, float] = {}
    for key, value in metrics.items():
        where = split_metric(key)
        if where is None:
            others[key] = value
        else:
            cells[where] = value
    found = {e for _, e in cells}
    folds = sorted((e for e in found if e.startswith("fold")), key=lambda e: int(e[4:]))
    columns = [e for e in ("holdout", "backtest") if e in found] + folds
    columns += [e for e in BASELINES if e in found]
    names = [m for m in BASE_METRICS if any((m, e) in cells for e in columns)]
    rows = [[m, *(fmt_metric(cells.get((m, e))) for e in columns)] for m in names]
    return columns, rows, others


def spec_summary(spec: dict[str, Any] | None) -> list[tuple[str, Any]]:
    """The lines of a recorded spec a reviewer looks at first (the whole spec: `--json`)."""
    if not spec:
        return [("spec", "none recorded (registered from Python, not trained from a spec)")]
    data = spec.get("data") or {}
    source = data.get("uri") or data.get("dataset") or ("dvc" if "dvc" in data else "sql" if data else "-")
    split = spec.get("split") or {}
    holdout = (split.get("holdout") or {}).get("test_start") or "-"
    backtest = split.get("backtest") or {}
    folds = f"{backtest.get('folds')} × {backtest.get('test_size')}" if backtest else "-"
    window = spec.get("train_window") or {}
    return [
        ("estimator", spec.get("estimator")),
        ("target", spec.get("target")),
        ("features", spec.get("feature_set") or ", ".join(spec.get("features") or []) or "-"),
        ("data", source),
        ("window", f"{window.get('start', '…')} → {window.get('end', '…')}" if window else "all rows"),
        ("holdout from", holdout),
        ("backtest", folds),
        ("refit", "yes" if split.get("refit") else "no"),
        ("weighting", f"half-life {(spec.get('sample_weight') or {}).get('half_life', '-')}"),
        ("capacity", spec.get("capacity")),
    ]


def _data_line(mv: ModelVersion) -> str:
    rows = next((e.detail or {} for e in mv.lineage if e.relation == "training_data"), {}).get("rows")
    parts = [f"fingerprint {(mv.data_fingerprint or '-')[:19]}", f"version {mv.data_version or '-'}"]
    return ", ".join(parts + ([f"{rows} rows"] if rows else []))


def show_version(mv: ModelVersion) -> None:
    """Print one version: its record, spec summary, params, metric matrix and lineage."""
    art = mv.artifact
    fields(
        mv.ref,
        [
            ("status", mv.status),
            ("aliases", ", ".join(mv.aliases) or "-"),
            ("created", f"{fmt_time(mv.created_at)} by {mv.created_by or '?'}"),
            ("duration", "-" if mv.duration_s is None else f"{mv.duration_s:.2f} s"),
            ("description", mv.description),
            ("reason", mv.reason),
            ("parent", "-" if mv.parent_version is None else f"{mv.name}:{mv.parent_version}"),
            ("artifact", f"{art.format}, {art.flavor}, {fmt_size(art.size)}, sha256 {art.sha256[:12]}"),
            ("data", _data_line(mv)),
            ("code", mv.code_version),
            ("tags", fmt_map(mv.tags)),
            ("inputs", _inputs(mv)),
        ],
    )
    fields("spec", spec_summary(mv.spec))
    if mv.params:
        table("params", ["param", "value"], sorted(mv.params.items()), no_wrap=["param"])
    columns, rows, others = metric_matrix(mv.metrics)
    if rows:
        table("metrics", ["metric", *columns], rows, no_wrap=["metric", *columns])
    if others:
        say(f"other metrics: {' '.join(f'{k}={fmt_metric(v)}' for k, v in sorted(others.items()))}")
    if mv.lineage:
        table("lineage", ["relation", "target"], [[e.relation, e.target] for e in mv.lineage])


def _inputs(mv: ModelVersion) -> str:
    if not mv.input_schema:
        return "-"
    names = [c.name for c in mv.input_schema]
    shown = ", ".join(names[:8]) + (f", … ({len(names)} in all)" if len(names) > 8 else "")
    return f"{len(names)} columns: {shown}"


# -- compare --------------------------------------------------------------------------------------
def _window(mv: ModelVersion) -> str:
    window = (mv.spec or {}).get("train_window") or {}
    return f"{window.get('start', '…')} → {window.get('end', '…')}" if window else "-"


def _rows(keys: Sequence[str], values: list[dict[str, Any]], fmt: Any = str) -> list[list[str]]:
    """One row per key, one cell per version, a leading `≠` where the versions differ."""
    out = []
    for key in keys:
        cells = ["-" if v.get(key) is None else fmt(v.get(key)) for v in values]
        out.append(["≠" if len(set(cells)) > 1 else "", key, *cells])
    return out


def _best(metric: str, cells: list[float | None]) -> int | None:
    """Index of the best value of a known metric (lowest error, highest skill, bias nearest 0)."""
    known = [(i, v) for i, v in enumerate(cells) if v is not None]
    base = split_metric(metric)
    if len(known) < 2 or base is None:
        return None
    name = base[0]
    key = (lambda iv: -iv[1]) if name in HIGHER_IS_BETTER else (lambda iv: abs(iv[1]))
    return min(known, key=key)[0]


def spec_diff(a: ModelVersion, b: ModelVersion) -> str:
    """A unified diff of two recorded specs as YAML (empty when they are the same)."""
    import yaml

    def lines(mv: ModelVersion) -> list[str]:
        return yaml.safe_dump(mv.spec or {}, sort_keys=True, default_flow_style=False).splitlines(True)

    return "".join(difflib.unified_diff(lines(a), lines(b), f"{a.ref} spec", f"{b.ref} spec"))


def comparison(items: list[ModelVersion], metrics: list[str] | None) -> dict[str, Any]:
    """What `compare` prints, as data: per section, one row per key with the versions' values."""
    data = [
        {
            "fingerprint": mv.data_fingerprint,
            "data version": mv.data_version,
            "window": _window(mv),
            "code": mv.code_version,
            "estimator": (mv.spec or {}).get("estimator") or mv.artifact.flavor,
            "aliases": ", ".join(mv.aliases) or None,
            "created": fmt_time(mv.created_at),
        }
        for mv in items
    ]
    param_keys = sorted({k for mv in items for k in mv.params})
    metric_keys = metrics if metrics is not None else sorted({k for mv in items for k in mv.metrics})
    return {
        "refs": [mv.ref for mv in items],
        "data": {k: [d[k] for d in data] for k in data[0]},
        "params": {k: [mv.params.get(k) for mv in items] for k in param_keys},
        "metrics": {k: [mv.metrics.get(k) for mv in items] for k in metric_keys},
        "spec_diffs": [
            {"from": items[0].ref, "to": mv.ref, "diff": spec_diff(items[0], mv)} for mv in items[1:]
        ],
    }


def _print_section(title: str, refs: list[str], section: dict[str, list[Any]], fmt: Any = str) -> None:
    values = [{k: vals[i] for k, vals in section.items()} for i in range(len(refs))]
    rows = _rows(list(section), values, fmt)
    table(title, ["", title.rstrip("s"), *refs], rows, no_wrap=refs, styles=_styles(rows))


def _styles(rows: list[list[str]]) -> list[str | None]:
    return ["bold yellow" if row[0] else None for row in rows]


def compare(
    refs: Annotated[
        list[str],
        typer.Argument(metavar="REF...", help="2 to 10 versions: NAME:VERSION, NAME@ALIAS or NAME."),
    ],
    metrics: Metrics = None,
    json_output: JsonFlag = False,
    registry: RegistryUrl = None,
    token: Token = None,
) -> None:
    """Compare versions side by side: data, params, metrics, and a diff of their recorded specs.

    Rows that differ start with ≠ (and are highlighted on a terminal); the best value of each known
    metric is bold. The versions may belong to one model or to several.

    Examples: maestrale models compare pv-foggia:1 pv-foggia:2
              maestrale models compare pv-foggia@champion pv-foggia@challenger --metrics all --json
    """
    if not 2 <= len(refs) <= MAX_COMPARE:
        raise usage_error(
            f"give 2 to {MAX_COMPARE} references, not {len(refs)}, e.g. pv-foggia:1 pv-foggia:2"
        )
    reg = open_registry(registry, token)
    items = [reg.get_version(r) for r in refs]  # the full records: spec included
    columns = metric_columns(metrics, items)
    result = comparison(items, columns)
    if json_output:
        print_json({**result, "versions": items})
        return
    names = result["refs"]
    _print_section("data", names, result["data"])
    if result["params"]:
        _print_section("params", names, result["params"])
    _print_metrics(names, result["metrics"])
    for d in result["spec_diffs"]:
        if d["diff"]:
            console().print(d["diff"], markup=False, highlight=False, soft_wrap=True)
        else:
            say(f"{d['from']} and {d['to']} were trained from the same spec")


def _print_metrics(refs: list[str], section: dict[str, list[float | None]]) -> None:
    rows, bold = [], []
    for key, cells in section.items():
        shown = [fmt_metric(v) for v in cells]
        rows.append(["≠" if len(set(shown)) > 1 else "", key, *shown])
        bold.append(_best(key, cells))
    table("metrics", ["", "metric", *refs], rows, no_wrap=refs, bold_cells=[
        None if i is None else i + 2 for i in bold
    ])  # fmt: skip


def register(models_app: typer.Typer) -> None:
    """Attach `compare` to the `models` group."""
    models_app.command("compare")(compare)
