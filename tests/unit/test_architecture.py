"""The import rules of docs/architecture.md hold: every import of every module, read with `ast`.

The rule table in the doc is the source of truth: this test parses it, so the doc and the check
cannot drift apart. Function-level imports (deferred for a fast `import maestrale`) and imports under
`if TYPE_CHECKING:` count like any other.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "maestrale"
DOC = ROOT / "docs" / "architecture.md"


@dataclass(frozen=True)
class Rules:
    layer: dict[str, str]  # unit -> layer
    allowed: dict[str, set[str]]  # unit -> units it may import
    exceptions: list[tuple[str, str]]  # (importer module prefix, imported module prefix)


def _block(text: str, name: str) -> list[list[str]]:
    """The rows (cells) of the Markdown table between `<!-- name:start -->` and `<!-- name:end -->`."""
    match = re.search(rf"<!-- {name}:start -->(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"{DOC.name} has no table between <!-- {name}:start --> and <!-- {name}:end -->"
    rows = [line.strip().strip("|").split("|") for line in match[1].strip().splitlines()]
    return [[c.strip() for c in row] for row in rows[2:]]  # skip the header and the --- line


def _names(cell: str) -> list[str]:
    return re.findall(r"`([^`]+)`", cell)


def load_rules(text: str) -> Rules:
    rows = _block(text, "import-rules")
    layer = {_names(r[0])[0]: r[1] for r in rows}
    kernel = {u for u, lay in layer.items() if lay == "kernel"}
    allowed: dict[str, set[str]] = {}
    for row in rows:
        unit, tokens = _names(row[0])[0], _names(row[2])
        may: set[str] = set()
        for token in tokens:
            if token == "*":
                may |= set(layer)
            elif token == "kernel":
                may |= kernel
            elif not token.startswith("-"):
                may.add(token)
        may -= {t[1:] for t in tokens if t.startswith("-")}
        unknown = (may | {t[1:] for t in tokens if t.startswith("-")}) - set(layer)
        assert not unknown, f"{DOC.name}: the rule of {unit!r} names units with no row: {sorted(unknown)}"
        allowed[unit] = may | {unit}
    exceptions = [(_names(r[0])[0], _names(r[1])[0]) for r in _block(text, "import-exceptions")]
    return Rules(layer, allowed, exceptions)


RULES = load_rules(DOC.read_text(encoding="utf-8"))


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit_of(module: str) -> str:
    """`maestrale.training.worker` → `training`, `maestrale.config` → `config`, `maestrale` → `maestrale`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "maestrale"


def _facade() -> dict[str, str]:
    """The root package's lazy public names → their modules (`Registry` → `maestrale.registry.client`)."""
    import maestrale

    return dict(maestrale._LAZY)


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, imported module) of every `maestrale` import in `path`, wherever it sits in the file."""
    module = module_name(path, package)
    pkg = module if path.name == "__init__.py" else module.rpartition(".")[0]
    lazy = _facade()
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "maestrale"]
            continue
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:  # relative: resolved against this module's package
            base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if target.startswith("maestrale."):
            out.append((node.lineno, target))
        elif target == "maestrale":  # `from maestrale import X`: a unit, or a lazy public name
            out += [
                (node.lineno, lazy.get(a.name, f"maestrale.{a.name}"))
                for a in node.names
                if a.name != "__version__"  # a constant of the root package: no dependency
            ]
    return out


def violations(package: Path = PACKAGE) -> list[str]:
    """One line per import that breaks a rule: `file:line: unit imports module (unit); the rule`."""
    found = []
    for path in sorted(package.rglob("*.py")):
        module = module_name(path, package)
        unit = unit_of(module)
        rel = path.relative_to(package.parent.parent)
        if unit not in RULES.allowed:
            found.append(f"{rel}: unit {unit!r} has no row in {DOC.name}: add it with what it may import")
            continue
        for line, target in imports(path, package):
            dep = unit_of(target)
            if dep in RULES.allowed[unit]:
                continue
            if any(module.startswith(a) and target.startswith(b) for a, b in RULES.exceptions):
                continue
            may = ", ".join(sorted(RULES.allowed[unit] - {unit})) or "nothing of maestrale"
            found.append(f"{rel}:{line}: {unit} imports {target} ({dep}); {unit} may import only: {may}")
    return found


def test_every_import_follows_the_rules_of_the_architecture_doc():
    problems = violations()
    assert not problems, f"{len(problems)} import(s) break docs/architecture.md:\n" + "\n".join(problems)


def test_every_unit_in_the_doc_exists_and_the_seams_hold():
    units = {unit_of(module_name(p)) for p in PACKAGE.rglob("*.py")}
    assert set(RULES.allowed) == units, (
        f"rows without a unit: {sorted(set(RULES.allowed) - units)}; "
        f"units without a row: {sorted(units - set(RULES.allowed))}"
    )
    # the seams the services need, whatever the table is edited to say
    assert "training" not in RULES.allowed["monitoring"] and "monitoring" not in RULES.allowed["training"]
    assert RULES.allowed["platform"] <= {"platform", "errors", "config"}
    assert "registry" not in RULES.allowed["bus"]
    for unit in ("platform", "bus", "registry", "training", "monitoring", "serving"):
        assert not RULES.allowed[unit] & {"api", "cli", "demo"}, f"{unit} may import a composition root"


@pytest.mark.parametrize(
    ("source", "line", "target"),
    [
        ("from maestrale.training.requests import TrainingRequests", 1, "maestrale.training.requests"),
        ("def f():\n    import maestrale.training.worker", 2, "maestrale.training.worker"),
        ("from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from maestrale.cli import main", 4,
         "maestrale.cli"),
        ("from .. import training", 1, "maestrale.training"),
        ("from maestrale import Registry, __version__", None, None),  # Registry lives in registry: allowed
    ],
)  # fmt: skip
def test_the_check_sees_every_kind_of_import(
    tmp_path: Path, source: str, line: int | None, target: str | None
):
    probe = tmp_path / "src" / "maestrale" / "monitoring" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text(source + "\n")
    found = violations(tmp_path / "src" / "maestrale")
    if target is None:
        assert found == []
    else:
        [message] = found
        assert message.startswith(f"src/maestrale/monitoring/probe.py:{line}: monitoring imports {target} (")
        rule = message.split("monitoring may import only: ")[1]  # the rule, spelled out
        assert "bus" in rule and "registry" in rule and "training" not in rule
