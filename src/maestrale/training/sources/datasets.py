"""Datasets shipped with Maestrale (`maestrale.datasets`), for examples, demos and tests.

>>> from maestrale.training.spec import DatasetSource
>>> load_dataset(DatasetSource(dataset="pvgis_italy_tmy")).frame.shape
(8760, 9)
"""

from __future__ import annotations

import functools

from maestrale import __version__
from maestrale.training.sources import DataVersion, LoadedData
from maestrale.training.spec import DatasetSource


@functools.lru_cache(maxsize=8)
def _load(dataset: str, freq: str, year: int) -> LoadedData:
    # Cached: a fleet of models on one dataset, or repeated retraining in a worker, reads it once.
    from maestrale import datasets
    from maestrale.registry.metadata import fingerprint

    if dataset == "nrel_system50":
        frame, query = datasets.nrel_system50(freq), f"freq={freq}"
    else:
        frame, query = datasets.pvgis_italy_tmy(coerce_year=year), f"year={year}"
    version = DataVersion(
        kind="dataset",
        uri=f"maestrale://datasets/{dataset}?{query}",
        fingerprint=fingerprint(frame),
        rev=__version__,
        rows=len(frame),
    )
    return LoadedData(frame=frame, version=version, label=dataset)


def load_dataset(source: DatasetSource) -> LoadedData:
    """The dataset as a frame with a UTC `DatetimeIndex` named `time` (shared: do not modify in place)."""
    try:
        return _load(source.dataset, source.freq, source.year)
    except ValueError as exc:  # an unsupported freq or year: the loaders say which values work
        from maestrale.errors import InvalidInput

        raise InvalidInput(f"data.{source.dataset}: {exc}") from None
