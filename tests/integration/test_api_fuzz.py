"""Schemathesis over the REST server's OpenAPI on PostgreSQL, with an admin token, a read token and none:
no answer is a 5xx, and the read and anonymous runs change no row of the database.

Fixed seed, bounded examples: the run is reproducible and takes about a minute. The numbers of cases
are printed (`pytest -s`) for the record.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import Ridge

from tests.conftest import ServerHandle, fresh_pg_database, start_server
from tests.fuzzing import database_fingerprint, failures_excerpt, run_schemathesis, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]
MODEL = "pv-fuzz"


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server on a database of its own, with a model, two versions, an alias, tags and tokens."""
    from maestrale import Registry
    from maestrale.tokens import create_token, list_tokens

    tmp = tmp_path_factory.mktemp("fuzz")
    with fresh_pg_database("maestrale_fuzz") as db_url:
        server: ServerHandle = start_server(tmp / "home", database_url=db_url)
        try:
            reg = Registry(server.url, token=server.admin_token)
            rng = np.random.default_rng(3)
            X = pd.DataFrame(rng.normal(size=(50, 3)), columns=["ghi", "temp_air", "hour_sin"])
            y = X.to_numpy() @ np.array([1.0, 0.2, 0.5])
            tags = {"site": "p50", "city": "Zürich"}
            versions = [
                reg.register(
                    MODEL, Ridge(alpha=a).fit(X, y), input_example=X.head(), metrics={"nmae": a}, tags=tags
                )
                for a in (1.0, 2.0)
            ]
            reg.set_alias(MODEL, "champion", versions[0].version, reason="fuzz seed")
            read = create_token(db_url, "fuzz-read", "read")
            sacrificial = create_token(db_url, "fuzz-sacrificial", "read")
            ids = [t.id for t in list_tokens(db_url) if t.name == "fuzz-sacrificial"]
            del sacrificial
            config = write_config(
                tmp / "schemathesis.toml",
                {
                    "names": [MODEL], "versions": [v.version for v in versions], "aliases": ["champion"],
                    "keys": ["site"], "digests": [versions[0].artifact.sha256], "token_ids": ids,
                },
                {
                    "path.name": "names", "path.version": "versions", "path.alias": "aliases",
                    "path.key": "keys", "path.sha256": "digests", "path.token_id": "token_ids",
                },
            )  # fmt: skip
            yield {"server": server, "db": db_url, "read": read, "config": config}
        finally:
            server.stop()


def _assert_clean(run: Any) -> None:
    print(run.summary())
    assert run.cases > 0, f"schemathesis did not run:\n{run.output[-3000:]}"
    assert run.server_errors == 0, f"{run.summary()}\n{failures_excerpt(run)}"


@pytest.mark.parametrize("who", ["none", "read"])
def test_no_server_error_and_no_state_change_without_the_scope(fuzz_world: dict[str, Any], who: str) -> None:
    server: ServerHandle = fuzz_world["server"]
    token = {"none": None, "read": fuzz_world["read"]}[who]
    before = database_fingerprint(fuzz_world["db"])
    run = run_schemathesis(
        f"{server.url}/openapi.json", token, fuzz_world["config"], label=f"REST {who}", max_examples=15
    )
    _assert_clean(run)
    after = database_fingerprint(fuzz_world["db"])
    changed = {
        t: (before.get(t), after.get(t)) for t in set(before) | set(after) if before.get(t) != after.get(t)
    }
    assert not changed, f"a {who} token changed the database: {changed}"


# Revoking tokens by id would sooner or later revoke the admin token itself (id 1) and turn the rest
# of the run into 401s, so that one operation runs alone, after everything else.
_REVOKE = "revoke_api_v1_tokens__token_id__delete"


def test_no_server_error_with_an_admin_token(fuzz_world: dict[str, Any]) -> None:
    server: ServerHandle = fuzz_world["server"]
    url, token, config = f"{server.url}/openapi.json", server.admin_token, fuzz_world["config"]
    run = run_schemathesis(
        url, token, config, label="REST admin", max_examples=50,
        extra=("--exclude-operation-id", _REVOKE),
    )  # fmt: skip
    _assert_clean(run)
    _assert_clean(
        run_schemathesis(
            url,
            token,
            config,
            label="REST admin, revoke",
            max_examples=25,
            extra=("--include-operation-id", _REVOKE),
        )
    )
