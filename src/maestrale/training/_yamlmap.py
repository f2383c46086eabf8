"""YAML line numbers for spec errors: compose the node tree once, map field paths to lines.

>>> raw, lines = parse("name: x\\nsplit:\\n  holdout: {test_start: soon}\\n", "<text>")
>>> lines[("split", "holdout", "test_start")]
3
"""

from __future__ import annotations

import difflib
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from maestrale import yamlsafe
from maestrale.training import datasource as D
from maestrale.training import spec as S

Path = tuple[str | int, ...]
_MERGE_TAG = "tag:yaml.org,2002:merge"

# What to write, by field path (list indices dropped): the "instead" of each message.
EXAMPLES = {
    "name": "name: pv-nrel-50",
    "data": "data: {dataset: nrel_system50}  or  data: {uri: data/pv.csv}",
    "data.uri": "uri: data/pv.csv  (or abfs://container/pv.parquet, s3://bucket/pv.csv)",
    "data.dvc": "dvc: {repo: /srv/pv-data, path: data/pv.csv, rev: v2}",
    "data.sql": "sql: {url: ${PV_DB_URL}, query: SELECT time, ghi, power_kw FROM pv ORDER BY time}",
    "data.dataset": "dataset: nrel_system50",
    "target": "target: power_kw",
    "features": "features: [ghi, temp_air]",
    "estimator": "estimator: sklearn.ensemble:HistGradientBoostingRegressor",
    "params": "params: {max_iter: 200, learning_rate: 0.05}",
    "split.holdout.test_start": "test_start: 2011-08-01",
    "split.holdout.test_fraction": "test_fraction: 0.2",
    "split.backtest": "backtest: {folds: 3, test_size: 30D}",
    "split.backtest.folds": "folds: 3",
    "split.backtest.test_size": 'test_size: "30D"  (or a row count: 720)',
    "baselines.persistence.lag": 'lag: "24h"',
    "capacity": "capacity: 3.4",
    "tags": "tags: {site: p50}",
    "train_window": "train_window: {start: 2011-04-15, end: 2011-08-31}",
    "time_limit_s": "time_limit_s: 600",
    "metrics": "metrics: [mae, rmse, nmae, skill]",
    "fleet": "fleet: {site: [p50, p51]}  or  fleet: [{site: p50, capacity: 3.4}]",
}


def _fields(*models: type[BaseModel]) -> list[str]:
    return sorted({f for m in models for f in m.model_fields})


# Fields allowed at each mapping of the spec, for "unknown field … did you mean …" hints.
ALLOWED = {
    "": _fields(S.TrainingSpec),
    "data": _fields(D.UriSource, D.DvcSource, D.SqlSource, D.DatasetSource),
    "data.dvc": _fields(D.DvcLocation),
    "data.sql": _fields(D.SqlQuery),
    "split": _fields(S.SplitSpec),
    "split.holdout": _fields(S.Holdout),
    "split.backtest": _fields(S.Backtest),
    "baselines": _fields(S.Baselines),
    "baselines.persistence": _fields(S.Persistence),
    "baselines.climatology": _fields(S.Climatology),
    "train_window": _fields(S.TrainWindow),
}


def parse(text: str, source: str) -> tuple[dict[str, Any], dict[Path, int]]:
    """The spec as plain data plus the 1-based line of every key and list item, from one bounded parse.

    The text goes through `maestrale.yamlsafe` (size, depth and alias-expansion limits) before anything
    is constructed, so a 600-byte alias bomb is refused in milliseconds.
    """
    from maestrale.training.spec import SpecError, SpecIssue

    try:
        node = yamlsafe.compose(text)
        if not isinstance(node, yaml.MappingNode):
            raise SpecError(
                source,
                [SpecIssue(path="", line=1, message="a spec is a YAML mapping: start with `name: my-model`")],
            )
        lines, duplicates = _walk(node)
        if duplicates:  # YAML would silently keep the last one: say so instead
            raise SpecError(source, duplicates)
        data = yamlsafe.construct(node)  # after the walk: construction flattens `<<` merges in place
    except yamlsafe.YamlError as exc:
        raise SpecError(source, [SpecIssue(path="", line=exc.line, message=exc.message)]) from None
    return data, lines


