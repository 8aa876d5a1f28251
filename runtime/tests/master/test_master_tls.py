"""The master over TLS (LIBPROCESS_SSL_*): https with the cluster's CA, plaintext refused, client certificates from
another CA refused when they are required, MasterInfo advertising https, and the UI's proxy reaching agents over
https. Certificates come from the `cluster_pki` fixture (a cluster CA and an unrelated one)."""

from __future__ import annotations

import http.client
import json
import os
import ssl
import subprocess
import sys
import urllib.request

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from harness.processes import MesoliteProcess, ProcessLauncher, free_port
from mesolite.http_server import start_http_server
from mesolite.security.tls import TlsSettings
from mesolite.ui.routes import add_master_ui

pytestmark = pytest.mark.integration


def start_tls_master(launcher: ProcessLauncher, environment: dict[str, str], health: ssl.SSLContext) -> MesoliteProcess:
    """A standalone master serving https with `environment` (LIBPROCESS_SSL_*), health-checked with `health`."""
    port = free_port()
    arguments = ("master", f"--port={port}", "--ip=127.0.0.1", "--hostname=127.0.0.1")
    return launcher.start("master", *arguments, port=port, env=environment, ssl_context=health)


def client_context(pki, certificate=None, key=None, ca=None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca or pki.ca_file))
    if certificate is not None:
        context.load_cert_chain(str(certificate), str(key))
    return context


def get(url: str, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10, context=context) as response:
        return response.status, response.read()


def test_https_with_the_cluster_ca_works_plaintext_does_not_and_master_info_says_https(launcher, cluster_pki):
    context = client_context(cluster_pki)
    master = start_tls_master(launcher, cluster_pki.environment(), context)
    assert get(master.url("/health"), context)[0] == 200
    _status, body = get(master.url("/master/state"), context)
    assert json.loads(body)["leader_info"]["address"]["scheme"] == "https"
    with pytest.raises((OSError, http.client.HTTPException)):
        get(f"http://127.0.0.1:{master.port}/health")
    # A client that trusts only another CA refuses the master's certificate.
    with pytest.raises(OSError):
        get(master.url("/health"), client_context(cluster_pki, ca=cluster_pki.other_ca_file))


def test_a_client_certificate_from_another_ca_is_refused_when_certificates_are_required(launcher, cluster_pki):
    member = client_context(cluster_pki, cluster_pki.certificate_file, cluster_pki.key_file)
    environment = cluster_pki.environment(LIBPROCESS_SSL_REQUIRE_CERT="true")
    master = start_tls_master(launcher, environment, member)
    assert get(master.url("/health"), member)[0] == 200
    stranger = client_context(cluster_pki, cluster_pki.other_certificate_file, cluster_pki.other_key_file)
    for refused in (stranger, client_context(cluster_pki)):  # another CA's certificate, and none at all
        with pytest.raises((OSError, http.client.HTTPException)):
            get(master.url("/health"), refused)


def test_unusable_tls_settings_are_a_startup_error_naming_the_variable(cluster_pki, tmp_path):
    environment = {**cluster_pki.environment(), "LIBPROCESS_SSL_KEY_FILE": str(tmp_path / "missing-key.pem")}
    for variables, expected in (
        ({"LIBPROCESS_SSL_ENABLED": "true"}, "LIBPROCESS_SSL_CERT_FILE"),
        (environment, "missing-key.pem"),
        ({"LIBPROCESS_SSL_ENABLED": "maybe"}, "LIBPROCESS_SSL_ENABLED"),
    ):
        clean = {name: value for name, value in os.environ.items() if "LIBPROCESS_SSL" not in name}
        result = subprocess.run(
            [sys.executable, "-m", "mesolite.cli", "master", "--ip=127.0.0.1", f"--port={free_port()}"],
            capture_output=True,
            text=True,
            timeout=60,
            env={**clean, **variables},
        )
        assert result.returncode == 2 and expected in result.stderr, (variables, result.stderr)
        assert "Traceback" not in result.stderr


async def test_the_ui_proxy_reaches_agents_over_https_verifying_them_with_the_cluster_ca(cluster_pki, tmp_path):
    async def files_read(request: web.Request) -> web.Response:
        return web.json_response({"data": "hello", "offset": 0})

    agent_app = web.Application()
    agent_app.router.add_get("/files/read", files_read)
    agent_port = free_port()
    agent_tls = TlsSettings.from_environment(cluster_pki.environment())
    agent = await start_http_server(agent_app, "127.0.0.1", agent_port, ssl_context=agent_tls.server_context())
    clients = []
    try:
        for trusted_ca, expected in ((cluster_pki.ca_file, 200), (cluster_pki.other_ca_file, 502)):
            settings = TlsSettings.from_environment(cluster_pki.environment(LIBPROCESS_SSL_CA_FILE=str(trusted_ca)))
            app = web.Application()
            add_master_ui(
                app,
                agent_address=lambda _agent_id: f"127.0.0.1:{agent_port}",
                agent_ssl_context=settings.client_context(),
            )
            master = TestClient(TestServer(app))
            clients.append(master)
            await master.start_server()
            response = await master.get("/ui/api/agents/a1/files/read", params={"path": "/sandbox/stdout"})
            assert response.status == expected, await response.text()
    finally:
        for client in clients:
            await client.close()
        await agent.cleanup()
