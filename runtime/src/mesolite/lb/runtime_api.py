"""HAProxy's runtime API over its stats socket: put a server into a slot and take it out, without a reload.

Every command is one connection (`echo "cmd" | socat` style): HAProxy answers and closes. A server moves
between `ready` (takes traffic), `drain` (keeps its sessions, takes no new ones except sticky clients) and
`maint` (takes nothing new; established connections run to their end).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

COMMAND_TIMEOUT = 5.0
# Answers that mean HAProxy refused a command (it answers errors as text, not with a status).
_REFUSALS = ("no such", "unknown command", "require", "invalid", "unsupported", "not found", "can't", "cannot")


class RuntimeApiError(RuntimeError):
    """HAProxy refused a command, or its socket could not be reached."""


async def unix_command(path: str, command: str, timeout: float = COMMAND_TIMEOUT) -> str:  # noqa: ASYNC109
    """Send one command to an HAProxy socket (stats or master CLI) and return its whole answer."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_unix_connection(path), timeout)
    except (OSError, TimeoutError) as error:
        raise RuntimeApiError(f"cannot reach HAProxy's socket {path}: {error}") from None
    try:
        writer.write(command.encode() + b"\n")
        # Like `echo cmd | socat`: the end of input tells HAProxy to answer and close (else it waits for more).
        writer.write_eof()
        await writer.drain()
        return (await asyncio.wait_for(reader.read(), timeout)).decode(errors="replace")
    except (OSError, TimeoutError) as error:
        raise RuntimeApiError(f"HAProxy's socket {path} failed during {command!r}: {error}") from None
    finally:
        writer.close()


@dataclass
class RuntimeApi:
    stats_socket: str

    async def command(self, command: str) -> str:
        answer = (await unix_command(self.stats_socket, command)).strip()
        if any(refusal in answer.lower() for refusal in _REFUSALS):
            raise RuntimeApiError(f"HAProxy refused {command!r}: {answer}")
        return answer

    async def set_address(self, backend: str, server: str, address: str, port: int) -> None:
        await self.command(f"set server {backend}/{server} addr {address} port {port}")

    async def set_state(self, backend: str, server: str, state: str) -> None:
        if state not in {"ready", "drain", "maint"}:
            raise ValueError(f"unknown server state {state!r}")
        await self.command(f"set server {backend}/{server} state {state}")

    async def servers_state(self, backend: str) -> dict[str, dict[str, str]]:
        """`show servers state <backend>` as {server name: {field: value}} (fields as HAProxy names them)."""
        answer = await self.command(f"show servers state {backend}")
        lines = [line for line in answer.splitlines() if line.strip()]
        header = next((line for line in lines if line.startswith("# ") and "srv_name" in line), None)
        if header is None:
            return {}
        fields = header[2:].split()
        states = {}
        for line in lines:
            if line.startswith("#") or line[0].isdigit() is False:
                continue
            values = dict(zip(fields, line.split(), strict=False))
            if "srv_name" in values:
                states[values["srv_name"]] = values
        return states
