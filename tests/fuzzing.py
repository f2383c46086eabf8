"""Schemathesis against a live server: one run per token, the server errors it found, and a database
fingerprint to prove that a token without the scope changed nothing.

>>> run = run_schemathesis(f"{url}/openapi.json", token, config, seed=42, max_examples=20)  # doctest: +SKIP
>>> run.server_errors, run.cases  # doctest: +SKIP
(0, 1625)
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ST = Path(sys.executable).with_name("st")
#: A longer hunt than `make test` affords, e.g.
#: MAESTRALE_FUZZ_SCALE=10 MAESTRALE_FUZZ_SEED=7 pytest -s tests/integration/test_api_fuzz.py
SCALE = float(os.environ.get("MAESTRALE_FUZZ_SCALE", "1"))
SEED = int(os.environ.get("MAESTRALE_FUZZ_SEED", "42"))


@dataclass(frozen=True)
class FuzzRun:
    """What one Schemathesis run did: test cases generated, server errors, and its whole output."""

    token_label: str
    cases: int
    server_errors: int
    exit_code: int
    output: str

    def summary(self) -> str:
        """One line for the test log and the closing note."""
        return f"{self.token_label}: {self.cases} cases, {self.server_errors} server errors"


def write_config(path: Path, dictionaries: dict[str, list[Any]], bindings: dict[str, str]) -> Path:
    """A `schemathesis.toml` that feeds real identifiers (a model name, a version…) to path parameters
    part of the time, so requests reach the handlers instead of stopping at 404.

    `bindings` maps `path.name`-style parameter keys to dictionary names.
    """
    lines = ["[dictionaries]"]
    for name, values in dictionaries.items():
        lines.append(f"{name} = {{ values = {json.dumps(values)} }}")
    lines.append("")
    lines.append("[parameters]")
    for key, dictionary in bindings.items():
        lines.append(f'"{key}" = {{ dictionary = "{dictionary}", probability = 0.7 }}')
    path.write_text("\n".join(lines) + "\n")
    return path


def run_schemathesis(
    schema_url: str,
    token: str | None,
    config: Path,
    *,
    label: str,
    seed: int = SEED,
    max_examples: int = 20,
    timeout: float = 150.0 * max(1.0, SCALE),
    extra: tuple[str, ...] = (),
) -> FuzzRun:
    """Run `st run` with a fixed seed and bounded examples; only the server-error check is asserted.

    The other checks (schema conformance and friends) report on the OpenAPI document's precision, not on
    safety, so they are left to a developer running `st` by hand.
    """
    cmd = [
        str(ST), "--config-file", str(config), "run", schema_url,
        "--checks", "not_a_server_error", "--phases", "examples,coverage,fuzzing",
        "--max-examples", str(max(1, round(max_examples * SCALE))), "--seed", str(seed), "--workers", "2",
        "--no-color", "--request-timeout", "20", "--output-truncate", "true", "--continue-on-failure",
    ]  # fmt: skip
    cmd += list(extra)
    if token:
        cmd += ["-H", f"Authorization: Bearer {token}"]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false", "DO_NOT_TRACK": "1"}
    # its cache folder (.schemathesis) lands in the working directory: keep it next to the config
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False, cwd=config.parent
    )
    out = proc.stdout + proc.stderr
    cases = re.search(r"(\d+) generated", out)
    errors = re.search(r"ST101 Server error: (\d+)", out)
    return FuzzRun(
        token_label=label,
        cases=int(cases.group(1)) if cases else 0,
        server_errors=int(errors.group(1)) if errors else 0,
        exit_code=proc.returncode,
        output=out,
    )


def database_fingerprint(database_url: str) -> dict[str, tuple[int, str]]:
    """Row count and an md5 of every row, per table of the `public` schema (PostgreSQL).

    Two equal fingerprints mean no row was inserted, changed or deleted in between.
    """
    engine = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            tables = conn.execute(
                sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename")
            ).scalars()
            out: dict[str, tuple[int, str]] = {}
            for table in list(tables):
                row = conn.execute(
                    sa.text(
                        f"SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) "
                        f'FROM "{table}" t'
                    )
                ).one()
                out[table] = (int(row[0]), str(row[1]))
            return out
    finally:
        engine.dispose()


def failures_excerpt(run: FuzzRun, limit: int = 6000) -> str:
    """The FAILURES section of a run's output, for an assertion message."""
    start = run.output.find("FAILURES")
    return run.output[start : start + limit] if start >= 0 else run.output[-limit:]
