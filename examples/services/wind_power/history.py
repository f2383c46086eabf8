"""Write a farm's training history (NWP forecast inputs + SCADA power) to `data/{farm}.parquet`.

    python history.py                                  # farm appennino, 2023-01-01 → 2023-12-31
    python history.py --farm appennino --start 2023-01-01 --end 2023-12-31 --out data/appennino.parquet

In production this file is the team's data lake (e.g. `abfs://lake/wind/appennino.parquet`); here it comes
from the SYNTHETIC farm of `farm.py` (seeded: the same file every time).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from farm import get_farm, simulate

HERE = Path(__file__).resolve().parent


def write_history(farm: str, start: date, end: date, out: Path | None = None) -> Path:
    """Write the history of `farm` for start..end as Parquet (UTC index `time`); return the path."""
    path = out or HERE / "data" / f"{farm}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    simulate(get_farm(farm), start, end).to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="appennino")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2023, 12, 31))
    parser.add_argument("--out", type=Path, default=None, help="default: data/FARM.parquet beside this file")
    args = parser.parse_args(argv)
    path = write_history(args.farm, args.start, args.end, args.out)
    print(f"wrote {path} ({args.start} → {args.end}; synthetic farm data)")


if __name__ == "__main__":
    main()
