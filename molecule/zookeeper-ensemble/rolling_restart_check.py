"""Keep writing to a ZooKeeper ensemble and count what a rolling restart costs the client.

Used by the zookeeper-ensemble scenario's side_effect: it starts this script, converges with a
changed setting (every instance restarts, one at a time) and then creates <workdir>/stop. The
script writes a sequence number to one znode every --interval seconds, the way a client with a
sensible retry policy would: a write that hits a lost connection is retried until --give-up
seconds have passed, and only then counts as failed. It writes <workdir>/ready after the first
write and <workdir>/report.json at the end, and prints the report.
"""

import argparse
import json
import logging
import pathlib
import sys
import time

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import ConnectionClosedError, ConnectionLoss, OperationTimeoutError, SessionExpiredError
from kazoo.handlers.threading import KazooTimeoutError

ZNODE = "/mesolite-rolling-restart-check"
RETRYABLE = (ConnectionLoss, ConnectionClosedError, SessionExpiredError, OperationTimeoutError, KazooTimeoutError)


class Counters:
    """What the writer saw; becomes the report."""

    def __init__(self):
        self.started = time.monotonic()
        self.connection_events = []
        self.writes_succeeded = 0
        self.writes_failed = 0
        self.writes_retried = 0
        self.retry_attempts = 0
        self.disconnections = 0
        self.sessions_lost = 0
        self.longest_write_seconds = 0.0

    def on_state(self, state):
        # Called from kazoo's thread; plain integer increments are fine for a report.
        self.connection_events.append(f"{time.monotonic() - self.started:.1f}s {state}")
        if state == KazooState.SUSPENDED:
            self.disconnections += 1
        elif state == KazooState.LOST:
            self.sessions_lost += 1


def write_with_retries(client, value, counters, give_up):
    """Set the znode to value; retry on connection trouble until give_up seconds have passed."""
    started = time.monotonic()
    attempts = 0
    while True:
        attempts += 1
        try:
            client.set(ZNODE, value)
            break
        except RETRYABLE:
            if time.monotonic() - started > give_up:
                counters.writes_failed += 1
                return False
            counters.retry_attempts += 1
            time.sleep(0.1)
    if attempts > 1:
        counters.writes_retried += 1
    counters.writes_succeeded += 1
    counters.longest_write_seconds = max(counters.longest_write_seconds, time.monotonic() - started)
    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", required=True, help="connect string, e.g. 10.0.0.2:2181,10.0.0.3:2181")
    parser.add_argument("--workdir", required=True, type=pathlib.Path)
    parser.add_argument("--interval", type=float, default=0.05, help="seconds between writes")
    parser.add_argument("--give-up", type=float, default=15.0, help="seconds before a write counts as failed")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop even without a stop file")
    arguments = parser.parse_args()

    # kazoo's own log (reconnections, which server it talks to) for when a number looks wrong.
    logging.basicConfig(
        filename=arguments.workdir / "kazoo.log",
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )
    counters = Counters()
    client = KazooClient(hosts=arguments.hosts, timeout=10)
    client.add_listener(counters.on_state)
    client.start(timeout=30)
    client.ensure_path(ZNODE)

    started = time.monotonic()
    stop_at = started + arguments.max_seconds
    sequence = 0
    last_written = None
    while time.monotonic() < stop_at:
        sequence += 1
        if write_with_retries(client, str(sequence).encode(), counters, arguments.give_up):
            last_written = sequence
        if sequence == 1:
            (arguments.workdir / "ready").touch()
        if (arguments.workdir / "stop").exists() and stop_at > time.monotonic() + 2:
            stop_at = time.monotonic() + 2  # write on a little after the last restart
        time.sleep(arguments.interval)

    client.sync(ZNODE)
    stored = client.get(ZNODE)[0].decode()
    client.remove_listener(counters.on_state)  # closing the session on purpose is no loss
    client.stop()
    report = {
        "seconds": round(time.monotonic() - started, 1),
        "writes_attempted": sequence,
        **{key: value for key, value in vars(counters).items() if key != "started"},
        "longest_write_seconds": round(counters.longest_write_seconds, 3),
        "last_acknowledged_write": last_written,
        "value_read_back": int(stored),
        "data_intact": int(stored) == last_written,
    }
    (arguments.workdir / "report.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
