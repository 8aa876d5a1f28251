"""SchedulerClient towards a master that authenticates frameworks and speaks TLS (issue 12, the clients' part).

The masters here are scripted (scripted_master.py) behind the real authenticator and real TLS: they record the
`Authorization` header of every request, refuse wrong credentials with 401 as Mesos's `basic` authenticator does,
and serve the certificates of the test PKI (`cluster_pki`). The real master's side is tested with mesos-execute
(tests/cli/test_cli_security.py) and pymesos (tests/compat/test_pymesos_security.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl

import pytest
from aiohttp import web
from scripted_master import ScriptedMaster

from mesolite.scheduler.client import AuthenticationRefused, SchedulerCallError, SchedulerClient, SchedulerError
from mesolite.security.authentication import BasicAuthenticator, basic_authorization
from mesolite.security.tls import TlsSettings
from mesolite.zookeeper.detector import ip_to_uint32
from mesolite.zookeeper.session import ZooKeeperSession

PRINCIPAL, SECRET = "ops", "s3cret"
FRAMEWORK = {"user": "root", "name": "secured-framework"}


class GuardedMaster(ScriptedMaster):
    """A scripted master behind HTTP Basic (when given credentials) and TLS (when given a server context)."""

    def __init__(
        self,
        credentials: dict[str, str] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        forbid: str | None = None,
    ) -> None:
        super().__init__()
        self.authenticator = BasicAuthenticator(credentials) if credentials is not None else None
        self.ssl_context = ssl_context
        self.forbid = forbid  # a 403 reason to give every SUBSCRIBE, as an ACL refusing the role would
        self.authorizations: list[str | None] = []  # of every request, refused ones included

    async def start(self) -> GuardedMaster:
        app = web.Application()
        app.router.add_post("/api/v1/scheduler", self.guard)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.address = f"127.0.0.1:{site._server.sockets[0].getsockname()[1]}"
        return self

    async def guard(self, request: web.Request) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        self.authorizations.append(header)
        if self.authenticator is not None and self.authenticator.principal(header) is None:
            return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="mesos"'})
        if self.forbid is not None and (await request.json())["type"] == "SUBSCRIBE":
            return web.Response(status=403, text=self.forbid)
        return await self.handle(request)


def server_context(certificate_file, key_file) -> ssl.SSLContext:
    context = TlsSettings(enabled=True, certificate_file=certificate_file, key_file=key_file).server_context()
    assert context is not None
    return context


async def run_until_subscribed(client: SchedulerClient) -> asyncio.Task:
    task = asyncio.create_task(client.run())
    subscribed = asyncio.ensure_future(client.subscribed.wait())
    done, _ = await asyncio.wait({task, subscribed}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    subscribed.cancel()
    if task in done:
        task.result()  # raises what run() raised
    assert client.subscribed.is_set(), "the client did not subscribe within 10s"
    return task


async def stop(client: SchedulerClient, task: asyncio.Task) -> None:
    await client.stop()
    await asyncio.wait_for(task, 10)


@pytest.fixture
async def guarded_master():
    master = await GuardedMaster({PRINCIPAL: SECRET}).start()
    yield master
    await master.stop()


async def test_credentials_go_with_subscribe_and_every_call(guarded_master):
    client = SchedulerClient(guarded_master.address, FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET)
    task = await run_until_subscribed(client)
    try:
        await client.revive()
        await client.decline(["offer-1"])
        await client.acknowledge({"agent_id": {"value": "a"}, "task_id": {"value": "t"}, "uuid": "dXVpZA=="})
    finally:
        await stop(client, task)
    expected = basic_authorization(PRINCIPAL, SECRET)
    assert guarded_master.authorizations == [expected] * 4
    assert [call["type"] for call, _ in guarded_master.calls] == ["REVIVE", "DECLINE", "ACKNOWLEDGE"]
    # FrameworkInfo.principal is the authenticated principal (Mesos refuses a framework claiming another).
    assert guarded_master.subscribes[0]["subscribe"]["framework_info"]["principal"] == PRINCIPAL


async def test_refused_credentials_end_run_at_once_naming_the_principal(guarded_master):
    client = SchedulerClient(
        guarded_master.address, FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret="wrong", reconnect_delay=0.05
    )
    with pytest.raises(
        AuthenticationRefused, match=r"refused the credentials of principal 'ops' \(HTTP 401\)"
    ) as refused:
        await asyncio.wait_for(client.run(), 10)
    assert len(guarded_master.authorizations) == 1  # refused once: no retry, as if the master were down
    assert "wrong" not in str(refused.value)  # never the secret


async def test_a_master_requiring_authentication_tells_an_anonymous_framework(guarded_master):
    client = SchedulerClient(guarded_master.address, FRAMEWORK, lambda event: None, reconnect_delay=0.05)
    with pytest.raises(AuthenticationRefused, match="requires a principal and a secret"):
        await asyncio.wait_for(client.run(), 10)
    assert guarded_master.authorizations == [None]


async def test_a_role_the_acls_refuse_is_a_clear_error_with_the_masters_reason():
    reason = "Not authorized to use roles '[prod]'"
    master = await GuardedMaster({PRINCIPAL: SECRET}, forbid=reason).start()
    try:
        client = SchedulerClient(
            master.address, FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET, reconnect_delay=0.05
        )
        with pytest.raises(SchedulerError) as refused:
            await asyncio.wait_for(client.run(), 10)
    finally:
        await master.stop()
    message = str(refused.value)
    assert "HTTP 403" in message and reason in message and "principal 'ops'" in message, message
    assert len(master.authorizations) == 1


async def test_a_call_refused_with_401_names_the_principal(guarded_master):
    async def refuse(call: dict) -> web.Response:
        return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="mesos"'})

    guarded_master.on_call = refuse
    client = SchedulerClient(guarded_master.address, FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET)
    task = await run_until_subscribed(client)
    try:
        with pytest.raises(SchedulerCallError, match="principal 'ops'") as refused:
            await client.revive()
        assert refused.value.status == 401
    finally:
        await stop(client, task)


async def test_a_secret_without_a_principal_is_a_programming_error():
    with pytest.raises(ValueError, match="principal"):
        SchedulerClient("127.0.0.1:5050", FRAMEWORK, lambda event: None, secret=SECRET)


# --- TLS ----------------------------------------------------------------------------------------------


@pytest.fixture
def no_tls_environment(monkeypatch):
    for name in ("ENABLED", "CERT_FILE", "KEY_FILE", "CA_FILE", "CA_DIR", "VERIFY_CERT", "REQUIRE_CERT"):
        monkeypatch.delenv(f"LIBPROCESS_SSL_{name}", raising=False)
    return monkeypatch


async def test_https_master_verified_against_the_ca_of_libprocess_ssl_ca_file(cluster_pki, no_tls_environment):
    no_tls_environment.setenv("LIBPROCESS_SSL_CA_FILE", str(cluster_pki.ca_file))
    context = server_context(cluster_pki.certificate_file, cluster_pki.key_file)
    master = await GuardedMaster({PRINCIPAL: SECRET}, ssl_context=context).start()
    try:
        client = SchedulerClient(
            f"https://{master.address}", FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET
        )
        task = await run_until_subscribed(client)
        try:
            await client.revive()
            assert client.master_url == f"https://{master.address}/api/v1/scheduler"
        finally:
            await stop(client, task)
    finally:
        await master.stop()
    assert master.authorizations == [basic_authorization(PRINCIPAL, SECRET)] * 2


async def test_a_master_certificate_from_another_ca_is_refused(cluster_pki, no_tls_environment, caplog):
    no_tls_environment.setenv("LIBPROCESS_SSL_CA_FILE", str(cluster_pki.ca_file))
    context = server_context(cluster_pki.other_certificate_file, cluster_pki.other_key_file)
    master = await GuardedMaster({PRINCIPAL: SECRET}, ssl_context=context).start()
    caplog.set_level(logging.ERROR, logger="mesolite.scheduler.client")
    client = SchedulerClient(
        f"https://{master.address}", FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET,
        reconnect_delay=0.05,
    )  # fmt: skip
    task = asyncio.create_task(client.run())
    try:
        async with asyncio.timeout(10):
            while "is not trusted" not in caplog.text:
                assert not task.done(), task
                await asyncio.sleep(0.05)
        assert not client.subscribed.is_set()
    finally:
        await stop(client, task)
        await master.stop()
    # The handshake failed before any request: the credentials never reached the impostor.
    assert master.authorizations == []
    assert "certificate verify failed" in caplog.text


async def test_libprocess_ssl_enabled_makes_a_host_port_master_https(cluster_pki, no_tls_environment):
    for name, value in cluster_pki.environment().items():
        no_tls_environment.setenv(name, value)
    context = server_context(cluster_pki.certificate_file, cluster_pki.key_file)
    master = await GuardedMaster(ssl_context=context).start()
    try:
        # host:port, as `mesos-resolve` prints it: libprocess's switch says https.
        client = SchedulerClient(master.address, FRAMEWORK, lambda event: None)
        task = await run_until_subscribed(client)
        await stop(client, task)
    finally:
        await master.stop()
    assert client.master_url == f"https://{master.address}/api/v1/scheduler"


async def test_a_redirect_between_https_masters_stays_https(cluster_pki, no_tls_environment):
    no_tls_environment.setenv("LIBPROCESS_SSL_CA_FILE", str(cluster_pki.ca_file))
    context = server_context(cluster_pki.certificate_file, cluster_pki.key_file)
    leader = await GuardedMaster({PRINCIPAL: SECRET}, ssl_context=context).start()
    follower = await GuardedMaster({PRINCIPAL: SECRET}, ssl_context=context).start()
    follower.redirect_to = leader.address  # Mesos writes Location: //host:port/api/v1/scheduler
    try:
        client = SchedulerClient(
            f"https://{follower.address}", FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET
        )
        task = await run_until_subscribed(client)
        await stop(client, task)
    finally:
        await leader.stop()
        await follower.stop()
    assert client.master_url == f"https://{leader.address}/api/v1/scheduler"
    assert leader.authorizations == [basic_authorization(PRINCIPAL, SECRET)]


@pytest.mark.integration
async def test_a_leader_advertising_https_in_zookeeper_is_reached_over_https(
    zookeeper, cluster_pki, no_tls_environment
):
    no_tls_environment.setenv("LIBPROCESS_SSL_CA_FILE", str(cluster_pki.ca_file))
    context = server_context(cluster_pki.certificate_file, cluster_pki.key_file)
    master = await GuardedMaster({PRINCIPAL: SECRET}, ssl_context=context).start()
    ip, port = master.address.split(":")
    info = {
        "id": "tls-master", "ip": ip_to_uint32(ip), "port": int(port), "pid": f"master@{master.address}",
        "hostname": "localhost", "address": {"hostname": "localhost", "ip": ip, "port": int(port), "scheme": "https"},
    }  # fmt: skip
    url = zookeeper.url()
    try:
        async with ZooKeeperSession(url) as session:
            await session.run(session.client.ensure_path, session.url.path)
            await session.run(
                session.client.create, session.url.child("json.info_"), json.dumps(info).encode(), sequence=True
            )
            client = SchedulerClient(url, FRAMEWORK, lambda event: None, principal=PRINCIPAL, secret=SECRET)
            task = await run_until_subscribed(client)
            await stop(client, task)
    finally:
        await master.stop()
    assert client.master_url == f"https://{master.address}/api/v1/scheduler"
