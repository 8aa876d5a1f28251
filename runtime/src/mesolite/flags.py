"""Service flags, loaded the way Mesos and its Debian packaging load them.

Sources, strongest first:

1. the command line: `--name=value`, `--name value`, `--name` / `--no-name` for booleans;
2. the environment: `<PREFIX><NAME>` (`MESOS_PORT=5050`; upper case, like Mesos);
3. configuration files, the packaging convention of the reference runbook: every file in the
   service's directories (`/etc/mesos-master/`, `/etc/mesos-slave/`, ...) is one flag (file name =
   flag, content = value; empty files named `?flag` or `?no-flag` set booleans), and a "zk file"
   (`/etc/mesos/zk`) that feeds one flag (`--zk` for the master, `--master` for the agent);
4. the defaults.

A value `file:///path` reads the value from that file, as Mesos does. An unknown flag on the command
line or in a configuration directory is an error that names it and where it came from; an unknown
environment variable with the prefix is only reported (hosts carry variables such as
`MESOS_NATIVE_JAVA_LIBRARY` that are not flags).

`MESOLITE_CONFIG_ROOT` (a directory) is prepended to every configuration path, so that tests and
unprivileged runs can use a private `/etc`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

CONFIG_ROOT_VARIABLE = "MESOLITE_CONFIG_ROOT"


class FlagError(ValueError):
    """Bad flags: the message names the flag, the value and where it came from."""


# -- value types ----------------------------------------------------------------------------------

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-z]*)\s*$")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "": 1.0,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "w": 604800.0,
    "week": 604800.0,
    "weeks": 604800.0,
}


def duration(text: str) -> float:
    """A Mesos duration (`15secs`, `1mins`, `500ms`, `2hrs`, `1weeks`; a bare number is seconds) in seconds."""
    match = _DURATION.match(str(text).lower())
    if match is None or match.group(2) not in _DURATION_UNITS:
        raise ValueError(f"'{text}' is not a duration like 15secs, 500ms, 1mins or 2hrs")
    return float(match.group(1)) * _DURATION_UNITS[match.group(2)]


_BYTES = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*([a-z]*)\s*$")
_BYTE_UNITS = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3, "tb": 1024**4}


def byte_size(text: str) -> int:
    """A Mesos byte size (`512MB`, `1GB`, `4096B`; a bare number is bytes) in bytes."""
    match = _BYTES.match(str(text).lower())
    if match is None or match.group(2) not in _BYTE_UNITS:
        raise ValueError(f"'{text}' is not a size like 512MB or 1GB")
    return int(float(match.group(1)) * _BYTE_UNITS[match.group(2)])


def boolean(text: str) -> bool:
    lowered = str(text).strip().lower()
    if lowered in {"true", "1", "yes", "on", ""}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise ValueError(f"'{text}' is not true or false")


# -- definitions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Flag:
    """One flag: `type` converts the text value (`str`, `int`, `float`, `bool`, `duration`, `byte_size`, ...)."""

    name: str
    type: Callable[[str], Any] = str
    default: Any = None
    help: str = ""
    # Names accepted as well, e.g. Mesos's deprecated `slave_*` spellings of `agent_*` flags.
    aliases: tuple[str, ...] = ()

    @property
    def is_boolean(self) -> bool:
        return self.type is bool or self.type is boolean

    def convert(self, value: str, origin: str) -> Any:
        converter = boolean if self.is_boolean else self.type
        try:
            return converter(value)
        except (ValueError, TypeError) as error:
            raise FlagError(f"flag --{self.name} from {origin}: {error}") from None


@dataclass
class FlagSet:
    """The flags of one service, and where they are read from.

    `config_directories` are tried in order (later directories win over earlier ones for the same
    flag); `zookeeper_file` is a file whose content feeds `zookeeper_flag`. Both are relative to
    `MESOLITE_CONFIG_ROOT` when that variable is set.
    """

    service_name: str
    env_prefix: str
    config_directories: Sequence[str | Path] = ()
    flags: Sequence[Flag] = ()
    zookeeper_file: str | Path | None = None
    zookeeper_flag: str | None = None
    description: str = ""
    warnings: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._by_name: dict[str, Flag] = {}
        for flag in self.flags:
            for name in (flag.name, *flag.aliases):
                self._by_name[name] = flag

    # public

    def parse(self, argv: Sequence[str], environ: Mapping[str, str] | None = None) -> SimpleNamespace:
        """All flag values as a namespace (`flags.port`); raises `FlagError` naming what is wrong."""
        environ = os.environ if environ is None else environ
        self.warnings = []
        values: dict[str, Any] = {flag.name: flag.default for flag in self.flags}
        for source in (self._from_files(environ), self._from_environment(environ), self._from_command_line(argv)):
            for flag, value in source:
                values[flag.name] = value
        return SimpleNamespace(**values)

    def load(self, argv: Sequence[str]) -> SimpleNamespace:
        """`parse`, for a service's `main`: prints help (exit 0) or the error (exit 2) and exits."""
        if any(argument in {"-h", "--help"} for argument in argv):
            print(self.help_text())
            raise SystemExit(0)
        try:
            namespace = self.parse(argv)
        except FlagError as error:
            print(f"{self.service_name}: {error}\n\nRun `{self.service_name} --help` for the flags.", file=sys.stderr)
            raise SystemExit(2) from None
        for warning in self.warnings:
            print(f"{self.service_name}: warning: {warning}", file=sys.stderr)
        return namespace

    def help_text(self) -> str:
        lines = [f"usage: {self.service_name} [--flag=value ...]"]
        if self.description:
            lines += ["", self.description]
        lines += ["", "flags:"]
        for flag in sorted(self.flags, key=lambda f: f.name):
            label = f"--[no-]{flag.name}" if flag.is_boolean else f"--{flag.name}=VALUE"
            default = "" if flag.default is None else f" (default: {flag.default})"
            lines.append(f"  {label:<36} {flag.help}{default}")
        lines += [
            "",
            f"Every flag may also come from the environment ({self.env_prefix}<FLAG>) or from a file named",
            f"after the flag in {', '.join(str(d) for d in self.config_directories) or 'no directory'}.",
        ]
        return "\n".join(lines)

    # sources

    def _lookup(self, name: str, origin: str) -> Flag:
        flag = self._by_name.get(name)
        if flag is None:
            raise FlagError(f"unknown flag --{name} (from {origin})")
        return flag

    def _value(self, flag: Flag, text: str, origin: str) -> tuple[Flag, Any]:
        if text.startswith("file://") and not flag.is_boolean:
            path = Path(text[len("file://") :])
            try:
                text = path.read_text().strip()
            except OSError as error:
                raise FlagError(f"flag --{flag.name} from {origin}: cannot read {path}: {error.strerror}") from None
        return flag, flag.convert(text, origin)

    def _from_command_line(self, argv: Sequence[str]) -> Iterable[tuple[Flag, Any]]:
        arguments = list(argv)
        index = 0
        unknown: list[str] = []
        results = []
        while index < len(arguments):
            argument = arguments[index]
            index += 1
            if not argument.startswith("--") or argument == "--":
                raise FlagError(f"unexpected argument '{argument}' (flags look like --name=value)")
            name, has_value, value = argument[2:].partition("=")
            name = name.replace("-", "_") if name.replace("-", "_") in self._by_name else name
            negated = not has_value and name.startswith("no-") and name[3:] in self._by_name
            if negated:
                flag = self._by_name[name[3:]]
                if not flag.is_boolean:
                    raise FlagError(f"--no-{flag.name}: only boolean flags can be negated")
                results.append((flag, False))
                continue
            if name not in self._by_name:
                unknown.append(f"--{name}")
                continue
            flag = self._by_name[name]
            if not has_value:
                if flag.is_boolean:
                    results.append((flag, True))
                    continue
                if index >= len(arguments):
                    raise FlagError(f"flag --{name} needs a value (--{name}=VALUE)")
                value = arguments[index]
                index += 1
            results.append(self._value(flag, value, "the command line"))
        if unknown:
            raise FlagError(
                f"unknown flag{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} (from the command line)"
            )
        return results

    def _from_environment(self, environ: Mapping[str, str]) -> Iterable[tuple[Flag, Any]]:
        results = []
        for variable, value in sorted(environ.items()):
            if not variable.startswith(self.env_prefix):
                continue
            name = variable[len(self.env_prefix) :].lower()
            flag = self._by_name.get(name)
            if flag is None:
                self.warnings.append(f"ignoring environment variable {variable}: no flag --{name}")
                continue
            results.append(self._value(flag, value, f"environment variable {variable}"))
        return results

    def _from_files(self, environ: Mapping[str, str]) -> Iterable[tuple[Flag, Any]]:
        root = environ.get(CONFIG_ROOT_VARIABLE, "")
        results = []
        if self.zookeeper_file and self.zookeeper_flag:
            path = rooted(self.zookeeper_file, root)
            if path.is_file():
                flag = self._lookup(self.zookeeper_flag, str(path))
                results.append(self._value(flag, path.read_text().strip(), str(path)))
        unknown = []
        for directory in self.config_directories:
            folder = rooted(directory, root)
            if not folder.is_dir():
                continue
            for path in sorted(folder.iterdir()):
                if not path.is_file() or path.name.startswith("."):
                    continue
                name = path.name
                if name.startswith("?"):
                    negated = name.startswith("?no-")
                    flag_name = name[4:] if negated else name[1:]
                    flag = self._by_name.get(flag_name)
                    if flag is None:
                        unknown.append(str(path))
                    elif not flag.is_boolean:
                        raise FlagError(
                            f"{path}: --{flag_name} is not a boolean flag; write its value into {folder}/{flag_name}"
                        )
                    else:
                        results.append((flag, not negated))
                    continue
                flag = self._by_name.get(name)
                if flag is None:
                    unknown.append(str(path))
                    continue
                results.append(self._value(flag, path.read_text().strip(), str(path)))
        if unknown:
            raise FlagError(f"unknown flag file{'s' if len(unknown) > 1 else ''}: {', '.join(unknown)}")
        return results


def rooted(path: str | Path, root: str) -> Path:
    """`path` under `root` (for MESOLITE_CONFIG_ROOT); `path` itself when root is empty."""
    if not root:
        return Path(path)
    return Path(root) / Path(path).relative_to("/") if Path(path).is_absolute() else Path(root) / path
