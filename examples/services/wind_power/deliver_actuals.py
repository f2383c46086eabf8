"""Daily job: log a farm's measured power (SCADA export) for the monitor.

    python deliver_actuals.py --farm appennino --day 2024-07-01      # default: yesterday (UTC)

The monitor joins these actuals with the predictions the model server logged for the same farm
(`entity`) and hours, however late they come. Here the "SCADA export" is `farm.scada_power`: SYNTHETIC.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime, timedelta

from farm import get_farm, scada_power

from maestrale import Settings, log_actuals


def deliver(farm_name: str, start: date, end: date | None = None) -> int:
    """Log the hourly power of `farm_name` for the days start..end; return the records sent."""
    farm = get_farm(farm_name)
    return int(log_actuals(scada_power(farm, start, end or start), entity=farm.name))


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--farm", default="appennino")
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
    n = deliver(args.farm, day, args.until)
    print(f"{args.farm}: logged {n} hourly actuals for {day}" + (f" → {args.until}" if args.until else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
