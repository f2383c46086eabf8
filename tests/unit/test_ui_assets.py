"""The UI's vendored assets: pinned, unchanged copies of their npm packages, licences shipped, no CDN."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI = REPO / "src" / "maestrale" / "ui"
VENDOR = UI / "static" / "vendor"


def vendored() -> list[dict[str, str]]:
    """The table of static/vendor/README.md: file, package, version, licence, upstream file."""
    rows = []
    for line in (VENDOR / "README.md").read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip("|").split("|")]
        if len(cells) == 5 and cells[0].endswith((".js", ".css")):
            rows.append(dict(zip(("file", "package", "version", "licence", "upstream"), cells, strict=True)))
    return rows


def test_every_vendored_file_is_listed_with_a_shipped_licence():
    rows = vendored()
    listed = {r["file"] for r in rows}
    shipped = {p.name for p in VENDOR.iterdir() if p.suffix in (".js", ".css")}
    assert listed == shipped
    for r in rows:
        licence = re.search(r"\(`?(LICENSE-[\w.-]+)`?\)", r["licence"])
        assert licence and (VENDOR / licence.group(1)).stat().st_size > 100, r


def test_versions_are_the_ones_package_json_pins():
    pins = json.loads((REPO / "package.json").read_text())["devDependencies"]
    for r in vendored():
        assert pins[r["package"]] == r["version"], (
            f"{r['file']}: README says {r['version']}, package.json {pins}"
        )


def test_copies_are_byte_identical_to_the_packages():
    modules = REPO / "node_modules"
    if not (modules / "uplot").exists():
        pytest.fail("node_modules is missing: run `make test` (it runs npm ci)")
    for r in vendored():
        upstream = modules / r["package"] / r["upstream"]
        got = hashlib.sha256((VENDOR / r["file"]).read_bytes()).hexdigest()
        assert got == hashlib.sha256(upstream.read_bytes()).hexdigest(), (
            f"{r['file']} differs from {upstream}"
        )
        version = json.loads((modules / r["package"] / "package.json").read_text())["version"]
        assert version == r["version"]


def test_no_template_or_script_loads_from_another_host():
    for path in [*UI.joinpath("templates").rglob("*.html"), *UI.joinpath("static").glob("*.js"),
                 *UI.joinpath("static").glob("*.css")]:  # fmt: skip
        text = path.read_text()
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text), path
        assert "@import" not in text and "fonts.googleapis" not in text, path


def test_templates_hold_no_inline_script_or_style():
    # the CSP (script-src 'self'; style-src 'self') would block them: keep the pages honest
    for path in UI.joinpath("templates").rglob("*.html"):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)  # Jinja comments render nothing
        for tag in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in tag or 'type="application/json"' in tag, f"{path.name}: inline {tag}"
        assert not re.search(r"\sstyle\s*=", text), f"{path.name}: a style= attribute"
        assert not re.search(r"\son[a-z]+\s*=", text), f"{path.name}: an inline event handler"
