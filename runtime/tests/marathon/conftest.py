"""Fixtures of the Marathon tests."""

from __future__ import annotations

import pytest
from marathon_cluster import Cluster


@pytest.fixture
def cluster(zookeeper, launcher, tmp_path):
    """A real master in a fresh ZooKeeper chroot; the test starts the agents and Marathons it needs."""
    root = zookeeper.url("")
    built = Cluster(f"{root}/mesos", f"{root}/marathon", launcher, tmp_path)
    built.start_master()
    yield built
    built.kill_tasks()
