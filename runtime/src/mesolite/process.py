"""What the master, agent and Marathon processes do alike around their own work: logging, and stopping on signals."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys


def configure_logging(level_name: str) -> None:
    """Log to stderr (the journal, under systemd) at the level `--logging_level` names (INFO when it names none)."""
    logging.basicConfig(
        level=getattr(logging, str(level_name).upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # kazoo logs every connection attempt at INFO; the ZooKeeper session logs the state changes that matter.
    logging.getLogger("kazoo").setLevel(logging.WARNING)


def set_on_termination(event: asyncio.Event) -> None:
    """Set `event` when the process is told to stop: SIGTERM (systemd stops the unit) or SIGINT (Ctrl-C)."""
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signal_number, event.set)
