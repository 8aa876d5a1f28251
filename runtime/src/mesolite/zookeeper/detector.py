"""Who leads: reads the lowest-sequence member under a Mesos ZooKeeper path and decodes its MasterInfo.

Every `--master` value (agents, Marathon, the CLIs) is parsed here once, into a `MasterLocation`: under a
ZooKeeper URL the leader changes and is detected; a fixed `host:port` is a standalone master."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from kazoo.exceptions import NoAuthError, NoNodeError

from mesolite.retry import RetryPolicy
from mesolite.zookeeper.acls import ZooKeeperAccessDenied, access_denied
from mesolite.zookeeper.election import MASTER_INFO_LABEL
from mesolite.zookeeper.membership import Member, leading_member
from mesolite.zookeeper.session import SessionState, WatchedEvaluation, ZooKeeperSession
from mesolite.zookeeper.url import FILE_SCHEME, ZOOKEEPER_SCHEME, ZooKeeperUrl, parse_zookeeper_url, read_url_file

log = logging.getLogger(__name__)

LEGACY_PROTOBUF_LABEL = "info"  # Mesos before 0.24 wrote a serialized MasterInfo protobuf under `info_`

MasterInfo = dict[str, Any]
LeaderCallback = Callable[[MasterInfo | None], Awaitable[None] | None]


# Reaching ZooKeeper for the first time: a process may start before its ensemble does, and serves its own
# API meanwhile, so a slow retry costs nothing.
ZOOKEEPER_START_RETRY = RetryPolicy(initial=0.5, maximum=5.0)
# The masters' path refuses our credentials (someone protected it against the Mesos convention): read it
# again now and then, so that a fixed ACL is noticed without a restart.
REFUSED_RETRY = RetryPolicy(initial=1.0, maximum=30.0)
HTTP_SCHEMES = ("http://", "https://")


@dataclass(frozen=True)
class MasterLocation:
    """Where the leading master is found: under `zookeeper` (it changes, and is detected) or at one fixed
    `address` (`host:port`, a standalone master). Exactly one of the two is set."""

    zookeeper: ZooKeeperUrl | None = None
    address: str | None = None
    # "https" when the address was given as https://host:port; None when not said (a client then follows
    # LIBPROCESS_SSL_ENABLED, and a detected leader's MasterInfo tells its own scheme).
    scheme: str | None = None

    def __str__(self) -> str:
        return str(self.zookeeper) if self.zookeeper is not None else str(self.address)


def parse_master_location(value: str) -> MasterLocation:
    """A `--master` value: `zk://…`, `file://<path>` holding one of the others, `host:port`, or
    `http(s)://host:port[/…]` (as Mesos's own CLIs accept). `ValueError` naming the problem otherwise."""
    text = value.strip()
    if text.startswith(FILE_SCHEME):
        text = read_url_file(text)
    if text.startswith(ZOOKEEPER_SCHEME):
        return MasterLocation(zookeeper=parse_zookeeper_url(text))
    scheme = next((scheme for scheme in HTTP_SCHEMES if text.lower().startswith(scheme)), None)
    if scheme is not None:
        text = text[len(scheme) :]
    address = text.split("/", 1)[0]
    host, separator, port = address.rpartition(":")
    if not separator or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"invalid master '{value}': expected zk://host:port[,host:port]/path, file:///path holding one, "
            "or host:port"
        )
    return MasterLocation(address=address, scheme=scheme.removesuffix("://") if scheme else None)


async def started_detector(url: ZooKeeperUrl) -> MasterDetector:
    """A `MasterDetector` of `url`, started: until ZooKeeper answers, it keeps trying (and says so)."""
    detector = MasterDetector(url)
    backoff = ZOOKEEPER_START_RETRY.backoff()
    while True:
        try:
            await detector.start()
            return detector
        except Exception as error:
            delay = backoff.next_delay()
            log.warning("cannot reach ZooKeeper at %s yet (retrying in %.1fs): %s", url, delay, error)
            await asyncio.sleep(delay)


async def leader_addresses(location: MasterLocation) -> AsyncIterator[str | None]:
    """`scheme://host:port` of the leading master, now and after every change (None while there is none): https
    when its MasterInfo says so (a master with TLS), or when a fixed `--master` was given as https:// (a client
    with LIBPROCESS_SSL_ENABLED speaks TLS to any master, as libprocess does)."""
    if location.zookeeper is None:
        yield f"{location.scheme or 'http'}://{location.address}"
        await asyncio.Event().wait()  # a fixed master never changes
        return
    detector = await started_detector(location.zookeeper)
    try:
        async for leader in detector.changes():
            yield None if leader is None else master_url(leader)
    finally:
        await detector.stop()


def ip_to_uint32(ip: str) -> int:
    """MasterInfo.ip: the IPv4 address's bytes in network order, read as a little-endian uint32 (as Mesos does)."""
    return int.from_bytes(ipaddress.IPv4Address(ip).packed, "little")


def uint32_to_ip(value: int) -> str:
    return str(ipaddress.IPv4Address(int(value).to_bytes(4, "little")))


