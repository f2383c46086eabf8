"""Access to the data files shipped inside ``maestrale.datasets`` (package data).

The files live in ``maestrale/datasets/data/`` and are reached through :mod:`importlib.resources`, so
they load the same way from a source checkout, an editable install, a wheel or a zip import.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable

#: Folder, relative to the ``maestrale.datasets`` package, that holds the data files.
DATA_DIR = "data"

NREL_SYSTEM50_POWER_FILE = "system_50_ac_power_2_full_DST.parquet"
NREL_SYSTEM50_WEATHER_FILE = "system_50_ac_power_2_full_DST_psm3.parquet"
PVGIS_ITALY_TMY_FILE = "pvgis_tmy_45.000N_8.000E.csv"


def data_file(name: str) -> Traversable:
    """Return the packaged data file ``name`` as a :class:`~importlib.resources.abc.Traversable`.

    >>> data_file("pvgis_tmy_45.000N_8.000E.csv").is_file()
    True

    Raises:
        FileNotFoundError: if the file is not part of the installed package (a broken install, or a
            build that dropped the non-Python files).
    """
    path = resources.files("maestrale.datasets").joinpath(DATA_DIR).joinpath(name)
    if not path.is_file():
        raise FileNotFoundError(
            f"maestrale dataset file {name!r} is missing from the installed package "
            f"(expected at maestrale/datasets/{DATA_DIR}/{name}). Reinstall maestrale from a wheel or "
            "source tree that includes src/maestrale/datasets/data/."
        )
    return path
