"""Docs that run: every Python and shell block of the README and of docs/ executes, in order, as written.

A block that cannot run here says why in a `<!-- docs: skip: reason -->` comment right above it (a
server that runs until Ctrl-C, `make demo` itself); those are listed, with their reasons, by
`test_skipped_blocks_say_why`. The blocks share an embedded home and a working directory per
document; `$URL` and `$T` point at a real `maestrale server` with an admin token, as the README's
curl examples expect.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ServerHandle, start_server
from tests.docs_blocks import DocRunner, docs_env, extract

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def docs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerHandle]:
    handle = start_server(tmp_path_factory.mktemp("docs-server") / "home")
    yield handle
    handle.stop()


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_runs(doc: Path, tmp_path: Path, docs_server: ServerHandle) -> None:
    blocks = [b for b in extract(doc) if b.runnable]
    if not blocks:
        pytest.skip(f"{doc.name} has no runnable block")
    work = tmp_path / "project"
    work.mkdir()
    # the examples refer to the repository's own files (examples/specs/…): a reader runs them from a clone
    (work / "examples").symlink_to(ROOT / "examples")
    env = docs_env(tmp_path / "user-data", {"URL": docs_server.url, "T": docs_server.admin_token})
    runner = DocRunner(work, env)
    try:
        for block in blocks:
            result = runner.run(block)
            assert result.ok, (
                f"the {block.lang} block at {block.where} failed:\n{block.code}\n---\n{result.output[-4000:]}"
            )
    finally:
        runner.close()


def test_skipped_blocks_say_why() -> None:
    skipped = [b for doc in DOCS for b in extract(doc) if b.skip is not None]
    for block in skipped:
        print(f"skipped {block.where}: {block.skip}")
        assert block.skip != "no reason given", f"{block.where} is skipped without a reason"
    runnable = sum(b.runnable for doc in DOCS for b in extract(doc))
    assert runnable > len(skipped), (
        f"{runnable} blocks run, {len(skipped)} are skipped: the docs must mostly run"
    )


def _shown_blocks(lang: str) -> list:
    return [b for doc in DOCS for b in extract(doc) if b.lang == lang and b.skip is None]


@pytest.mark.parametrize("block", _shown_blocks("yaml"), ids=lambda b: b.where)
def test_every_yaml_block_is_valid(block) -> None:
    """A spec or a policy shown in the docs is one a reader can paste: it parses and validates."""
    from maestrale.monitoring.policy import parse_policy
    from maestrale.training.specio import parse_spec
    from maestrale.yamlsafe import load

    data = load(block.code)
    if isinstance(data, dict) and "target" in data and "estimator" in data:
        parse_spec(block.code, source=block.where)
    elif isinstance(data, dict) and "conditions" in data:
        parse_policy(block.code, where=block.where)


@pytest.mark.parametrize("block", _shown_blocks("json"), ids=lambda b: b.where)
def test_every_json_block_is_valid(block) -> None:
    import json

    json.loads(block.code)
