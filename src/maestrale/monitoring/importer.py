"""Import logged predictions or measured actuals from a CSV or Parquet file into the monitor's store.

>>> m = ColumnMap(time="timestamp", value="power_kw", entity="p50", timezone="Europe/Rome")
>>> result = import_file(store, "actuals", "p50.csv", m)  # doctest: +SKIP
>>> result.stored, result.rejected_count  # doctest: +SKIP
(1463, 1)

The file is read in chunks (`chunk_rows` rows of CSV, Parquet record batches), so its size does not
bound memory. Times follow `maestrale.timeparse`: naive ones need `timezone`, strings are ISO 8601
unless `time_format` says otherwise. A bad row (an unreadable time, a number that is not one, an
empty entity) is rejected with its row number, column and reason, and every good row is stored: the
`rejects` of the result (the first `KEEP_REJECTS`) and, with `rejects_path`, a CSV of all of them.
A whole-file mistake (a missing column, naive times without a zone) stops the import at once.

Row numbers count data rows from 1 (in a CSV with a header, row N is on line N + 1).
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from maestrale.errors import InvalidInput
from maestrale.monitoring.ingest import MAX_BATCH

if TYPE_CHECKING:
    import pandas as pd

    from maestrale.monitoring.store import MonitorStore

KEEP_REJECTS = 1_000  # kept in memory for the summary; the rejects file has every one
CHUNK_ROWS = 50_000
CONTEXT_ROWS = 200  # rows of the previous chunk re-read for order (the repeated DST hour at a boundary)
Kind = Literal["predictions", "actuals"]


@dataclass(frozen=True)
class RowReject:
    """One row not imported: its data row number (from 1), the column at fault, and why."""

    row: int
    column: str | None
    reason: str


@dataclass
class ColumnMap:
    """Which column is what, and how its times are written. `entity` is a constant for every row."""

    time: str = "target_time"
    value: str = "value"  # actuals
    prediction: str = "prediction"  # predictions
    entity_col: str | None = None
    entity: str | None = None
    issued_at_col: str | None = None
    issued_at: str | None = None
    record_id_col: str | None = None
    features: list[str] | None = None  # predictions: default every other numeric column
    timezone: str | None = None
    time_format: str | None = None


@dataclass
class ImportResult:
    """What an import did: rows read, stored, already stored, and the rejected rows."""

    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected_count: int = 0
    rejects: list[RowReject] = field(default_factory=list)

    def summary(self, kind: str) -> str:
        """One line, e.g. `1464 rows: 1463 actuals stored, 0 already stored, 1 rejected`."""
        return (
            f"{self.rows} rows: {self.stored} {kind} stored, {self.duplicates} already stored, "
            f"{self.rejected_count} rejected"
        )


def read_chunks(path: Path, chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows, `chunk_rows` at a time, every column as read (CSV cells as strings)."""
    import pandas as pd

    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_rows):
            yield batch.to_pandas()
    elif name.endswith((".csv", ".csv.gz", ".txt", ".tsv")):
        sep = "\t" if name.endswith(".tsv") else ","
        # strings, so a time or an id is never turned into a float before the checks see it
        yield from pd.read_csv(path, sep=sep, chunksize=chunk_rows, dtype=str, keep_default_na=False)
    else:
        raise InvalidInput(f"{path.name}: not a CSV (.csv, .csv.gz, .tsv) or Parquet (.parquet) file")


def import_file(
    store: MonitorStore,
    kind: Kind,
    path: str | Path,
    columns: ColumnMap,
    *,
    model: str | None = None,
    version: int | None = None,
    rejects_path: str | Path | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> ImportResult:
    """Import `path` into `store` (see the module docstring); predictions need `model` and `version`."""
    from maestrale.timeparse import check_timezone

    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    if kind == "predictions" and (model is None or version is None):
        raise InvalidInput("importing predictions needs the model and its version: --model NAME --version N")
    if columns.timezone is not None:
        check_timezone(columns.timezone)
    result = ImportResult()
    out = open(rejects_path, "w", newline="", encoding="utf-8") if rejects_path else None  # noqa: SIM115
    try:
        writer = csv.writer(out) if out else None
        if writer:
            writer.writerow(["row", "column", "reason"])
        offset, previous = 0, None
        for chunk in read_chunks(path, chunk_rows):
            if offset == 0:
                _check_columns(chunk, kind, columns, path)
            rejects = _import_chunk(
                store, kind, chunk, columns, model, version, offset, path, result, previous
            )
            previous = chunk.tail(CONTEXT_ROWS)
            result.rows += len(chunk)
            offset += len(chunk)
            result.rejected_count += len(rejects)
            room = KEEP_REJECTS - len(result.rejects)
            result.rejects.extend(rejects[: max(room, 0)])
            if writer:
                writer.writerows([r.row, r.column or "", r.reason] for r in rejects)
    finally:
        if out:
            out.close()
    return result


def _check_columns(chunk: pd.DataFrame, kind: Kind, m: ColumnMap, path: Path) -> None:
    needed = {"time (--time-col)": m.time}
    if kind == "actuals":
        needed["value (--value-col)"] = m.value
    else:
        needed["prediction (--prediction-col)"] = m.prediction
        if m.issued_at_col:
            needed["issue time (--issued-at-col)"] = m.issued_at_col
        elif m.issued_at is None:
            raise InvalidInput("say when the forecasts were made: --issued-at-col COLUMN or --issued-at TIME")
        if m.record_id_col:
            needed["record id (--record-id-col)"] = m.record_id_col
        for f in m.features or []:
            needed[f"feature {f!r} (--feature-cols)"] = f
    if m.entity_col:
        needed["entity (--entity-col)"] = m.entity_col
    elif m.entity is None:
        raise InvalidInput("say which plant or series the rows are: --entity-col COLUMN or --entity NAME")
    missing = [f"{what}: {col!r}" for what, col in needed.items() if col not in chunk.columns]
    if missing:
        raise InvalidInput(
            f"{path.name} has no column for {', '.join(missing)}; its columns are "
            f"{', '.join(map(str, chunk.columns[:30]))}: name the right one with the option shown"
        )


def _import_chunk(
    store: MonitorStore, kind: Kind, chunk: pd.DataFrame, m: ColumnMap, model: str | None,
    version: int | None, offset: int, path: Path, result: ImportResult, previous: pd.DataFrame | None,
) -> list[RowReject]:  # fmt: skip
    """Check one chunk row by row, store its good rows; returns its rejected rows."""
    from maestrale.monitoring._import_rows import build_records

    records, rows, rejects = build_records(kind, chunk, m, offset, path.name, previous)
    for i in range(0, len(records), MAX_BATCH):
        batch, batch_rows = records[i : i + MAX_BATCH], rows[i : i + MAX_BATCH]
        if kind == "predictions":
            assert model is not None and version is not None
            res = store.log_predictions(model, version, batch)
        else:
            res = store.log_actuals(batch)
        result.stored += res.stored
        result.duplicates += res.duplicates
        rejects += [RowReject(batch_rows[r.index], None, r.reason) for r in res.rejected]
    return sorted(rejects, key=lambda r: r.row)


def reject_lines(result: ImportResult, limit: int = 10) -> list[str]:
    """The first rejected rows as lines: `row 12, column 'time': not a time ('31/02/2024')`."""
    lines = [
        f"row {r.row}" + (f", column {r.column!r}" if r.column else "") + f": {r.reason}"
        for r in result.rejects[:limit]
    ]
    if result.rejected_count > limit:
        lines.append(f"… and {result.rejected_count - limit} more (--rejects FILE writes them all)")
    return lines
