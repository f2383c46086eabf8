"""Write a plant's training history (forecast weather + meter readings) to `data/{plant}.parquet`.

    python history.py                                   # plant piemonte, 2023-01-01 → 2023-09-30
    python history.py --plant piemonte --start 2023-01-01 --end 2023-09-30 --out data/piemonte.parquet

In production this file is the team's data lake (the spec's `data.uri` would be e.g.
`abfs://lake/pv/piemonte.parquet`); here it is built from the stand-in feeds of `plant.py`:
REAL PVGIS weather with a simulated forecast error, and SIMULATED power (PVGIS © European Union, 2001-2024).
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from plant import CREDIT, get_plant, history

HERE = Path(__file__).resolve().parent


def write_history(plant: str, start: date, end: date, out: Path | None = None) -> Path:
    """Write the history of `plant` for start..end as Parquet (UTC index `time`); return the path."""
    path = out or HERE / "data" / f"{plant}.parquet"
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = history(get_plant(plant), start, end)
    frame.to_parquet(path)
    return path


def main(argv: list[str] | None = None) -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant", default="piemonte")
    parser.add_argument("--start", type=date.fromisoformat, default=date(2023, 1, 1))
    parser.add_argument("--end", type=date.fromisoformat, default=date(2023, 9, 30))
    parser.add_argument("--out", type=Path, default=None, help="default: data/PLANT.parquet beside this file")
    args = parser.parse_args(argv)
    path = write_history(args.plant, args.start, args.end, args.out)
    print(f"wrote {path} ({args.start} → {args.end}); weather: {CREDIT}")


if __name__ == "__main__":
    main()
