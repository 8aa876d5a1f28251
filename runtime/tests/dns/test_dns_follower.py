"""Reading the master's state: HTTP Basic credentials, https with the cluster's CA, ETag/304 and unchanged bodies
costing no regeneration, `/state` for masters without `/master/state`, and following the leader a standby names.

The master here is a small aiohttp server on loopback serving the captured state (the real master is in
test_dns_cluster.py): what is tested is the client side, which a real open-mode master cannot exercise."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from mesolite.dns.config import DnsConfig
from mesolite.dns.follower import StateFollower
from mesolite.dns.records import NamingSettings, RecordSet
from mesolite.dns.service import client_ssl_context
from mesolite.security.credentials import Credential

CAPTURED = json.loads((Path(__file__).parent / "data" / "master_state.json").read_text())


class FakeMaster:
    """Serves the captured state; counts requests and what they carried."""

    def __init__(self, *, credentials: str | None = None, etag: bool = False, state_path: str = "/master/state"):
        self.credentials = credentials
        self.etag = etag
        self.state = json.loads(json.dumps(CAPTURED))
        self.requests: list[dict] = []
        self.app = web.Application()
        self.app.router.add_get(state_path, self.serve)
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def serve(self, request: web.Request) -> web.Response:
        self.requests.append(dict(request.headers))
        if self.credentials is not None:
            expected = "Basic " + base64.b64encode(self.credentials.encode()).decode()
            if request.headers.get("Authorization") != expected:
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="mesos"'})
        body = json.dumps(self.state)
        tag = f'"{hash(body) & 0xFFFFFFFF:x}"'
        if self.etag and request.headers.get("If-None-Match") == tag:
            return web.Response(status=304)
        headers = {"ETag": tag} if self.etag else {}
        return web.Response(text=body, content_type="application/json", headers=headers)

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> str:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=ssl_context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.state["leader"] = f"master@127.0.0.1:{self.port}"  # this one leads, unless a test says otherwise
        return f"127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


def follower(masters: list[str], seen: list[RecordSet], **options) -> StateFollower:
    return StateFollower(zk="", masters=masters, naming=NamingSettings(), on_records=seen.append, **options)


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as client:
        yield client


async def test_basic_credentials_are_sent_and_a_refusal_keeps_the_last_records(session):
    master = FakeMaster(credentials="dns:s3cret")
    address = await master.start()
    try:
        seen: list[RecordSet] = []
        refused = follower([address], seen)
        assert await refused.refresh(session) is False and seen == []
        allowed = follower([address], seen, credential=Credential("dns", "s3cret"))
        assert await allowed.refresh(session) is True
        assert "web.mesos-executeinstance.mesos." in seen[-1].a
    finally:
        await master.stop()


async def test_unchanged_state_costs_no_regeneration(session):
    for etag in (True, False):
        master = FakeMaster(etag=etag)
        address = await master.start()
        try:
            seen: list[RecordSet] = []
            reader = follower([address], seen)
            assert await reader.refresh(session) and await reader.refresh(session)
            assert len(seen) == 1  # the second read: 304, or the same body
            if etag:
                assert "If-None-Match" in master.requests[1]
            master.state["frameworks"][0]["tasks"][0]["state"] = "TASK_FINISHED"
            assert await reader.refresh(session)
            assert len(seen) == 2 and "web.mesos-executeinstance.mesos." not in seen[-1].a
        finally:
            await master.stop()


async def test_state_endpoint_fallback_and_following_the_named_leader(session):
    leader = FakeMaster(state_path="/state")  # an older master: /state only
    leader_address = await leader.start()
    standby = FakeMaster()
    standby_address = await standby.start()
    standby.state["leader"] = f"master@{leader_address}"
    standby.state["frameworks"] = []
    try:
        seen: list[RecordSet] = []
        reader = follower([standby_address], seen)
        assert await reader.refresh(session)
        assert reader.leader == f"http://{leader_address}"
        assert await reader.refresh(session)
        assert "web.mesos-executeinstance.mesos." in seen[-1].a and len(leader.requests) == 1
    finally:
        await leader.stop()
        await standby.stop()


async def test_https_with_the_clusters_ca(cluster_pki):
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cluster_pki.certificate_file, cluster_pki.key_file)
    master = FakeMaster()
    address = await master.start(server_context)
    try:
        seen: list[RecordSet] = []
        trusted = client_ssl_context(DnsConfig(ca_cert_file=str(cluster_pki.ca_file), mesos_https_on=True))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=trusted)) as client:
            assert await follower([address], seen, https=True).refresh(client)
        assert "web.mesos-executeinstance.mesos." in seen[-1].a
        untrusted = client_ssl_context(DnsConfig(ca_cert_file=str(cluster_pki.other_ca_file), mesos_https_on=True))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=untrusted)) as client:
            assert await follower([address], seen, https=True).refresh(client) is False
    finally:
        await master.stop()
