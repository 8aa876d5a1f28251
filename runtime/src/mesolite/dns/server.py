"""The DNS listeners: UDP and TCP on `listener:port`, bounded so that no client can stall the others.

- A datagram or TCP message that is not one well-formed query (one question, opcode QUERY, QR clear) is
  dropped without an answer; a packet that parses but asks what we do not do (another opcode, several
  questions) gets FORMERR/NOTIMP as DNS servers answer them.
- Questions in the Mesos domain are answered at once from the current records (a dictionary lookup: no
  await between reading a datagram and writing its answer).
- Forwarded questions run as tasks, at most `max_forwarding` at a time; past that, SERVFAIL at once rather
  than an unbounded queue.
- TCP: at most `max_connections` connections, each closed after `idle_timeout` seconds without a complete
  message; one message is at most 65535 bytes by its framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.opcode
import dns.rcode

from mesolite.dns.answers import Zone, answer, refused, wire
from mesolite.dns.forwarding import Forwarder
from mesolite.dns.records import RecordSet

log = logging.getLogger(__name__)

UDP_DEFAULT_SIZE = 512
TCP_MAX_SIZE = 65535
MAX_FORWARDING = 256
MAX_TCP_CONNECTIONS = 256
TCP_IDLE_TIMEOUT = 10.0


class Resolver:
    """Turns one query's bytes into the answer's bytes: the Mesos zone here, the rest through the forwarder."""

    def __init__(
        self,
        zone: Zone,
        records: Callable[[], RecordSet],
        forwarder: Forwarder | None,
        set_truncate_bit: bool = True,
        max_forwarding: int = MAX_FORWARDING,
    ) -> None:
        self.zone = zone
        self.records = records
        self.forwarder = forwarder
        self.set_truncate_bit = set_truncate_bit
        self.max_forwarding = max_forwarding
        self.forwarding = 0
        self.rng = random.Random()
        self.dropped = 0

    def parse(self, data: bytes) -> dns.message.Message | None:
        """The query in `data`, or None for anything that is not a query (dropped, counted)."""
        try:
            query = dns.message.from_wire(data, one_rr_per_rrset=False)
        except (dns.exception.DNSException, ValueError, IndexError, struct.error, UnicodeError) as error:
            self.dropped += 1
            log.debug("dropped a malformed packet (%d bytes): %s", len(data), error)
            return None
        if query.flags & dns.flags.QR:
            self.dropped += 1
            return None
        return query

    def local_answer(self, query: dns.message.Message) -> dns.message.Message | None:
        """The answer when it needs no upstream, else None (forward it)."""
        if query.opcode() != dns.opcode.QUERY:
            return refused(query, dns.rcode.NOTIMP)
        if len(query.question) != 1:
            return refused(query, dns.rcode.FORMERR)
        if self.zone.contains(query.question[0].name):
            return answer(query, self.records(), self.zone, self.rng)
        if self.forwarder is None:
            return refused(query, dns.rcode.REFUSED)
        if self.forwarding >= self.max_forwarding:
            return refused(query, dns.rcode.SERVFAIL)
        return None

    async def forwarded(self, query: dns.message.Message) -> dns.message.Message:
        assert self.forwarder is not None
        self.forwarding += 1
        try:
            return await self.forwarder.forward(query)
        except Exception as error:  # an upstream must never take the server down
            log.warning("forwarding %s failed: %s", query.question[0].name, error)
            return refused(query, dns.rcode.SERVFAIL)
        finally:
            self.forwarding -= 1

    def encode(self, query: dns.message.Message, response: dns.message.Message, udp: bool) -> bytes:
        if not udp:
            limit = TCP_MAX_SIZE
        else:
            limit = max(UDP_DEFAULT_SIZE, query.payload) if query.edns >= 0 else UDP_DEFAULT_SIZE
        try:
            return wire(response, limit, self.set_truncate_bit)
        except dns.exception.DNSException as error:
            log.warning("cannot encode the answer to %s: %s", query.question[0].name, error)
            return refused(query, dns.rcode.SERVFAIL).to_wire()


class UdpListener(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, address: tuple) -> None:
        query = self.resolver.parse(data)
        if query is None:
            return
        response = self.resolver.local_answer(query)
        if response is not None:
            self._send(query, response, address)
            return
        task = asyncio.ensure_future(self._forward(query, address))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _forward(self, query: dns.message.Message, address: tuple) -> None:
        self._send(query, await self.resolver.forwarded(query), address)

    def _send(self, query: dns.message.Message, response: dns.message.Message, address: tuple) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(self.resolver.encode(query, response, udp=True), address)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # e.g. ICMP port unreachable from a client gone away

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.transport is not None:
            self.transport.close()


class DnsServer:
    """UDP and TCP listeners for one resolver; `start()` binds both, `stop()` closes them."""

    def __init__(
        self,
        resolver: Resolver,
        host: str,
        port: int,
        max_connections: int = MAX_TCP_CONNECTIONS,
        idle_timeout: float = TCP_IDLE_TIMEOUT,
    ) -> None:
        self.resolver = resolver
        self.host = host
        self.port = port
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._udp: UdpListener | None = None
        self._tcp: asyncio.Server | None = None
        self._connections: set[asyncio.Task] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        # TCP first: with port 0 the kernel's pick is then used for UDP as well.
        self._tcp = await asyncio.start_server(self._serve_connection, self.host, self.port, backlog=128)
        if self.port == 0:
            self.port = self._tcp.sockets[0].getsockname()[1]
        _transport, protocol = await loop.create_datagram_endpoint(
            lambda: UdpListener(self.resolver), local_addr=(self.host, self.port)
        )
        self._udp = protocol

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            for task in list(self._connections):
                task.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2)

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._connections) >= self.max_connections or task is None:
            writer.close()
            return
        self._connections.add(task)
        try:
            while True:
                async with asyncio.timeout(self.idle_timeout):
                    header = await reader.readexactly(2)
                    data = await reader.readexactly(struct.unpack("!H", header)[0])
                query = self.resolver.parse(data)
                if query is None:
                    return  # a malformed message on a stream: the framing can no longer be trusted
                response = self.resolver.local_answer(query)
                if response is None:
                    response = await self.resolver.forwarded(query)
                payload = self.resolver.encode(query, response, udp=False)
                writer.write(struct.pack("!H", len(payload)) + payload)
                async with asyncio.timeout(self.idle_timeout):  # a client that never reads is let go
                    await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._connections.discard(task)
            writer.close()
