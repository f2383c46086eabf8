"""Bounds on what clients send: integers that fit their columns, finite JSON, clean text, sane durations.

Every check names the offending field (a dotted path for nested JSON) and the fix, so the REST API
answers 400 instead of letting the database fail with an overflow or a malformed-JSON error.

>>> json_problem({"estimator": {"params": {"alpha": float("nan")}}}, "spec")
'spec.estimator.params.alpha is NaN: only finite numbers can be stored (leave the value out or use null)'
>>> check_int(3, "version")
3
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

#: Versions, ids and counts are INTEGER columns on PostgreSQL (32-bit, signed).
MAX_INT32 = 2**31 - 1
MAX_VERSION = MAX_INT32
#: Integers inside params and JSON documents: what every JSON reader (and BIGINT) holds exactly.
MIN_INT64, MAX_INT64 = -(2**63), 2**63 - 1
#: A page token's offset can never usefully exceed the number of rows a 32-bit id allows.
MAX_OFFSET = MAX_INT32
#: JSON documents (spec, profile, lineage detail) nest no deeper than this.
MAX_JSON_DEPTH = 64
#: The longest window, lag or test period anywhere (policies, monitoring queries, training specs);
#: `maestrale.vocabulary.parse_duration` enforces it.
MAX_DURATION = timedelta(days=3650)
MAX_DURATION_LABEL = "3650D (10 years)"


def check_int(value: int, what: str, lo: int = 1, hi: int = MAX_INT32) -> int:
    """`value` if `lo <= value <= hi`, else ValueError naming `what` and the range.

    >>> check_int(3, "version")
    3
    """
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"{what} must be an integer from {lo} to {hi}, not {value!r}")
    return value


def text_problem(value: str, what: str) -> str | None:
    """Why `value` cannot be stored as text (a NUL character, a lone surrogate), or None.

    >>> text_problem("a\\x00b", "description")
    'description contains a NUL character (\\\\x00), which databases cannot store in text: remove it'
    """
    if "\x00" in value:
        return f"{what} contains a NUL character (\\x00), which databases cannot store in text: remove it"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"{what} is not valid Unicode (a lone surrogate at position {exc.start}): send UTF-8 text"
    return None


def check_text(value: str, what: str) -> str:
    """`value` if it can be stored as text, else ValueError (see `text_problem`)."""
    problem = text_problem(value, what)
    if problem:
        raise ValueError(problem)
    return value


def _number_problem(value: float | int, path: str) -> str | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        if MIN_INT64 <= value <= MAX_INT64:
            return None
        return (
            f"{path} is an integer beyond 64 bits: store integers from -2**63 to 2**63-1 "
            "(pass larger ones as a string)"
        )
    if math.isfinite(value):
        return None
    kind = "NaN" if math.isnan(value) else "infinite"
    return f"{path} is {kind}: only finite numbers can be stored (leave the value out or use null)"


def json_problem(value: Any, path: str) -> str | None:
    """The first reason `value` is not a storable JSON document, or None.

    Storable: objects with string keys, arrays, strings without NUL, finite floats, 64-bit integers,
    booleans and null, nested at most `MAX_JSON_DEPTH` deep. The walk is iterative, so a deep or huge
    document costs no recursion.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"{where} nests deeper than {MAX_JSON_DEPTH} levels: flatten the document"
        if item is None or isinstance(item, bool | str):
            if isinstance(item, str) and (problem := text_problem(item, where)):
                return problem
        elif isinstance(item, int | float):
            if problem := _number_problem(item, where):
                return problem
        elif isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    return f"{where} has a key {key!r} of type {type(key).__name__}: JSON keys are strings"
                stack.append((child, f"{where}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))
        else:
            return (
                f"{where} is a {type(item).__name__}: only JSON values (objects, arrays, strings, "
                "numbers, booleans, null) can be stored; convert it first (e.g. .tolist(), str())"
            )
    return None


def check_json(value: Any, path: str) -> Any:
    """`value` if it is a storable JSON document, else ValueError naming the path (see `json_problem`)."""
    problem = json_problem(value, path)
    if problem:
        raise ValueError(problem)
    return value
