"""Any string round-trips through the filter grammar and a real database (SQLite and PostgreSQL).

Property, fixed seed: a tag holding an arbitrary storable string (Unicode, quotes, backslashes,
newlines, % and _) is found by `tags.k = <quote(value)>`, and by `like` with the wildcards escaped.
Before the grammar, values were decoded with `unicode_escape`: 'Zürich' never matched.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression

from maestrale import Registry
from maestrale.registry.search import quote

storable = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)


def _like_literal(value: str) -> str:
    """`value` as a like pattern matching only itself: \\, % and _ escaped, then quoted."""
    return quote(value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_"))


@pytest.mark.parametrize("backend", ["sqlite", "pg"])
def test_any_string_literal_finds_the_tag_holding_it(backend: str, request: pytest.FixtureRequest):
    reg: Registry = request.getfixturevalue(f"{backend}_registry")
    name = f"roundtrip-{backend}"
    model = LinearRegression().fit(np.arange(4.0).reshape(-1, 1), np.arange(4.0))
    ref = reg.register(name, model).ref
    other = reg.register(name, model).ref  # holds a different value: must never match

    @settings(derandomize=True, database=None, max_examples=120, deadline=None,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(storable)
    @example("Zürich")
    @example('it\'s "quoted" \\ back\\slash\nnew line')
    @example("100% of a_b")
    def check(value: str) -> None:
        reg.set_tag(ref, "k", value)
        reg.set_tag(other, "k", value + "!")
        for flt in (f"tags.k = {quote(value)}", f"tags.k like {_like_literal(value)}"):
            found = reg.search_versions(f"{flt} and name = '{name}'").items
            assert [v.version for v in found] == [1], (flt, value)

    check()
