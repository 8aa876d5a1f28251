"""The DNS listeners in process, on loopback: forwarding to a stub upstream (answers, NXDOMAIN, SERVFAIL, silence),
malformed packets dropped while the server keeps answering, floods that never stall the zone's answers."""

from __future__ import annotations

import asyncio
import socket
import struct

import dns.asyncquery
import dns.exception
import dns.flags
import dns.message
import dns.rcode
import pytest
from dns_testing import StubUpstream, answer_values

from mesolite.dns.answers import Zone
from mesolite.dns.forwarding import Forwarder
from mesolite.dns.records import RecordSet
from mesolite.dns.server import DnsServer, Resolver


@pytest.fixture
def upstream():
    stub = StubUpstream(names={"www.example.test.": "192.0.2.10"}, fail={"broken.example.test."},
                        silent={"silent.example.test."})  # fmt: skip
    yield stub
    stub.stop()


def zone_records() -> RecordSet:
    records = RecordSet()
    records.add_address("nginx.marathon.mesos.", "10.0.0.2")
    return records


async def start_server(upstreams: list[str] | None, upstream_timeout: float = 1.0, **limits) -> DnsServer:
    forwarder = Forwarder.from_config(upstreams, {}, upstream_timeout) if upstreams is not None else None
    records = zone_records()
    resolver = Resolver(Zone(), lambda: records, forwarder, **limits)
    server = DnsServer(resolver, "127.0.0.1", 0)
    await server.start()
    return server


async def ask(port: int, name: str, rdtype: str = "A", tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    if tcp:
        return await dns.asyncquery.tcp(query, "127.0.0.1", port=port, timeout=5)
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=5)


async def test_other_names_are_forwarded_to_the_upstream(upstream):
    server = await start_server([upstream.address])
    try:
        for tcp in (False, True):
            found = await ask(server.port, "www.example.test.", tcp=tcp)
            assert answer_values(found, "A") == ["192.0.2.10"] and found.rcode() == dns.rcode.NOERROR
            assert not found.flags & dns.flags.AA  # the upstream's answer, not ours
            missing = await ask(server.port, "nothing.example.test.", tcp=tcp)
            assert missing.rcode() == dns.rcode.NXDOMAIN
            failed = await ask(server.port, "broken.example.test.", tcp=tcp)
            assert failed.rcode() == dns.rcode.SERVFAIL
        assert "www.example.test." in upstream.seen
        # The Mesos domain is ours: never asked upstream.
        assert answer_values(await ask(server.port, "nginx.marathon.mesos."), "A") == ["10.0.0.2"]
        assert not any(name.endswith("mesos.") for name in upstream.seen)
    finally:
        await server.stop()


async def test_an_upstream_that_does_not_answer_gives_servfail_and_the_next_one_is_tried(upstream):
    server = await start_server([upstream.address], upstream_timeout=0.5)
    try:
        silent = await ask(server.port, "silent.example.test.")
        assert silent.rcode() == dns.rcode.SERVFAIL
    finally:
        await server.stop()
    dead = StubUpstream()
    dead.stop()  # nothing listens there any more: the first resolver fails, the second answers
    server = await start_server([dead.address, upstream.address], upstream_timeout=0.5)
    try:
        assert answer_values(await ask(server.port, "www.example.test."), "A") == ["192.0.2.10"]
    finally:
        await server.stop()


async def test_without_resolvers_other_names_are_refused():
    server = await start_server(None)
    try:
        assert (await ask(server.port, "www.example.test.")).rcode() == dns.rcode.REFUSED
        assert (await ask(server.port, "www.example.test.", tcp=True)).rcode() == dns.rcode.REFUSED
    finally:
        await server.stop()


async def ask_with_retries(port: int, name: str, tries: int = 5) -> dns.message.Message:
    query = dns.message.make_query(name, "A")
    for _ in range(tries - 1):
        try:
            return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)
        except dns.exception.Timeout:
            continue
    return await dns.asyncquery.udp(query, "127.0.0.1", port=port, timeout=1)


