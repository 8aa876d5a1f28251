"""TLS settings from LIBPROCESS_SSL_* and the contexts they give, on a real server (`start_http_server`)."""

import ssl

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509 import load_pem_x509_certificate

from harness.processes import free_port
from mesolite.http_server import start_http_server
from mesolite.security.tls import TlsError, TlsSettings, load_pkcs12_chain


async def serve(context: ssl.SSLContext | None) -> tuple[web.AppRunner, int]:
    async def hello(request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peercert") if request.transport else None
        return web.json_response({"client_certificate": bool(peer)})

    app = web.Application()
    app.router.add_get("/hello", hello)
    port = free_port()
    return await start_http_server(app, "127.0.0.1", port, ssl_context=context), port


async def get(url: str, context: ssl.SSLContext | bool | None = None) -> dict:
    async with aiohttp.ClientSession() as session, session.get(url, ssl=context) as response:
        return await response.json()


async def test_a_tls_server_answers_clients_that_trust_its_ca_and_refuses_plaintext(cluster_pki):
    settings = TlsSettings.from_environment(cluster_pki.environment())
    runner, port = await serve(settings.server_context())
    try:
        # A member of the cluster presents its own certificate, which the server verifies against the CA.
        assert await get(f"https://127.0.0.1:{port}/hello", settings.client_context()) == {"client_certificate": True}
        with pytest.raises(aiohttp.ClientError):
            await get(f"http://127.0.0.1:{port}/hello")
        stranger = TlsSettings.from_environment({"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.other_ca_file)})
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(f"https://127.0.0.1:{port}/hello", stranger.client_context())
    finally:
        await runner.cleanup()


async def test_required_client_certificates_from_another_ca_are_refused(cluster_pki):
    server = TlsSettings.from_environment(cluster_pki.environment(LIBPROCESS_SSL_REQUIRE_CERT="true"))
    runner, port = await serve(server.server_context())
    url = f"https://127.0.0.1:{port}/hello"
    try:
        member = TlsSettings.from_environment(cluster_pki.environment(LIBPROCESS_SSL_ENABLED="false"))
        assert await get(url, member.client_context()) == {"client_certificate": True}
        anonymous = TlsSettings.from_environment({"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)})
        with pytest.raises(aiohttp.ClientError):
            await get(url, anonymous.client_context())
        stranger = TlsSettings.from_environment(
            {
                "LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file),
                "LIBPROCESS_SSL_CERT_FILE": str(cluster_pki.other_certificate_file),
                "LIBPROCESS_SSL_KEY_FILE": str(cluster_pki.other_key_file),
            }
        )
        with pytest.raises(aiohttp.ClientError):
            await get(url, stranger.client_context())
    finally:
        await runner.cleanup()


def test_a_client_without_a_ca_accepts_any_certificate_unless_told_to_verify():
    assert TlsSettings.from_environment({}).client_context().verify_mode == ssl.CERT_NONE
    verifying = TlsSettings.from_environment({"LIBPROCESS_SSL_VERIFY_CERT": "1"}).client_context()
    assert verifying.verify_mode == ssl.CERT_REQUIRED and verifying.check_hostname


@pytest.mark.parametrize(
    ("environment", "named"),
    [
        ({"LIBPROCESS_SSL_ENABLED": "yes please"}, "LIBPROCESS_SSL_ENABLED must be true or false"),
        ({"LIBPROCESS_SSL_REQUIRE_CERT": "true"}, "REQUIRE_CERT needs LIBPROCESS_SSL_CA_FILE"),
    ],
)
def test_bad_settings_name_the_variable(environment, named):
    with pytest.raises(TlsError, match=named):
        TlsSettings.from_environment(environment)


def test_a_server_needs_its_certificate_but_a_client_does_not(cluster_pki):
    settings = TlsSettings.from_environment(
        {"LIBPROCESS_SSL_ENABLED": "true", "LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)}
    )
    assert settings.scheme == "https" and settings.client_context().verify_mode == ssl.CERT_REQUIRED
    with pytest.raises(TlsError, match="needs LIBPROCESS_SSL_CERT_FILE"):
        settings.server_context()


def test_missing_key_material_names_the_file(tmp_path, cluster_pki):
    settings = TlsSettings.from_environment(cluster_pki.environment(LIBPROCESS_SSL_KEY_FILE=str(tmp_path / "gone.pem")))
    with pytest.raises(TlsError, match=r"gone\.pem"):
        settings.server_context()


async def test_a_pkcs12_keystore_serves_tls(tmp_path, cluster_pki):
    key = serialization.load_pem_private_key(cluster_pki.key_file.read_bytes(), password=None)
    certificate = load_pem_x509_certificate(cluster_pki.certificate_file.read_bytes())
    keystore = tmp_path / "keystore.p12"
    keystore.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"node", key, certificate, None, serialization.BestAvailableEncryption(b"changeit")
        )
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    with pytest.raises(TlsError, match="wrong password"):
        load_pkcs12_chain(context, keystore, "wrong")
    load_pkcs12_chain(context, keystore, "changeit")
    runner, port = await serve(context)
    try:
        client = TlsSettings.from_environment({"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)}).client_context()
        assert await get(f"https://127.0.0.1:{port}/hello", client) == {"client_certificate": False}
    finally:
        await runner.cleanup()