def _key_text(key: yaml.Node) -> str:
    if isinstance(key, yaml.ScalarNode):
        return key.value
    return f"<{key.id} key>" if isinstance(key, yaml.MappingNode | yaml.SequenceNode) else "<key>"


def _walk(root: yaml.Node) -> tuple[dict[Path, int], list[S.SpecIssue]]:
    """Lines by field path and duplicated keys, visiting each composed node once.

    Iterative, in document order, and an alias is not followed again: an anchored value is mapped
    where it is written, an error inside a later alias of it points at the line that uses the alias,
    and the walk costs the size of the text, never of its expansion. Keys merged with
    `<<: *defaults` are not duplicates of the keys written next to them (those override).
    """
    lines: dict[Path, int] = {(): root.start_mark.line + 1}
    duplicates: list[S.SpecIssue] = []
    visited: set[int] = set()
    stack: list[tuple[yaml.Node, Path, bool]] = [(root, (), False)]
    while stack:
        node, path, merged_in = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        children: list[tuple[yaml.Node, Path, bool]] = []
        if isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines.setdefault((*path, i), item.start_mark.line + 1)
                children.append((item, (*path, i), False))
        elif isinstance(node, yaml.MappingNode):
            seen: dict[str, int] = {}
            for key, value in node.value:
                if key.tag == _MERGE_TAG:
                    merged = value.value if isinstance(value, yaml.SequenceNode) else [value]
                    children += [(m, path, True) for m in merged if isinstance(m, yaml.MappingNode)]
                    continue
                k, line = _key_text(key), key.start_mark.line + 1
                if k in seen:
                    duplicates.append(
                        S.SpecIssue(
                            path=_dotted((*path, k)),
                            line=line,
                            message=f"{k!r} is given twice (first on line {seen[k]}): keep one",
                        )
                    )
                seen[k] = line
                if merged_in:  # the mapping's own keys, set before, win over merged ones
                    lines.setdefault((*path, k), line)
                else:
                    lines[(*path, k)] = line  # the key's line reads best
                children.append((value, (*path, k), False))
        stack.extend(reversed(children))  # popped in document order
    return lines, duplicates


def _clean(loc: tuple[Any, ...]) -> Path:
    """Drop pydantic's union tags and function wrappers from an error location."""
    return tuple(
        p for p in loc if p not in D.SOURCE_TAGS and not (isinstance(p, str) and p.startswith("function-"))
    )


def _line(path: Path, lines: dict[Path, int]) -> int | None:
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())


def _dotted(path: Path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _key(path: Path) -> str:
    """Dotted path without list indices, the key of EXAMPLES/ALLOWED (`data.dvc.rev`)."""
    return ".".join(str(p) for p in path if not isinstance(p, int))


def describe(err: ErrorDetails, path: Path) -> str:
    """A message for one pydantic error that says what to write instead."""
    kind, key = err["type"], _key(path)
    example = EXAMPLES.get(key) or EXAMPLES.get(_key(path[:-1]))
    if kind == "extra_forbidden":
        parent, field = _key(path[:-1]), str(path[-1])
        allowed = ALLOWED.get(parent, [])
        close = difflib.get_close_matches(field, allowed, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        return f"unknown field {field!r}; {hint}allowed here: {', '.join(allowed)}"
    if kind == "missing":
        return f"required field {str(path[-1])!r} is missing: add e.g. `{EXAMPLES.get(key, path[-1])}`"
    msg = err["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in {"value_error", "assertion_error", "data_source"}:
        return msg
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
    return f"{msg}{shown}" + (f"; write e.g. `{example}`" if example else "")


def issues(exc: ValidationError, lines: dict[Path, int]) -> list[S.SpecIssue]:
    """One `SpecIssue` per pydantic error, sorted by line, each with its path, line and fix."""
    out: list[S.SpecIssue] = []
    for err in exc.errors(include_url=False):
        path = _clean(err["loc"])
        # a union of types (e.g. `Duration | int`) reports one error per branch: keep the first
        if path and isinstance(path[-1], str) and path[-1] in {"int", "str", "float", "bool"}:
            path = path[:-1]
        issue = S.SpecIssue(path=_dotted(path), line=_line(path, lines), message=describe(err, path))
        if not any(o.path == issue.path and o.line == issue.line for o in out):
            out.append(issue)
    return sorted(out, key=lambda i: (i.line or 0, i.path))
