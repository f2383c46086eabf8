"""A file versioned with DVC, read at a git revision; the commit actually read is recorded.

>>> from maestrale.training.spec import DvcSource
>>> src = DvcSource(dvc={"repo": "/srv/pv-data", "path": "data/pv.csv", "rev": "v2"})
>>> load_dvc(src).version.commit  # doctest: +SKIP
'9dd5bf69483eee8ecd080d68fc9a5f284008b8e8'

Needs `dvc` (the `maestrale[dvc]` extra). The repo is a local path or a git URL; the data comes from the
DVC cache or the repo's DVC remote, exactly as `dvc get` would fetch it.
"""

from __future__ import annotations

import os

from maestrale.errors import InvalidInput
from maestrale.training.fleet import mask_secrets
from maestrale.training.sources import (
    DataVersion,
    LoadedData,
    expand_env,
    read_table,
    redact,
    sha256_bytes,
    table_format,
)
from maestrale.training.spec import DvcSource


def resolve_commit(repo: str, rev: str | None, shown: str | None = None) -> str:
    """The git commit `rev` (default: HEAD) names in `repo`: branches and tags move, commits do not.

    Messages name the repo as `shown` (how the spec wrote it) when given.
    """
    from dvc.repo import Repo
    from dvc.scm import RevError

    try:
        with Repo.open(repo, rev=rev, uninitialized=True) as opened:
            return str(opened.get_rev())
    except RevError as exc:
        name = shown or repo
        raise InvalidInput(
            f"DVC repo {name!r} has no revision {rev!r} ({redact(str(exc), repo, name)}): "
            "give a branch, tag or commit"
        ) from None


def load_dvc(source: DvcSource) -> LoadedData:
    """Resolve the revision to a commit, then read the file at that commit with `dvc.api.read`."""
    # never phone home from a training job (DVC's usage analytics are on unless disabled)
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    try:
        import dvc.api
        from dvc.exceptions import DvcException
    except ImportError:
        raise InvalidInput("the DVC data source needs dvc: pip install 'maestrale[dvc]'") from None
    loc = source.dvc
    repo = expand_env(loc.repo, "data.dvc.repo")
    shown = mask_secrets(loc.repo)  # as written: an expanded ${VAR} may be a secret
    fmt = table_format(loc.path, source.format)
    try:
        commit = resolve_commit(repo, loc.rev, shown)
        data = dvc.api.read(loc.path, repo=repo, rev=commit, mode="rb")
    except InvalidInput:
        raise
    except FileNotFoundError as exc:
        raise InvalidInput(
            f"{loc.path!r} is not in DVC repo {shown!r} at {loc.rev or 'HEAD'} "
            f"({redact(str(exc), repo, loc.repo)}); check data.dvc.path (relative to the repo root) and rev"
        ) from None
    except DvcException as exc:
        raise InvalidInput(
            f"DVC could not read {loc.path!r} from {shown!r} at {loc.rev or 'HEAD'}: "
            f"{redact(str(exc), repo, loc.repo)}"
        ) from None
    label = loc.path.rsplit("/", 1)[-1]
    frame = read_table(data, fmt, label, source.read_options)
    recorded = shown if "${" in loc.repo else repo
    version = DataVersion(
        kind="dvc",
        uri=f"dvc://{recorded if recorded.startswith('/') else recorded.split('://', 1)[-1]}?path={loc.path}",
        fingerprint=sha256_bytes(data),
        size=len(data),
        rev=loc.rev,
        commit=commit,
        rows=len(frame),
    )
    return LoadedData(frame=frame, version=version, label=f"{label}@{commit[:8]}")
