"""The chaos tests' fixtures: a fresh three-server ZooKeeper ensemble (harness/ensemble.py) for each test, and
the cluster of masters, agents and Marathons (chaos_cluster.py) on the shared ZooKeeper.

A package of its own (like tests/ui) so that this conftest does not replace the shared `conftest` module of
tests/. The ensemble itself and the chaos tests' cluster (chaos_cluster.py) are plain modules: the reliability
benchmark (bench/reliability.py) builds its cluster with them too.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator

import pytest

from chaos.chaos_cluster import Cluster
from harness.ensemble import ZooKeeperEnsemble, start_ensemble


@pytest.fixture
def zookeeper_ensemble(tmp_path) -> Iterator[ZooKeeperEnsemble]:
    """A fresh three-server ZooKeeper ensemble for one test (tests kill its servers, so it is never shared)."""
    ensemble = start_ensemble(tmp_path / "zookeeper-ensemble")
    try:
        yield ensemble
    finally:
        ensemble.stop_all()


@pytest.fixture
def cluster(zookeeper, launcher, tmp_path):
    root = zookeeper.url("")
    yield Cluster(f"{root}/mesos", f"{root}/marathon", launcher, tmp_path)
    for started in launcher.started:  # a stopped (SIGSTOP) process must run again to be stopped
        with contextlib.suppress(ProcessLookupError):
            os.killpg(started.process.pid, signal.SIGCONT)
