"""Helpers shared by the scenarios' testinfra tests (each test module puts this directory on sys.path)."""

import json
import time

import pytest


def node_address(host):
    """The address of the node's name (`hostname -I` would also list docker0 on agents)."""
    return host.check_output("hostname -i").split()[0]


def wait_for_json(host, url, predicate, attempts=60):
    """GET `url` from inside the node until its JSON satisfies `predicate` (a service starting, electing or
    registering answers late); returns that JSON, or fails the test with the last answer."""
    last = None
    for _ in range(attempts):
        result = host.run(f"curl -sfL {url}")
        if result.rc == 0:
            last = json.loads(result.stdout)
            if predicate(last):
                return last
        time.sleep(1)
    pytest.fail(f"{url} never satisfied the condition; last answer: {last}")
