"""Leader detection: Mesos's json.info_ nodes, legacy protobuf info_ nodes, changes of leader, timeouts."""

# ruff: noqa: F811 - pytest fixtures imported from zookeeper_testing are redefined as parameters

import asyncio
import json

import pytest
from zookeeper_testing import (  # noqa: F401 - fixtures
    TEST_SESSION_TIMEOUT,
    freeze,
    private_zookeeper,
    session,
    thaw,
    zk_url,
)

from harness.waiting import eventually
from mesolite.zookeeper.detector import (
    MasterDetector,
    detect_leading_master,
    ip_to_uint32,
    master_address,
    parse_master_location,
    uint32_to_ip,
)
from mesolite.zookeeper.election import LeaderElection, SuspensionPolicy
from mesolite.zookeeper.session import ZooKeeperSession
from mesolite.zookeeper.url import parse_zookeeper_url


@pytest.mark.parametrize(
    ("ip", "packed"),
    # Mesos stores in_addr.s_addr: network-order bytes read as a host (little-endian) uint32.
    [("127.0.0.1", 16777343), ("192.168.56.11", 188262592), ("10.0.0.1", 16777226), ("0.0.0.0", 0)],
)
def test_ip_packing_matches_mesos(ip, packed):
    assert ip_to_uint32(ip) == packed
    assert uint32_to_ip(packed) == ip


@pytest.mark.parametrize(
    ("info", "address"),
    [
        ({"address": {"ip": "192.168.56.11", "port": 5050}, "ip": 1, "port": 1}, "192.168.56.11:5050"),
        ({"ip": 188262592, "port": 5050}, "192.168.56.11:5050"),
        ({"pid": "master@10.0.0.1:5051"}, "10.0.0.1:5051"),
    ],
)
def test_master_address(info, address):
    assert master_address(info) == address


def test_master_address_without_any_address_is_an_error():
    with pytest.raises(ValueError, match="no address"):
        master_address({"id": "x"})


def master_info(port: int) -> dict:
    return {"id": f"m{port}", "ip": ip_to_uint32("127.0.0.1"), "port": port, "pid": f"master@127.0.0.1:{port}",
            "hostname": "localhost", "version": "1.11.0",
            "address": {"hostname": "localhost", "ip": "127.0.0.1", "port": port}}  # fmt: skip


def legacy_protobuf_master_info(ip: str, port: int) -> bytes:
    """A MasterInfo protobuf as Mesos < 0.24 wrote it (hand-encoded: id, ip, port, pid, hostname)."""

    def varint(value: int) -> bytes:
        out = b""
        while True:
            byte, value = value & 0x7F, value >> 7
            out += bytes([byte | (0x80 if value else 0)])
            if not value:
                return out

    def field_bytes(number: int, value: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(value)) + value

    return (
        field_bytes(1, b"legacy-id")
        + varint(2 << 3) + varint(ip_to_uint32(ip))
        + varint(3 << 3) + varint(port)
        + field_bytes(4, f"master@{ip}:{port}".encode())
        + field_bytes(5, b"oldhost")
    )  # fmt: skip


@pytest.mark.integration
async def test_detects_the_lowest_json_info_member(session, zk_url):
    client = session.client
    await session.run(client.ensure_path, session.url.path)
    await session.run(client.create, session.url.child("log_replicas"), b"")  # not a member: ignored
    for port in (5051, 5052):
        await session.run(client.create, session.url.child("json.info_"), json.dumps(master_info(port)).encode(),
                          sequence=True)  # fmt: skip
    leader = await detect_leading_master(zk_url, timeout=5)
    assert leader == master_info(5051)
    assert master_address(leader) == "127.0.0.1:5051"


@pytest.mark.integration
async def test_reads_legacy_protobuf_info_members(session, zk_url):
    await session.run(session.client.ensure_path, session.url.path)
    await session.run(session.client.create, session.url.child("info_"),
                      legacy_protobuf_master_info("10.1.2.3", 5050), sequence=True)  # fmt: skip
    leader = await detect_leading_master(zk_url, timeout=5)
    assert leader["pid"] == "master@10.1.2.3:5050"
    assert leader["hostname"] == "oldhost"
    assert master_address(leader) == "10.1.2.3:5050"


@pytest.mark.integration
async def test_timeout_when_no_master_says_so(zk_url):
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(TimeoutError, match=r"no leading master found under zk://.* within 1s"):
        await detect_leading_master(zk_url, timeout=1)
    assert loop.time() - started < 4


@pytest.mark.integration
async def test_detector_follows_leader_changes(zk_url):
    seen: list = []
    sessions = [ZooKeeperSession(zk_url, session_timeout=TEST_SESSION_TIMEOUT) for _ in range(2)]
    detector = MasterDetector(zk_url, on_change=seen.append)
    try:
        await detector.start()
        changes = detector.changes()
        assert await anext(changes) is None  # nobody yet
        contenders = []
        for index, started in enumerate(sessions):
            await started.start()
            contender = LeaderElection(
                started,
                master_info(6000 + index),
                lambda: None,
                lambda _reason: None,
                policy=SuspensionPolicy.KEEP_TERM_UNTIL_EXPIRY,
            )
            await contender.start()
            contenders.append(contender)
        assert await asyncio.wait_for(anext(changes), 5) == master_info(6000)
        await contenders[0].stop()
        assert await asyncio.wait_for(anext(changes), 5) == master_info(6001)
        await sessions[1].stop()
        assert await asyncio.wait_for(anext(changes), 5) is None
        assert seen == [None, master_info(6000), master_info(6001), None]
        await changes.aclose()
    finally:
        await detector.stop()
        for started in sessions:
            await started.stop()


