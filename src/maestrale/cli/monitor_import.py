"""`maestrale monitor import predictions|actuals FILE`: load a CSV or Parquet file into the monitor's store.

>>> from typer.testing import CliRunner
>>> from maestrale.cli.main import app
>>> CliRunner().invoke(app, ["monitor", "import", "actuals", "p50.csv", "--time-col", "timestamp",
...                          "--value-col", "power_kw", "--entity", "p50", "--timezone", "Europe/Rome"]
...                    ).exit_code  # doctest: +SKIP
0
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from maestrale.cli.output import JsonFlag, note, print_json, say, usage_error


class ImportKind(StrEnum):
    """What the file holds."""

    predictions = "predictions"
    actuals = "actuals"


def import_file(
    kind: Annotated[ImportKind, typer.Argument(help="predictions (forecasts) or actuals (measured).")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="CSV (.csv, .csv.gz, .tsv) or Parquet.")],
    time_col: Annotated[
        str, typer.Option("--time-col", metavar="COLUMN", help="Target time (actuals: the measured time).")
    ] = "target_time",
    value_col: Annotated[
        str, typer.Option("--value-col", metavar="COLUMN", help="Actuals: the measured value.")
    ] = "value",
    prediction_col: Annotated[
        str, typer.Option("--prediction-col", metavar="COLUMN", help="Predictions: the forecast.")
    ] = "prediction",
    entity_col: Annotated[
        str | None, typer.Option("--entity-col", metavar="COLUMN", help="The plant or series of each row.")
    ] = None,
    entity: Annotated[
        str | None, typer.Option("--entity", metavar="NAME", help="One plant or series for every row.")
    ] = None,
    issued_at_col: Annotated[
        str | None,
        typer.Option("--issued-at-col", metavar="COLUMN", help="Predictions: when each forecast was made."),
    ] = None,
    issued_at: Annotated[
        str | None, typer.Option("--issued-at", metavar="TIME", help="Predictions: one issue time for all.")
    ] = None,
    record_id_col: Annotated[
        str | None,
        typer.Option(
            "--record-id-col", metavar="COLUMN", help="Predictions: unique id (default entity/issued/target)."
        ),
    ] = None,
    feature_cols: Annotated[
        str | None,
        typer.Option(
            "--feature-cols",
            metavar="A,B",
            help="Predictions: model inputs (default: other numeric columns).",
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME", help="Predictions: the model.")
    ] = None,
    version: Annotated[
        int | None,
        typer.Option("--version", min=1, metavar="N", help="Predictions: its version."),
    ] = None,
    timezone: Annotated[
        str | None,
        typer.Option(
            "--timezone",
            metavar="ZONE",
            help="Zone of naive times, e.g. Europe/Rome.",
        ),
    ] = None,
    time_format: Annotated[
        str | None,
        typer.Option("--time-format", metavar="FMT", help="strftime pattern, e.g. '%d/%m/%Y %H:%M'."),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", metavar="FILE", help="CSV of every rejected row."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Import predictions or actuals from a file, checking every row; bad rows are listed, not stored.

    Read in chunks (any size), into the monitor's store (MAESTRALE_DATABASE_URL: the embedded default
    or PostgreSQL). Importing twice stores nothing twice (predictions by record id; a corrected actual
    replaces the old one). Naive times need --timezone; then evaluate the range with
    `maestrale monitor evaluate NAME --from … --to …`.

    Example: `maestrale monitor import actuals p50.csv --time-col timestamp --value-col power_kw
    --entity p50 --timezone Europe/Rome --rejects bad.csv`
    """
    from maestrale.cli._monitor_io import open_store
    from maestrale.monitoring.importer import ColumnMap, Kind, reject_lines
    from maestrale.monitoring.importer import import_file as run_import
    from maestrale.refs import validate_name

    if entity_col and entity:
        raise usage_error("give either --entity-col (a column) or --entity (one name for every row)")
    if issued_at_col and issued_at:
        raise usage_error("give either --issued-at-col (a column) or --issued-at (one time for every row)")
    if kind is ImportKind.predictions:
        if model is None or version is None:
            raise usage_error(
                "importing predictions needs --model NAME --version N (the version that made them)"
            )
        validate_name(model)
    columns = ColumnMap(
        time=time_col, value=value_col, prediction=prediction_col, entity_col=entity_col, entity=entity,
        issued_at_col=issued_at_col, issued_at=issued_at, record_id_col=record_id_col,
        features=[c.strip() for c in feature_cols.split(",") if c.strip()] if feature_cols else None,
        timezone=timezone, time_format=time_format,
    )  # fmt: skip
    store = open_store()
    what: Kind = "predictions" if kind is ImportKind.predictions else "actuals"
    result = run_import(store, what, file, columns, model=model, version=version, rejects_path=rejects)
    if as_json:
        print_json(
            {
                "rows": result.rows, "stored": result.stored, "duplicates": result.duplicates,
                "rejected": result.rejected_count,
                "rejects": [{"row": r.row, "column": r.column, "reason": r.reason} for r in result.rejects],
            }
        )  # fmt: skip
        return
    say(f"{file.name}: {result.summary(kind.value)}")
    for line in reject_lines(result):
        note(line)
    if rejects is not None and result.rejected_count:
        note(f"every rejected row: {rejects}")
