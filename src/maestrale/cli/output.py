"""Shared CLI output: rich tables and short values for humans, plain JSON on stdout for scripts.

>>> from maestrale.cli.output import fmt_metric, fmt_time
>>> fmt_metric(0.0612345)
'0.06123'
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

PIPED_WIDTH = 240
# Every command that prints something takes `--json`; the option is declared once here.
JsonFlag = Annotated[bool, typer.Option("--json", help="Print plain JSON to stdout (for scripts).")]


@dataclass
class CliState:
    """Per-invocation state the root callback sets: `-v`, and the registry a command opened."""

    verbose: bool = False
    registry: str | None = None  # `Registry.location` of what the command opened, for `-v` and errors


STATE = CliState()


def set_verbose(verbose: bool) -> None:
    """Start an invocation: `-v` on or off, and no registry opened yet (the root callback calls this)."""
    STATE.verbose, STATE.registry = verbose, None


def console() -> Console:
    """A console on stdout, built per call so it follows the current terminal (and test runners).

    Piped or redirected output gets a wide page instead of rich's 80 columns, so `| grep` and
    `> file` never see cropped or folded tables.
    """
    piped = not sys.stdout.isatty() and "COLUMNS" not in os.environ
    return Console(highlight=False, width=PIPED_WIDTH if piped else None)


def err_console() -> Console:
    """A console on stderr for notes and errors, so stdout stays parseable."""
    return Console(stderr=True, highlight=False)


def to_jsonable(value: Any) -> Any:
    """Turn pydantic models (via `model_dump(mode="json")`), dataclasses and containers into JSON values."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(asdict(value))
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def print_json(value: Any) -> None:
    """Print `value` as indented JSON on stdout (no colours, no wrapping)."""
    typer.echo(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False))


def fmt_time(value: datetime | None) -> str:
    """A timestamp as `YYYY-MM-DD HH:MM UTC` (naive values are taken as UTC)."""
    if value is None:
        return "-"
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def fmt_metric(value: float | int | None) -> str:
    """A number rounded to 4 significant digits (`0.061234` → `0.06123`)."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.4g}"


def fmt_metrics(metrics: Mapping[str, float]) -> str:
    """Metrics as `nmae=0.061 rmse=12.35`, keys sorted."""
    return " ".join(f"{k}={fmt_metric(v)}" for k, v in sorted(metrics.items())) or "-"


def fmt_map(values: Mapping[str, Any], sep: str = "=") -> str:
    """A small mapping on one line: `site=p50 owner=ops`."""
    return " ".join(f"{k}{sep}{v}" for k, v in sorted(values.items())) or "-"


def fmt_size(size: int) -> str:
    """Bytes in a human unit (`1.5 MiB`)."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    no_wrap: Sequence[str] = (),
    styles: Sequence[str | None] | None = None,
    bold_cells: Sequence[int | None] | None = None,
) -> None:
    """Print a rich table; columns named in `no_wrap` are never broken across lines.

    Cells are plain text, never rich markup: tag values and reasons are user input, and a stray
    `[/x]` in them must print as typed, not crash the command. `styles` gives a style per row
    (e.g. the rows that differ in `models compare`), `bold_cells` a column index to embolden per row.
    """
    cells = [["-" if cell is None else str(cell) for cell in row] for row in rows]
    tbl = Table(title=title, title_justify="left", header_style="bold")
    for i, col in enumerate(columns):
        # a column of `a=1 b=2` lists gets its longest pair as minimum width, so narrow terminals
        # wrap between pairs instead of cutting a number in two
        pairs = [w for row in cells if " " in row[i] for w in row[i].split()]
        min_width = min(max(map(len, pairs)), 24) if pairs else None
        tbl.add_column(col, no_wrap=col in no_wrap, overflow="fold", min_width=min_width)
    for i, row in enumerate(cells):
        bold = bold_cells[i] if bold_cells else None
        texts = [Text(cell, style="bold green" if j == bold else "") for j, cell in enumerate(row)]
        tbl.add_row(*texts, style=styles[i] if styles else None)
    console().print(tbl)


def fields(title: str | None, pairs: Iterable[tuple[str, Any]]) -> None:
    """Print `key  value` lines as a borderless two-column table."""
    tbl = Table(title=title, title_justify="left", show_header=False, box=None, padding=(0, 2, 0, 0))
    tbl.add_column(style="bold", no_wrap=True)
    tbl.add_column(overflow="fold")
    for key, value in pairs:
        tbl.add_row(Text(key), Text("-" if value is None or value == "" else str(value)))
    console().print(tbl)


def say(message: str) -> None:
    """A one-line result for humans on stdout (printed as is: no rich markup)."""
    console().print(message, soft_wrap=True, markup=False)


def note(message: str) -> None:
    """A hint or warning on stderr, so it never pollutes piped output."""
    err_console().print(message, style="dim", soft_wrap=True, markup=False)


def usage_error(message: str) -> typer.BadParameter:
    """A misuse of the command line (exit code 2): `raise usage_error("give either VERSION or --delete")`.

    Built from `typer`, not `click`: recent Typer vendors its own Click and only catches its own errors.
    """
    return typer.BadParameter(message)


def error(message: str) -> None:
    """Print `error: <message>` in red on stderr."""
    err_console().print(f"error: {message}", style="red", markup=False, soft_wrap=True)
