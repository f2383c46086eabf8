"""A YAML syntax error says what to write instead, from the line that broke (issue 10, item 3).

The README once shipped `data: {uri: data/{site}.parquet}`: invalid YAML, and the hint said to
"check the indentation, and quote values with ': '", which is not the fix.
"""

from __future__ import annotations

import pytest

from maestrale.yamlsafe import YamlError, load


@pytest.mark.parametrize(
    ("text", "line", "fix"),
    [
        ("name: pv-{site}\ndata: {uri: data/{site}.parquet}\n", 2, 'quoted: write "data/{site}.parquet"'),
        ("name: {site}-pv\n", 1, 'quoted: write "{site}-pv"'),
        ("fleet: {site: [a]}\nname: pv\ndata:\n  uri: lake/{site}/{year}.csv, x\n", 4, None),
        ("name: pv\ndescription: note: hourly\n", 2, "a value that contains ': ' must be quoted"),
        ("name: pv\n  target: x\n", 2, "indented deeper than the line above"),
        ("name: pv\n\ttarget: x\n", 2, "never tabs"),
    ],
)
def test_syntax_errors_name_the_line_and_the_fix(text: str, line: int, fix: str | None) -> None:
    try:
        load(text)
    except YamlError as exc:
        assert exc.line == line, exc
        if fix is not None:
            assert fix in str(exc), exc
        assert "check the indentation, and quote values that contain" not in str(exc)
    else:
        # a plain scalar may legally hold `{` mid-value (`lake/{site}/{year}.csv, x`): then it parses
        assert fix is None


def test_the_readme_spec_is_valid_yaml_once_quoted() -> None:
    assert load('data: {uri: "data/{site}.parquet"}') == {"data": {"uri": "data/{site}.parquet"}}
