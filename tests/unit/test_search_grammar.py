"""The filter grammar of `maestrale.registry.search`: literals, escapes, limits and error positions.

The property tests run with a fixed seed: `compile_filter`/`compile_order` raise nothing but
InvalidInput on any text, and `quote` writes literals the parser reads back exactly. (The same
round trip through a real database is in tests/integration/test_search_roundtrip.py.)
"""

from __future__ import annotations

import base64
import contextlib

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql, sqlite

from maestrale.errors import InvalidInput
from maestrale.registry.search import (
    MAX_CLAUSES,
    compile_filter,
    compile_order,
    decode_token,
    encode_token,
    parse_filter,
    quote,
)

PROPERTY = settings(
    derandomize=True,
    database=None,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FIELDS = [
    "name",
    "version",
    "status",
    "created_at",
    "metrics.nmae",
    "params.alpha",
    "tags.site",
    "tags.`a b`",
    "x",
]
OPS = ["=", "!=", "<", "<=", ">", ">=", "like", "ilike", "not like", "=="]
VALUES = [
    "'p50'",
    '"p50"',
    "0.5",
    "-1e999",
    "1e40",
    "99999999999999999999",
    r"'\u00fc'",
    r"'\x'",
    "'",
    "'a\\",
]
fragments = st.sampled_from(FIELDS + OPS + VALUES + ["and", "or", "AND", "(", ")", ",", "asc", "desc"])
# grammar-shaped noise: mostly real tokens, sometimes arbitrary text, in any order
filter_like = st.lists(st.one_of(fragments, st.text(max_size=8)), max_size=14).map(" ".join)
storable = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=60)


def _values(text: str) -> list[object]:
    return [c.value for c in parse_filter(text)]


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'Zürich'", "Zürich"),
        (r"'Z\u00fcrich'", "Zürich"),
        (r"'it\'s'", "it's"),
        ('"it\'s"', "it's"),
        (r"'say \"hi\"'", 'say "hi"'),
        (r"'C:\\temp'", "C:\\temp"),
        (r"'a\nb\tc\r'", "a\nb\tc\r"),
        (r"'100\%'", "100\\%"),  # kept escaped: a literal % in a like pattern
        (r"'snake\_case'", "snake\\_case"),
        ("'東京'", "東京"),
        ("''", ""),
    ],
)
def test_string_literals(literal: str, value: str):
    assert _values(f"tags.k = {literal}") == [value]


def test_numbers_and_clauses():
    clauses = parse_filter("metrics.nmae<0.08 AND params.alpha >= -1e3 and tags.`my key` not  like 'a%'")
    assert [(c.field, c.op, c.value) for c in clauses] == [
        ("metrics.nmae", "<", 0.08),
        ("params.alpha", ">=", -1000.0),
        ("tags.`my key`", "not like", "a%"),
    ]
    assert [c.number for c in clauses] == [1, 2, 3]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (r"tags.city = '\x'", r"cannot parse filter clause 1 \(.*\) at position 13: unknown escape \\x"),
        (r"name = 'a' and tags.city = '\N'", r"filter clause 2 .* at position 28: unknown escape \\N"),
        (r"tags.city = '\u12'", r"\\u needs 4 hex digits"),
        (r"tags.city = '\u0000'", "NUL or a surrogate"),
        (r"tags.city = '\ud800'", "NUL or a surrogate"),
        ("tags.city = 'a\x00'", "NUL character at position 14"),
        ("tags.city = 'open", "position 12: unterminated string"),
        ("metrics.nmae > -1e999", "not a finite number"),
        ("version = 1e40", "version must be a whole number from 0 to 2147483647"),
        ("version = 2.5", "whole number"),
        ("version like '1%'", "version is a number"),
        ("created_at > 'last week'", "not an ISO 8601 time"),
        ("metrics.nmae = 'low'", "metrics are numbers"),
        ("name = 'a' or name = 'b'", "'or' is not supported"),
        ("name = 'a' and", "expected a field"),
        ("name 'a'", "expected an operator"),
        ("name = pv", "expected a quoted string or a number"),
        ("name = 'a' name = 'b'", "expected 'and' between clauses"),
        ("colour = 'red'", "unknown field 'colour'"),
        ("name like 'pv\\\\'", "ends with the escape character"),
        (" and ".join(["version = 1"] * (MAX_CLAUSES + 1)), f"more than {MAX_CLAUSES} clauses"),
        ("name = '" + "x" * 5000 + "'", "the limit is 4096"),
    ],
)
def test_errors_name_the_clause_and_the_fix(text: str, message: str):
    with pytest.raises(InvalidInput, match=message):
        compile_filter(text)


def test_order_by_is_bounded():
    assert len(compile_order("metrics.nmae asc, version desc")) == 3
    with pytest.raises(InvalidInput, match="at most 8 keys"):
        compile_order(", ".join(["version"] * 9))
    with pytest.raises(InvalidInput, match="512 characters"):
        compile_order("metrics." + "x" * 600)


def test_page_tokens_are_bounded():
    assert decode_token(encode_token(200)) == 200
    for forged in (
        base64.urlsafe_b64encode(f"o:{10**30}".encode()).decode(),
        base64.urlsafe_b64encode(b"o:-1").decode(),
        base64.urlsafe_b64encode("o:١٢".encode()).decode(),  # Arabic-Indic digits: int() reads them
        "x" * 100,
        "%%%",
    ):
        with pytest.raises(InvalidInput, match="invalid page_token"):
            decode_token(forged)


@PROPERTY
@given(st.one_of(st.text(max_size=80), filter_like))
@example(" and ".join(["version = 1"] * 1000))
@example("tags.k = '\\")
def test_compile_filter_raises_only_invalid_input(text: str):
    try:
        cond = compile_filter(text)
    except InvalidInput:
        return
    if cond is not None:  # and what it accepted compiles on both databases
        cond.compile(dialect=sqlite.dialect())
        cond.compile(dialect=postgresql.dialect())


@PROPERTY
@given(st.one_of(st.text(max_size=80), st.lists(fragments, max_size=8).map(", ".join)))
def test_compile_order_raises_only_invalid_input(text: str):
    with contextlib.suppress(InvalidInput):
        compile_order(text)


@PROPERTY
@given(storable, st.sampled_from(["=", "!=", "like", "not like", "<="]))
def test_quoted_literals_read_back_exactly(value: str, op: str):
    clause = parse_filter(f"tags.k {op} {quote(value)} and name = 'x'")[0]
    assert clause.value == value
