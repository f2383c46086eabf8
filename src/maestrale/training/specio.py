"""Reading training specs: text or JSON from a request (never a path), and spec files for the CLI.

>>> spec = parse_spec("name: pv\\ndata: {dataset: nrel_system50}\\ntarget: power_kw\\n"
...                   "features: [ghi]\\nestimator: ridge")
>>> spec.name, spec.estimator
('pv', 'ridge')

- `parse_spec(text)` and `spec_from_data(data)` are for anything that handles a request or an event.
  They never touch the file system: a one-line `x.yaml` is YAML text (a string, hence not a spec),
  relative data paths stay as written (a worker reads them from its own folder), and every problem is
  a `SpecError` (HTTP 400) listing each issue with its field and, for YAML, its line.
- `load_spec_file(path)` is the CLI's reader: relative data paths resolve against the file's folder.
- `load_spec(path_or_text)` is the convenience of a local Python user, who is trusted: a `Path` or a
  one-line string ending in `.yaml` is read as a file. Never hand it text from a request.

YAML goes through `maestrale.yamlsafe` (256 KiB, 100,000 expanded nodes, 64 levels), JSON through
the same node and depth limits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from maestrale import yamlsafe
from maestrale.errors import InvalidInput

if TYPE_CHECKING:
    from maestrale.training.spec import TrainingSpec


def _problem(source: str, message: str, line: int | None = None) -> Exception:
    from maestrale.training.spec import SpecError, SpecIssue

    return SpecError(source, [SpecIssue(path="", line=line, message=message)])


def _validated(
    raw: dict[str, Any], lines: dict[Any, int], source: str, base_dir: Path | None
) -> TrainingSpec:
    """Validate plain data as a spec (fleet members included); `SpecError` lists every problem."""
    from maestrale.training import _yamlmap
    from maestrale.training.fleet import expand_raw
    from maestrale.training.spec import SpecError, SpecIssue, TrainingSpec, resolve_paths

    try:
        spec = TrainingSpec.model_validate(raw)
    except ValidationError as exc:
        raise SpecError(source, _yamlmap.issues(exc, lines)) from None
    if base_dir is not None:
        spec = resolve_paths(spec, base_dir)
    if spec.fleet is not None:
        problems: list[SpecIssue] = []
        for label, member in expand_raw(spec, raw):
            try:
                TrainingSpec.model_validate(member)
            except ValidationError as exc:
                problems += [
                    SpecIssue(path=i.path, line=i.line, message=f"fleet member {label}: {i.message}")
                    for i in _yamlmap.issues(exc, lines)
                ]
        if problems:
            raise SpecError(source, problems)
    return spec


def parse_spec(text: str, *, source: str = "<text>", base_dir: str | Path | None = None) -> TrainingSpec:
    """A spec from YAML text; never reads a file. `base_dir` (a local caller's) resolves relative paths.

    >>> parse_spec("/etc/hostname.yaml")
    Traceback (most recent call last):
    maestrale.training.spec.SpecError: training spec <text> has 1 problem:
      line 1: (top level): a spec is a YAML mapping: start with `name: my-model`
    """
    from maestrale.training import _yamlmap

    if not isinstance(text, str):
        raise _problem(source, f"a YAML spec is text, not {type(text).__name__}")
    raw, lines = _yamlmap.parse(text, source)
    return _validated(raw, lines, source, None if base_dir is None else Path(base_dir))


def spec_from_data(data: Any, *, source: str = "<request>") -> TrainingSpec:
    """A spec from plain data (a JSON object, an event's `spec`); `SpecError` lists every problem.

    >>> spec_from_data({})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    maestrale.training.spec.SpecError: training spec <request> has 4 problems:
      data: required field 'data' is missing: add e.g. `data: {dataset: nrel_system50}  or  data: ...`
    ...
    """
    if not isinstance(data, dict):
        raise _problem(source, 'a spec is a mapping (the YAML spec as JSON): start with {"name": "my-model"}')
    try:
        yamlsafe.check_data(data)
    except yamlsafe.YamlError as exc:
        raise _problem(source, exc.message) from None
    return _validated(data, {}, source, None)


def members_of(spec: TrainingSpec, source: str = "<request>") -> list[TrainingSpec]:
    """`expand_fleet(spec)`, with a member that fails validation reported as a `SpecError`."""
    from maestrale.training import _yamlmap
    from maestrale.training.fleet import expand_fleet
    from maestrale.training.spec import SpecError

    try:
        return expand_fleet(spec)
    except ValidationError as exc:
        raise SpecError(source, _yamlmap.issues(exc, {})) from None


def load_spec_file(path: str | Path, *, base_dir: str | Path | None = None) -> TrainingSpec:
    """A spec from a local YAML file (the CLI's reader); relative data paths start at its folder.

    >>> load_spec_file("examples/specs/pv-nrel-50.yaml").name  # doctest: +SKIP
    'pv-nrel-50'
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"spec file {str(path)!r} not found (give a path to a .yaml file)")
    try:
        text = yamlsafe.read_text(path)
    except yamlsafe.YamlError as exc:
        raise _problem(str(path), exc.message) from None
    folder = Path(base_dir) if base_dir is not None else path.resolve().parent
    return parse_spec(text, source=str(path), base_dir=folder)


def load_spec(path_or_text: str | Path, *, base_dir: str | Path | None = None) -> TrainingSpec:
    """A local user's spec: a file (a `Path`, or one line ending in .yaml) or the YAML text itself.

    Relative file URIs are resolved against the spec file's folder (or `base_dir`; for text, the
    working directory), so a spec and its data can move together. A fleet spec is checked member by
    member here, not at training time. For text from a request, use `parse_spec`: this reads files.

    >>> load_spec("examples/specs/pv-nrel-50.yaml").name  # doctest: +SKIP
    'pv-nrel-50'
    """
    if isinstance(path_or_text, Path) or (
        "\n" not in path_or_text and path_or_text.strip().endswith((".yaml", ".yml"))
    ):
        return load_spec_file(path_or_text, base_dir=base_dir)
    return parse_spec(path_or_text, base_dir=Path(base_dir) if base_dir is not None else Path.cwd())


__all__ = ["load_spec", "load_spec_file", "members_of", "parse_spec", "spec_from_data"]