MALFORMED = [
    b"",
    b"\x00",
    b"\x12\x34\x01\x00\x00\x01",  # a header cut short
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example",  # a question cut short
    b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xc0\x0c\x00\x01\x00\x01",  # a compression loop
    bytes(range(256)) * 4,
    b"\xff" * 65000,  # a huge datagram
]


async def test_malformed_packets_are_dropped_and_the_server_keeps_answering():
    server = await start_server(None)
    try:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            client.connect(("127.0.0.1", server.port))
            for packet in MALFORMED:
                await loop.sock_sendall(client, packet)
            # A response (QR set) is not a query either: no answer, no reflection.
            response = dns.message.make_response(dns.message.make_query("nginx.marathon.mesos.", "A"))
            await loop.sock_sendall(client, response.to_wire())
            await asyncio.sleep(0.3)
            with pytest.raises(BlockingIOError):
                client.recv(65535)  # nothing came back
        assert server.resolver.dropped == len(MALFORMED) + 1
        assert answer_values(await ask(server.port, "nginx.marathon.mesos."), "A") == ["10.0.0.2"]

        # On TCP, a malformed message closes that connection; others are served.
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(struct.pack("!H", 6) + b"\x12\x34\x01\x00\x00\x01")
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert answer_values(await ask(server.port, "nginx.marathon.mesos.", tcp=True), "A") == ["10.0.0.2"]
    finally:
        await server.stop()


async def test_a_flood_of_forwarded_queries_is_bounded_and_the_zone_still_answers(upstream):
    server = await start_server([upstream.address], upstream_timeout=3.0, max_forwarding=8)
    try:
        loop = asyncio.get_running_loop()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.setblocking(False)
            client.connect(("127.0.0.1", server.port))
            for index in range(2000):  # all to an upstream that never answers
                query = dns.message.make_query("silent.example.test.", "A", id=index)
                await loop.sock_sendall(client, query.to_wire())
                if index % 50 == 0:
                    await asyncio.sleep(
                        0
                    )  # the server shares this loop: let it read (the kernel drops past its buffer)
            # The zone answers while thousands of forwarded questions are pending (asked the way stub resolvers
            # ask: again after a second, as the kernel drops datagrams past a full socket buffer) ...
            assert answer_values(await ask_with_retries(server.port, "nginx.marathon.mesos."), "A") == ["10.0.0.2"]
            assert server.resolver.forwarding <= 8
            # ... and those past the bound got SERVFAIL at once rather than a queue.
            await asyncio.sleep(0.5)
            refused = 0
            while True:
                try:
                    data = client.recv(65535)
                except BlockingIOError:
                    break
                refused += dns.message.from_wire(data).rcode() == dns.rcode.SERVFAIL
            print(f"\n{refused} of 2000 forwarded questions answered SERVFAIL at once (bound: 8 in flight)")
            assert refused > 0
    finally:
        await server.stop()


async def test_idle_tcp_connections_are_closed_and_connections_are_bounded():
    records = zone_records()
    resolver = Resolver(Zone(), lambda: records, None)
    server = DnsServer(resolver, "127.0.0.1", 0, max_connections=2, idle_timeout=0.5)
    await server.start()
    try:
        idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
        extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", server.port)
        assert await asyncio.wait_for(extra_reader.read(), 5) == b""  # over the bound: closed at once
        for reader, _writer in idle:
            assert await asyncio.wait_for(reader.read(), 5) == b""  # idle past the timeout: closed
        assert answer_values(await ask(server.port, "nginx.marathon.mesos.", tcp=True), "A") == ["10.0.0.2"]
        for _reader, writer in [*idle, (extra_reader, extra_writer)]:
            writer.close()
    finally:
        await server.stop()