def master_address(info: MasterInfo) -> str:
    """`ip:port` of a MasterInfo: `address.ip` when present, else the packed `ip`, else the `pid`."""
    address = info.get("address") or {}
    port = address.get("port") or info.get("port")
    if address.get("ip") and port:
        return f"{address['ip']}:{port}"
    if info.get("ip") is not None and port:
        return f"{uint32_to_ip(info['ip'])}:{port}"
    pid = info.get("pid", "")
    if "@" in pid:
        return pid.split("@", 1)[1]
    raise ValueError(f"MasterInfo has no address, ip or pid: {info!r}")


def master_url(info: MasterInfo) -> str:
    """`scheme://ip:port` of a MasterInfo: `address.scheme` is https when the master serves TLS."""
    scheme = "https" if (info.get("address") or {}).get("scheme") == "https" else "http"
    return f"{scheme}://{master_address(info)}"


def decode_master_info(member: Member, data: bytes) -> MasterInfo:
    """Decode a member znode's data: JSON for `json.info_`, a protobuf MasterInfo for legacy `info_` nodes."""
    if member.label == MASTER_INFO_LABEL:
        info = json.loads(data)
        if not isinstance(info, dict):
            raise ValueError(f"{member.name} holds {type(info).__name__}, not a MasterInfo object")
        return info
    if member.label in (LEGACY_PROTOBUF_LABEL, None):
        return _decode_master_info_protobuf(data)
    raise ValueError(f"{member.name}: unknown member label '{member.label}'")


class MasterDetector:
    """Follows the leading master under a zk:// URL and reports every change (a MasterInfo dict, or None).

    Use as `async for leader in detector.changes()`, through `on_change`, or with `wait_for_leader`.
    A suspended session keeps the last leader (the agent should not drop a healthy connection because
    ZooKeeper blinked); after the session comes back the leader is read again. A session suspended for a
    whole session timeout (TIMED_OUT: a quorum loss, a partition) reports no leader: by then the old
    leader's session has expired too, or it stepped down, and sending anyone to it would be a lie.
    """

    def __init__(
        self,
        url: ZooKeeperUrl | str | None = None,
        session: ZooKeeperSession | None = None,
        on_change: LeaderCallback | None = None,
    ) -> None:
        if session is None and url is None:
            raise ValueError("MasterDetector needs a zk:// URL or a session")
        self._owns_session = session is None
        self.session = session or ZooKeeperSession(url)  # type: ignore[arg-type]
        self.url = parse_zookeeper_url(url) if isinstance(url, str) else (url or self.session.url)
        if self.url.path == "/":
            raise ValueError(f"{self.url}: a path is required ('/' is not supported, as in Mesos)")
        self.leader: MasterInfo | None = None
        self.refusal: ZooKeeperAccessDenied | None = None  # why the last reading was refused, if it was
        self._refused_backoff = REFUSED_RETRY.backoff()
        self._leader_member: Member | None = None
        self._on_change = on_change
        self._subscribers: list[asyncio.Queue[MasterInfo | None]] = []
        self._known = asyncio.Event()  # set once the first reading is done
        self._lock = asyncio.Lock()
        self._running = False
        self._evaluation = WatchedEvaluation(self.session, self._evaluate, lambda: self._running, self._lock)

    async def start(self, timeout: float = 15.0) -> None:  # noqa: ASYNC109 - the contract's signature
        self._running = True
        if self._owns_session:
            await self.session.start(timeout)
        self.session.add_state_listener(self._on_session_state)
        await self._evaluation.run()

    async def stop(self) -> None:
        self._running = False
        self.session.remove_state_listener(self._on_session_state)
        if self._owns_session:
            await self.session.stop()

    async def wait_for_leader(self, timeout: float | None = None) -> MasterInfo:  # noqa: ASYNC109 - the contract's signature
        """The current leader, waiting up to `timeout` seconds for one; `TimeoutError` when none appears."""
        async with asyncio.timeout(timeout):
            async for leader in self.changes():
                if leader is not None:
                    return leader
        raise TimeoutError("detector stopped")  # pragma: no cover - changes() never ends by itself

    async def changes(self) -> AsyncIterator[MasterInfo | None]:
        """The current leader (after the first reading), then every change of leader."""
        queue: asyncio.Queue[MasterInfo | None] = asyncio.Queue()
        self._subscribers.append(queue)
        try:
            await self._known.wait()
            yield self.leader
            while True:
                yield await queue.get()
        finally:
            self._subscribers.remove(queue)

    async def _on_session_state(self, state: SessionState) -> None:
        if state == SessionState.CONNECTED:
            await self._evaluation.run()
        elif state in (SessionState.TIMED_OUT, SessionState.LOST):
            async with self._lock:
                self._leader_member = None
                if self._known.is_set():
                    await self._announce(None)

    async def _evaluate(self) -> None:
        """Read who leads and announce it if that changed; re-arms the watch.

        Called through `self._evaluation`: under `self._lock`, while running and connected.
        """
        client = self.session.client
        try:
            children = await self.session.run(client.get_children, self.url.path, watch=self._evaluation.watch)
        except NoNodeError:
            # No master ever ran here: wait for the path to appear. If it appeared since we listed it, the
            # existence watch is a data watch on a node that exists and would never tell us about members:
            # list the children again (with a children watch) instead.
            try:
                if await self.session.run(client.exists, self.url.path, watch=self._evaluation.watch) is not None:
                    self._evaluation.schedule()
                    return
            except Exception as error:
                log.warning("watching for %s failed: %s", self.url, error)
                return
            children = []
        except NoAuthError:
            self._refused(access_denied(self.url, self.url.path, "listing the masters under"))
            return
        except Exception as error:
            log.warning("reading masters under %s failed: %s", self.url, error)
            return
        self.refusal = None
        self._refused_backoff.reset()
        member = leading_member(children)
        if member == self._leader_member and self._known.is_set():
            return
        leader = await self._read_leader(member) if member else None
        self._leader_member = member if leader is not None else None
        await self._announce(leader)

    async def _read_leader(self, member: Member) -> MasterInfo | None:
        path = f"{self.url.path}/{member.name}"
        try:
            data, _stat = await self.session.run(self.session.client.get, path)
            return decode_master_info(member, data)
        except NoNodeError:
            self._evaluation.schedule()  # it went away between listing and reading
        except NoAuthError:
            self._refused(access_denied(self.url, path, "reading the leading master's znode"))
        except Exception as error:
            log.error("cannot decode the leading master's znode %s: %s", path, error)
        return None

    def _refused(self, refusal: ZooKeeperAccessDenied) -> None:
        """ZooKeeper refused a reading: say so, and read again later (the ACL may be fixed meanwhile)."""
        self.refusal = refusal
        delay = self._refused_backoff.next_delay()
        log.error("cannot detect the leading master: %s (trying again in %.0fs)", refusal, delay)
        asyncio.get_running_loop().call_later(delay, self._evaluation.schedule)

    async def _announce(self, leader: MasterInfo | None) -> None:
        changed = leader != self.leader or not self._known.is_set()
        self.leader = leader
        self._known.set()
        if not changed:
            return
        log.info("leading master: %s", master_address(leader) if leader else "none")
        for queue in self._subscribers:
            queue.put_nowait(leader)
        if self._on_change is not None:
            outcome = self._on_change(leader)
            if asyncio.iscoroutine(outcome):
                await outcome


