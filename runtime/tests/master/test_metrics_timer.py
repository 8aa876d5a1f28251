"""The Mesos-style timer behind `allocator/mesos/allocation_run_ms` and its `/max`, `/p99`, ... statistics."""

from __future__ import annotations

import pytest

from mesolite.master import metrics
from mesolite.master.metrics import Timer


def test_no_values_no_keys():
    assert Timer().snapshot("allocator/mesos/allocation_run_ms") == {}


def test_last_value_and_statistics():
    timer = Timer()
    for value in (5.0, 1.0, 3.0, 2.0, 4.0):
        timer.add(value)
    snapshot = timer.snapshot("run_ms")
    assert snapshot["run_ms"] == 4.0  # the last value, as Mesos reports it
    assert snapshot["run_ms/count"] == 5.0
    assert snapshot["run_ms/min"] == 1.0
    assert snapshot["run_ms/max"] == 5.0
    assert snapshot["run_ms/p50"] == 3.0
    assert snapshot["run_ms/p90"] == pytest.approx(4.6)  # interpolated between the closest ranks
    assert snapshot["run_ms/p99"] == pytest.approx(4.96)
    assert set(snapshot) == {"run_ms"} | {
        f"run_ms/{suffix}" for suffix in ("count", "min", "max", "p50", "p90", "p95", "p99", "p999", "p9999")
    }


def test_values_older_than_the_window_are_forgotten(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(metrics.time, "monotonic", lambda: clock[0])
    timer = Timer(window=60.0)
    timer.add(900.0)
    clock[0] += 61.0
    timer.add(2.0)
    snapshot = timer.snapshot("run_ms")
    assert snapshot["run_ms/count"] == 1.0
    assert snapshot["run_ms/max"] == 2.0


def test_capacity_keeps_the_newest_values():
    timer = Timer(capacity=3)
    for value in (100.0, 1.0, 2.0, 3.0):
        timer.add(value)
    snapshot = timer.snapshot("run_ms")
    assert snapshot["run_ms/count"] == 3.0
    assert snapshot["run_ms/max"] == 3.0
