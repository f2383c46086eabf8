"""PredictionLogger on the in-process bus: batches of at most `batch_size`, drops counted, flush on close."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pytest

from maestrale.bus.transports.memory import MemoryTransport
from maestrale.serving.logger import PredictionLogger
from maestrale.serving.metrics import ServingMetrics
from tests.buscollect import collecting

NOW = datetime(2012, 6, 1, 12, tzinfo=UTC)
FRAME = pd.DataFrame({"ghi": np.arange(500.0), "temp_air": 20.0})


@pytest.fixture
def bus() -> Iterator[MemoryTransport]:
    bus = MemoryTransport(f"logger-{uuid.uuid4().hex[:8]}")
    # a monitor consuming in this process: the logger publishes to it (see tests/buscollect.py)
    with collecting(bus, "monitor", ["maestrale.prediction.logged"]) as collector:
        bus.collector = collector  # type: ignore[attr-defined]
        yield bus
    bus.delete()


def published(bus: MemoryTransport) -> list:
    return bus.collector.payloads()  # type: ignore[attr-defined]


def test_batches_hold_at_most_batch_size_records_and_close_flushes_the_rest(bus):
    metrics = ServingMetrics()
    logger = PredictionLogger(bus, batch_size=1_000, interval=600, metrics=metrics).start()
    try:
        for _ in range(5):  # a full batch goes at once; the last 500 wait for the (far) interval
            assert logger.log("pv", 2, FRAME, FRAME["ghi"] * 0.004, entity="p50", issued_at=NOW)
    finally:
        logger.close(timeout=10)
    batches = published(bus)
    assert [len(b.records) for b in batches] == [1_000, 1_000, 500]
    first = batches[0].records[0]
    assert (batches[0].model, batches[0].version, first.entity) == ("pv", 2, "p50")
    assert first.features == {"ghi": 0.0, "temp_air": 20.0} and first.target_time == NOW
    assert len({r.record_id for b in batches for r in b.records}) == 2_500  # unique ids, one per row
    assert "maestrale_serving_predictions_logged_total 2500.0" in metrics.render().decode()
    assert logger.log("pv", 2, FRAME, FRAME["ghi"], entity="p50", issued_at=NOW) is False  # closed


def test_a_full_buffer_drops_and_counts_without_blocking(bus):
    metrics = ServingMetrics()
    # batches bigger than the buffer: nothing is published before close, so the buffer fills up
    logger = PredictionLogger(bus, capacity=1_000, batch_size=5_000, interval=600, metrics=metrics).start()
    try:
        accepted = [logger.log("pv", 2, FRAME, FRAME["ghi"], entity="p50", issued_at=NOW) for _ in range(3)]
        assert accepted == [True, True, False] and logger.buffered == 1_000
        text = metrics.render().decode()
        assert 'maestrale_serving_predictions_dropped_total{reason="buffer_full"} 500.0' in text
        assert "maestrale_serving_prediction_log_queue 1000.0" in text
    finally:
        logger.close(timeout=10)
    assert [len(b.records) for b in published(bus)] == [1_000]