async def detect_leading_master(url: ZooKeeperUrl | str, timeout: float = 10.0) -> MasterInfo:  # noqa: ASYNC109 - the contract's signature
    """Connect, read the leading master's MasterInfo and disconnect; `TimeoutError` if none within `timeout`."""
    detector = MasterDetector(url)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        await detector.start(timeout)  # TimeoutError naming the servers when ZooKeeper is unreachable
        try:
            return await detector.wait_for_leader(max(0.0, deadline - loop.time()))
        except TimeoutError as error:
            why = f": {detector.refusal}" if detector.refusal is not None else ""
            raise TimeoutError(f"no leading master found under {detector.url} within {timeout:g}s{why}") from error
    finally:
        with contextlib.suppress(Exception):
            await detector.stop()


# --- the legacy protobuf encoding (read only) ---------------------------------------------------------

# MasterInfo fields: 1 id, 2 ip (uint32), 3 port, 4 pid, 5 hostname, 6 version, 7 address (Address:
# 1 hostname, 2 ip, 3 port). Anything else is skipped.
_MASTER_INFO_FIELDS = {1: "id", 2: "ip", 3: "port", 4: "pid", 5: "hostname", 6: "version", 7: "address"}
_ADDRESS_FIELDS = {1: "hostname", 2: "ip", 3: "port"}


def _decode_master_info_protobuf(data: bytes) -> MasterInfo:
    info = _decode_message(data, _MASTER_INFO_FIELDS)
    if "address" in info:
        info["address"] = _decode_message(info["address"], _ADDRESS_FIELDS)
    for name in ("id", "pid", "hostname", "version"):
        if isinstance(info.get(name), bytes):
            info[name] = info[name].decode()
    if not info.get("pid") and not info.get("address") and "ip" not in info:
        raise ValueError("legacy MasterInfo protobuf without an address")
    return info


def _decode_message(data: bytes, fields: dict[int, str]) -> dict[str, Any]:
    """Decode protobuf wire format for the fields named in `fields`: varints as ints, others as bytes."""
    decoded: dict[str, Any] = {}
    position = 0
    while position < len(data):
        key, position = _read_varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            value, position = _read_varint(data, position)
        elif wire_type == 2:
            length, position = _read_varint(data, position)
            value, position = data[position : position + length], position + length
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            value, position = int.from_bytes(data[position : position + size], "little"), position + size
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(data):
            raise ValueError("truncated protobuf message")
        if number in fields:
            name = fields[number]
            decoded[name] = value.decode() if isinstance(value, bytes) and fields is _ADDRESS_FIELDS else value
    return decoded


def _read_varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if position >= len(data):
            raise ValueError("truncated protobuf varint")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
