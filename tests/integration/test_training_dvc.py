"""The DVC source on a real git + DVC repository built here: two revisions of one data file.

Needs the `dvc` package (`maestrale[dvc]`); skipped with that reason when it is not installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("dvc", reason="the DVC source needs dvc: pip install 'maestrale[dvc]'")

from maestrale.errors import InvalidInput
from maestrale.training.reproduction import reproduce
from maestrale.training.sources import load_data, sha256_bytes
from maestrale.training.spec import load_spec
from maestrale.training.trainer import train

ENV = {
    **os.environ,
    "DVC_NO_ANALYTICS": "1",
    "GIT_AUTHOR_NAME": "maestrale tests",
    "GIT_AUTHOR_EMAIL": "tests@maestrale.invalid",
    "GIT_COMMITTER_NAME": "maestrale tests",
    "GIT_COMMITTER_EMAIL": "tests@maestrale.invalid",
}


def run(repo: Path, *args: str) -> str:
    cmd = [sys.executable, "-m", "dvc", *args[1:]] if args[0] == "dvc" else list(args)
    return subprocess.run(cmd, cwd=repo, env=ENV, check=True, capture_output=True, text=True).stdout.strip()


def frame(days: int) -> pd.DataFrame:
    from maestrale.datasets import nrel_system50

    df = nrel_system50("1h").loc["2011-06-01":, ["ghi", "temp_air", "power_kw"]].iloc[: days * 24]
    return df.reset_index()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | Path]:
    """git init, dvc init (analytics off), dvc add data.csv, commit v1; new data, commit v2."""
    path = tmp_path_factory.mktemp("dvc-repo")
    run(path, "git", "init", "-q", "-b", "main")
    run(path, "dvc", "init", "-q")
    run(path, "dvc", "config", "core.analytics", "false")
    frame(14).to_csv(path / "data.csv", index=False)
    run(path, "dvc", "add", "-q", "data.csv")
    run(path, "git", "add", "-A")
    run(path, "git", "commit", "-q", "-m", "data v1")
    run(path, "git", "tag", "v1")
    v1_bytes = (path / "data.csv").read_bytes()
    frame(21).to_csv(path / "data.csv", index=False)
    run(path, "dvc", "add", "-q", "data.csv")
    run(path, "git", "commit", "-q", "-am", "data v2")
    return {
        "path": path,
        "v1": run(path, "git", "rev-parse", "v1"),
        "v2": run(path, "git", "rev-parse", "HEAD"),
        "v1_sha": sha256_bytes(v1_bytes),
    }


def spec_text(repo_path: Path, rev: str, name: str = "pv-dvc") -> str:
    return (
        f"name: {name}\ndata: {{dvc: {{repo: '{repo_path}', path: data.csv, rev: {rev}}}}}\n"
        "time_column: time\ntarget: power_kw\nfeatures: [ghi, temp_air]\nestimator: hgb\n"
        "params: {max_iter: 20}\nsplit: {holdout: {test_fraction: 0.25}}\ncapacity: 3.4\n"
    )


def test_both_revisions_read_with_their_commits(repo):
    v1 = load_data(load_spec(spec_text(repo["path"], "v1")).data)
    head = load_data(load_spec(spec_text(repo["path"], "main")).data)
    assert (len(v1.frame), len(head.frame)) == (14 * 24, 21 * 24)
    assert v1.version.commit == repo["v1"] and head.version.commit == repo["v2"]
    assert v1.version.rev == "v1" and v1.version.version == repo["v1"]  # the registry's data_version
    assert v1.version.fingerprint == repo["v1_sha"] != head.version.fingerprint
    shorthand = load_spec(
        spec_text(repo["path"], "v1").replace(
            f"{{dvc: {{repo: '{repo['path']}', path: data.csv, rev: v1}}}}",
            f"{{uri: 'dvc://{repo['path']}?path=data.csv&rev=v1'}}",
        )
    )
    assert load_data(shorthand.data).version.commit == repo["v1"]


def test_unknown_revision_and_path(repo):
    with pytest.raises(InvalidInput, match="has no revision 'v9'"):
        load_data(load_spec(spec_text(repo["path"], "v9")).data)
    missing = load_spec(spec_text(repo["path"], "v1").replace("path: data.csv", "path: other.csv"))
    with pytest.raises(InvalidInput, match="other.csv"):
        load_data(missing.data)


def test_reproduce_reads_the_recorded_commit_after_the_branch_moved(repo, sqlite_registry, tmp_path: Path):
    # train on the branch, then move the branch: reproduce must still read the commit it trained on
    clone = tmp_path / "clone"
    run(tmp_path, "git", "clone", "-q", str(repo["path"]), str(clone))
    run(clone, "dvc", "config", "--local", "cache.dir", str(Path(repo["path"]) / ".dvc" / "cache"))
    result = train(load_spec(spec_text(clone, "main")), sqlite_registry, reason="dvc test")
    mv = sqlite_registry.get_version(result.ref)
    assert mv.data_version == repo["v2"] and mv.lineage[0]["detail"]["commit"] == repo["v2"]
    frame(28).to_csv(clone / "data.csv", index=False)
    run(clone, "dvc", "add", "-q", "data.csv")
    run(clone, "git", "commit", "-q", "-am", "data v3")
    assert load_data(load_spec(spec_text(clone, "main")).data).version.commit != repo["v2"]
    report = reproduce(sqlite_registry, result.ref)
    assert report.identical and not report.data_changed and report.max_abs_difference == 0.0
    assert repo["v2"] in report.note
