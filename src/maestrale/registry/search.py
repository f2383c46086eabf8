"""The search filter language of the registry, compiled to SQL.

A filter is clauses joined by `and`: `FIELD OP VALUE` where FIELD is `name`, `version`, `status`,
`format`, `flavor`, `created_at`, `metrics.KEY`, `params.KEY` or `tags.KEY`; OP is one of
`= != < <= > >= like ilike`; VALUE is a quoted string or a number.

>>> compile_filter("metrics.nmae < 0.08 and tags.site = 'p50'")  # doctest: +SKIP
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, or_, select

from maestrale.errors import InvalidInput
from maestrale.registry import schema as s

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<field>[A-Za-z_][A-Za-z0-9_]*(?:\.(?:`[^`]+`|[A-Za-z0-9_.\-/]+))?)\s*
        (?P<op>!=|<=|>=|=|<|>|\b(?:not\s+like|like|ilike)\b)\s*
        (?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|-?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)
    )\s*""",
    re.VERBOSE | re.IGNORECASE,
)
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_PLAIN_FIELDS = {
    "name": s.models.c.name,
    "version": s.versions.c.version,
    "status": s.versions.c.status,
    "format": s.versions.c.artifact_format,
    "flavor": s.versions.c.flavor,
    "created_at": s.versions.c.created_at,
    "created_by": s.versions.c.created_by,
    "data_version": s.versions.c.data_version,
}
HELP = (
    "write clauses joined by 'and', e.g. \"metrics.nmae < 0.08 and tags.site = 'p50' and "
    'params.alpha >= 0.5"; fields: name, version, status, format, flavor, created_at, metrics.KEY, '
    "params.KEY, tags.KEY; operators: = != < <= > >= like ilike"
)


def _split(text: str) -> list[str]:
    # split on 'and' outside quotes
    parts, buf, quote = [], [], ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            buf.append(ch)
            if ch == quote and text[i - 1] != "\\":
                quote = ""
        elif ch in "'\"":
            quote = ch
            buf.append(ch)
        else:
            m = _AND.match(text, i)
            if m:
                parts.append("".join(buf))
                buf = []
                i = m.end()
                continue
            buf.append(ch)
        i += 1
    parts.append("".join(buf))
    return [p for p in (x.strip() for x in parts) if p]


def _value(raw: str) -> str | float:
    if raw[0] in "'\"":
        return bytes(raw[1:-1], "utf-8").decode("unicode_escape")
    return float(raw)


def _compare(col: Any, op: str, value: Any) -> ColumnElement[bool]:
    op = op.lower()
    if op in ("like", "ilike", "not like"):
        if not isinstance(value, str):
            raise InvalidInput(f"'{op}' needs a quoted pattern, e.g. name like 'pv-%'")
        if op == "like":
            return col.like(value)
        if op == "not like":
            return col.not_like(value)
        return col.ilike(value)
    return {
        "=": col == value,
        "!=": col != value,
        "<": col < value,
        "<=": col <= value,
        ">": col > value,
        ">=": col >= value,
    }[op]


def _clause(field: str, op: str, value: str | float) -> ColumnElement[bool]:
    if "." in field:
        kind, key = field.split(".", 1)
        key = key.strip("`")
        kind = kind.lower()
        vid = s.versions.c.id
        if kind == "metrics":
            if isinstance(value, str):
                raise InvalidInput(f"metrics are numbers: compare {field} with a number, not {value!r}")
            t = s.version_metrics
            cond = _compare(t.c.value, op, value)
        elif kind == "params":
            t = s.version_params
            if isinstance(value, float):
                cond = _compare(t.c.value_num, op, value)
            elif op in ("=", "!="):
                match = or_(t.c.value == value, t.c.value == json.dumps(value))
                cond = match if op == "=" else ~match
            else:
                cond = _compare(t.c.value, op, value)
        elif kind == "tags":
            t = s.version_tags
            cond = _compare(t.c.value, op, value if isinstance(value, str) else _num_text(value))
        else:
            raise InvalidInput(f"unknown field {field!r}: {HELP}")
        return exists(select(1).where(t.c.version_id == vid, t.c.key == key, cond))
    col = _PLAIN_FIELDS.get(field.lower())
    if col is None:
        raise InvalidInput(f"unknown field {field!r}: {HELP}")
    if field.lower() == "version" and isinstance(value, float):
        value = int(value)
    return _compare(col, op, value)


def _num_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)


def compile_filter(text: str | None) -> ColumnElement[bool] | None:
    """Compile a filter string into a SQL condition over `versions` joined with `models`."""
    if not text or not text.strip():
        return None
    conds = []
    for part in _split(text):
        m = _TOKEN.fullmatch(part)
        if not m:
            if re.search(r"\bor\b", part, re.IGNORECASE):
                raise InvalidInput(f"'or' is not supported in filters; run two searches. {HELP}")
            raise InvalidInput(f"cannot parse filter clause {part!r}: {HELP}")
        conds.append(_clause(m["field"], m["op"], _value(m["value"])))
    return and_(*conds)


def compile_order(text: str | None) -> list[Any]:
    """Compile `FIELD [asc|desc], …` (FIELD as in filters; metrics.KEY sorts by that metric)."""
    if not text:
        return [s.versions.c.created_at.desc(), s.versions.c.id.desc()]
    out: list[Any] = []
    for item in text.split(","):
        words = item.strip().split()
        if not words or len(words) > 2 or (len(words) == 2 and words[1].lower() not in ("asc", "desc")):
            raise InvalidInput(f"cannot parse order_by {item!r}; e.g. 'metrics.nmae asc, version desc'")
        field, desc = words[0], len(words) == 2 and words[1].lower() == "desc"
        if field.lower().startswith("metrics."):
            key = field.split(".", 1)[1]
            col: Any = (
                select(s.version_metrics.c.value)
                .where(s.version_metrics.c.version_id == s.versions.c.id, s.version_metrics.c.key == key)
                .scalar_subquery()
            )
        elif field.lower() in _PLAIN_FIELDS:
            col = _PLAIN_FIELDS[field.lower()]
        else:
            raise InvalidInput(f"cannot order by {field!r}; use name, version, created_at or metrics.KEY")
        # NULLs (versions without that metric) last either way
        out.append(col.desc().nulls_last() if desc else col.asc().nulls_last())
    out.append(s.versions.c.id.desc())
    return out


def encode_token(offset: int) -> str:
    """Opaque page token for an offset."""
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def decode_token(token: str | None) -> int:
    """Offset from a page token, with a clear error for a forged or stale one."""
    if not token:
        return 0
    try:
        kind, _, value = base64.urlsafe_b64decode(token.encode()).decode().partition(":")
        if kind != "o" or int(value) < 0:
            raise ValueError
        return int(value)
    except ValueError:
        raise InvalidInput(
            f"invalid page_token {token!r}: pass back the next_page_token you received"
        ) from None
