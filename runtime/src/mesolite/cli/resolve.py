"""`mesos-resolve`: print the leading master's `ip:port` (from zk://, file:// or host:port), as Mesos's tool does."""

from __future__ import annotations

import asyncio
import logging
import socket
import sys

from mesolite.flags import Flag, FlagError, FlagSet, duration
from mesolite.zookeeper.detector import detect_leading_master, master_address, parse_master_location

EXIT_RESOLVED = 0
EXIT_NOT_FOUND = 1
EXIT_USAGE = 2

FLAGS = FlagSet(
    service_name="mesos-resolve",
    env_prefix="MESOS_",
    description=(
        "Print the leading Mesos master as ip:port and exit 0; exit 1 with a message if none is found within\n"
        "--timeout. MASTER is zk://[user:pass@]host:port[,host:port...]/path, file:///path (holding either\n"
        "form) or host:port.\n\n"
        "The address is printed without a scheme even when the master speaks https (as Mesos's tool prints it),\n"
        "so that `--master=$(mesos-resolve …)` keeps working: clients of a TLS cluster export\n"
        "LIBPROCESS_SSL_ENABLED=true (and LIBPROCESS_SSL_CA_FILE), as Mesos's clients do.\n\n"
        "usage: mesos-resolve [--timeout=DURATION] MASTER   (or --master=MASTER)"
    ),
    flags=[
        Flag("master", str, None, "zk://…/mesos, file:///etc/mesos/zk or host:port (or give it as the argument)"),
        Flag("timeout", duration, 5.0, "how long to wait for a leading master (Mesos durations: 5secs, 500ms)"),
        Flag("verbose", bool, False, "log ZooKeeper activity to stderr"),
    ],
)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else list(argv)
    if any(argument in {"-h", "--help"} for argument in arguments):
        print(FLAGS.help_text())
        return EXIT_RESOLVED
    positional = [argument for argument in arguments if not argument.startswith("--")]
    try:
        flags = FLAGS.parse([argument for argument in arguments if argument.startswith("--")])
    except FlagError as error:
        return usage_error(str(error))
    if len(positional) > 1:
        return usage_error(f"expected one MASTER, got {len(positional)}: {' '.join(positional)}")
    master = positional[0] if positional else flags.master
    if not master:
        return usage_error("missing MASTER (zk://host:port/path, file:///path or host:port)")
    logging.basicConfig(level=logging.INFO if flags.verbose else logging.CRITICAL, stream=sys.stderr)
    try:
        address = asyncio.run(resolve(master, flags.timeout))
    except ValueError as error:
        return usage_error(str(error))
    except TimeoutError as error:
        print(f"Failed to detect master from '{master}' within {flags.timeout:g}secs: {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except OSError as error:
        print(f"Failed to resolve master '{master}': {error}", file=sys.stderr)
        return EXIT_NOT_FOUND
    print(address)
    return EXIT_RESOLVED


async def resolve(master: str, wait_seconds: float) -> str:
    """The leading master's `ip:port`; a host name in `host:port` is resolved to its IP, as Mesos does."""
    location = parse_master_location(master)
    if location.zookeeper is not None:
        return master_address(await detect_leading_master(location.zookeeper, wait_seconds))
    host, _, port = str(location.address).rpartition(":")
    return f"{socket.gethostbyname(host)}:{port}"


def usage_error(message: str) -> int:
    print(f"mesos-resolve: {message}\n\nRun `mesos-resolve --help` for usage.", file=sys.stderr)
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
