"""The `mesolite` command: one entry point that dispatches to the master, agent, scheduler and executor."""

from __future__ import annotations

import importlib
import sys

from mesolite import MESOS_COMPATIBLE_VERSION, __version__

# Each service lives in its own package; it is imported only when asked for, so that
# `mesolite --version` works on a host that lacks, say, the docker SDK.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "master": ("mesolite.master.service", "Run a Mesos-compatible master (systemd unit mesos-master)"),
    "agent": ("mesolite.agent.service", "Run a Mesos-compatible agent (systemd unit mesos-slave)"),
    "marathon": ("mesolite.marathon.service", "Run the Marathon-compatible scheduler (systemd unit marathon)"),
    "lb": ("mesolite.lb.service", "Run the marathon-lb compatible load balancer (systemd unit marathon-lb)"),
    "executor": ("mesolite.agent.executor", "Supervise one task (started by the agent, not by hand)"),
    "dns": ("mesolite.dns.service", "Run the Mesos-DNS-compatible DNS server (systemd unit mesos-dns)"),
}


def usage() -> str:
    lines = ["usage: mesolite {--version | <command> [flags]}", "", "commands:"]
    lines += [f"  {name:<10} {summary}" for name, (_module, summary) in SUBCOMMANDS.items()]
    lines += ["", "Run `mesolite <command> --help` for the flags of a command."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments or arguments[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0 if arguments else 2
    if arguments[0] == "--version":
        print(f"mesolite {__version__} (Mesos API {MESOS_COMPATIBLE_VERSION})")
        return 0
    command, rest = arguments[0], arguments[1:]
    if command not in SUBCOMMANDS:
        print(f"mesolite: unknown command '{command}'\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[command][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
