"""Daily job: log a plant's measured power for the monitor, once the meter export has landed.

    python deliver_actuals.py --plant piemonte --day 2023-10-02     # default: yesterday (UTC)

The monitor joins these actuals with the forecasts logged for the same plant and hours, however late
they come; a corrected export sent again replaces the first values (actuals are keyed by plant and hour).
Here the "meter export" is `plant.meter_readings`: SIMULATED power from PVGIS weather
(PVGIS © European Union, 2001-2024).
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

from plant import get_plant, meter_readings

from maestrale import Settings, log_actuals


def deliver(plant_name: str, start: date, end: date | None = None) -> int:
    """Log the hourly meter readings of `plant_name` for the days start..end; return the records sent."""
    plant = get_plant(plant_name)
    readings = meter_readings(plant, start, end or start)
    return int(log_actuals(readings, entity=plant.name))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plant", default="piemonte")
    parser.add_argument(
        "--day", type=date.fromisoformat, default=None, help="first UTC day (default: yesterday)"
    )
    parser.add_argument("--until", type=date.fromisoformat, default=None, help="last day (default: --day)")
    args = parser.parse_args(argv)
    day = args.day or (datetime.now(UTC) - timedelta(days=1)).date()
    if Settings().broker_url.startswith("memory"):
        print(
            "note: MAESTRALE_BROKER_URL is memory://, so these actuals reach no monitor outside this process",
            file=sys.stderr,
        )
    n = deliver(args.plant, day, args.until)
    print(f"{args.plant}: logged {n} hourly actuals for {day}" + (f" → {args.until}" if args.until else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