@pytest.mark.integration
async def test_detector_waits_for_the_path_to_appear(session, zk_url):
    detector = MasterDetector(zk_url)
    await detector.start()
    try:
        waiting = asyncio.create_task(detector.wait_for_leader(10))
        await asyncio.sleep(0.3)
        assert not waiting.done()
        await session.run(session.client.ensure_path, session.url.path)
        await session.run(session.client.create, session.url.child("json.info_"),
                          json.dumps(master_info(7000)).encode(), sequence=True)  # fmt: skip
        assert await waiting == master_info(7000)
    finally:
        await detector.stop()


@pytest.mark.integration
async def test_detector_finds_a_leader_whose_path_appears_between_its_two_reads(session, zk_url):
    """Defect 8: the path is created (with its first member) after the detector's children read found no
    node and before its existence watch is set; the watch then sits on an existing node and never tells of
    members. The detector must still end up watching the children and find the leader."""
    detector = MasterDetector(zk_url)
    real_run = detector.session.run
    created = asyncio.Event()

    async def run_creating_the_path_before_the_exists_read(function, *args, **kwargs):
        if function == detector.session.client.exists and not created.is_set():
            await session.run(session.client.ensure_path, session.url.path)
            await session.run(session.client.create, session.url.child("json.info_"),
                              json.dumps(master_info(7100)).encode(), sequence=True)  # fmt: skip
            created.set()
        return await real_run(function, *args, **kwargs)

    detector.session.run = run_creating_the_path_before_the_exists_read
    await detector.start()
    try:
        assert await detector.wait_for_leader(5) == master_info(7100)
        assert created.is_set(), "the test did not create the race it is about"
    finally:
        await detector.stop()


@pytest.mark.integration
async def test_detector_reports_no_leader_after_a_session_timeout_without_zookeeper(private_zookeeper):
    """Defect 3: during a quorum loss (no server answers) the last leader is kept only for one session timeout."""
    url = private_zookeeper.url()
    async with ZooKeeperSession(url, session_timeout=30) as leader_session:
        await leader_session.run(leader_session.client.create, leader_session.url.child("json.info_"),
                                 json.dumps(master_info(7200)).encode(), sequence=True, makepath=True)  # fmt: skip
        detector = MasterDetector(session=ZooKeeperSession(url, session_timeout=TEST_SESSION_TIMEOUT))
        await detector.session.start()
        await detector.start()
        seen: list = []
        try:
            assert await detector.wait_for_leader(5) == master_info(7200)
            changes = detector.changes()
            seen.append(await anext(changes))
            freeze(private_zookeeper)
            try:
                seen.append(await asyncio.wait_for(anext(changes), TEST_SESSION_TIMEOUT * 4))
                assert detector.leader is None
            finally:
                thaw(private_zookeeper)
            seen.append(await asyncio.wait_for(anext(changes), 20))
            assert seen == [master_info(7200), None, master_info(7200)]
            await changes.aclose()
        finally:
            await detector.stop()
            await detector.session.stop()


def test_root_path_is_refused_as_in_mesos():
    with pytest.raises(ValueError, match="a path is required"):
        MasterDetector("zk://127.0.0.1:2181/")


@pytest.mark.integration
async def test_undecodable_leader_counts_as_no_leader(session, zk_url):
    await session.run(session.client.ensure_path, session.url.path)
    await session.run(session.client.create, session.url.child("json.info_"), b"{not json", sequence=True)
    detector = MasterDetector(zk_url)
    await detector.start()
    try:
        await eventually(lambda: detector._known.is_set(), what="first reading")
        assert detector.leader is None
    finally:
        await detector.stop()


@pytest.mark.parametrize(
    ("value", "zookeeper", "address"),
    [
        ("zk://10.0.0.1:2181,10.0.0.1:2182/mesos", "zk://10.0.0.1:2181,10.0.0.1:2182/mesos", None),
        ("zk://user:secret@10.0.0.1:2181/mesos", "zk://user:***@10.0.0.1:2181/mesos", None),
        ("10.0.0.1:5050", None, "10.0.0.1:5050"),
        ("http://master.local:5050/", None, "master.local:5050"),
        ("https://master.local:5050/master/state", None, "master.local:5050"),
    ],
)
def test_every_master_value_is_parsed_once_into_a_location(value, zookeeper, address):
    location = parse_master_location(value)
    assert (str(location.zookeeper) if location.zookeeper else None, location.address) == (zookeeper, address)
    assert str(location) == (zookeeper or address)  # what logs and /state show: never a password


def test_a_master_location_may_come_from_a_file(tmp_path):
    (tmp_path / "zk").write_text("zk://10.0.0.1:2181/mesos\n")
    (tmp_path / "address").write_text("10.0.0.1:5050\n")
    assert parse_master_location(f"file://{tmp_path / 'zk'}").zookeeper == parse_zookeeper_url(
        "zk://10.0.0.1:2181/mesos"
    )
    assert parse_master_location(f"file://{tmp_path / 'address'}").address == "10.0.0.1:5050"


@pytest.mark.parametrize("value", ["master", "10.0.0.1", "10.0.0.1:port", "10.0.0.1:0", "10.0.0.1:70000"])
def test_a_master_value_that_names_nothing_says_what_is_expected(value):
    with pytest.raises(ValueError, match="expected zk://host:port"):
        parse_master_location(value)
