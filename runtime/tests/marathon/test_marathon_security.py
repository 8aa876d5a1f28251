"""Marathon's security flags on real processes: HTTP Basic on every route, https from PKCS#12 or PEM files,
the browser checks of state-changing requests, the leader proxy over https, and `--mesos_user`.

As in Marathon (whose Jetty constraint covers `/*`), no route stays open under `--http_credentials`: the routes
are enumerated from the application's router, so a new route cannot be forgotten.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiohttp.test_utils import make_mocked_request
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

import marathon as marathon_python
from harness.processes import free_port
from harness.waiting import wait_for
from mesolite.flags import FlagError
from mesolite.marathon.api.app import create_http_app
from mesolite.marathon.api.request_limits import is_same_origin
from mesolite.marathon.service import FLAGS, MarathonService
from mesolite.security.authentication import basic_authorization
from mesolite.security.tls import TlsSettings

pytestmark = pytest.mark.integration

USER, PASSWORD = "operator", "correct horse"
RIGHT = {"Authorization": basic_authorization(USER, PASSWORD)}
WRONG = {"Authorization": basic_authorization(USER, "battery staple")}
JSON = {"Content-Type": "application/json"}
KEYSTORE_PASSWORD = "keystore-pass"
# Values for the router's placeholders, so that every route is reached (not a 404 of the router).
SAMPLES = {"path": "common/style.css"}


def call(method: str, url: str, headers: dict | None = None, body: bytes | None = None, context=None):
    """(status, headers, body) of one request; an event stream's body is not waited for."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https":
        connection = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=15, context=context)
    else:
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        connection.request(method, parts.path + (f"?{parts.query}" if parts.query else ""), body, headers or {})
        response = connection.getresponse()
        streaming = (response.getheader("Content-Type") or "").startswith("text/event-stream")
        data = b"" if streaming or method == "HEAD" else response.read()
        return response.status, dict(response.getheaders()), data
    finally:
        connection.close()


def router_routes() -> list[tuple[str, str]]:
    """(method, concrete path) of every route of Marathon's application; DELETE /v2/leader last (it abdicates)."""
    app = create_http_app(SimpleNamespace(flags=SimpleNamespace()))
    routes = []
    for route in app.router.routes():
        path = route.resource.canonical
        for name in [part.split("}")[0] for part in path.split("{")[1:]]:
            path = path.replace("{" + name + "}", SAMPLES.get(name, "sample"))
        routes.append(("GET" if route.method == "*" else route.method, path))
    return sorted(routes, key=lambda route: route == ("DELETE", "/v2/leader"))


def start_marathon(launcher, zk: str, *extra: str, master: str | None = None, env=None, https: bool = False):
    """A Marathon on fresh ports, state in `zk`; waits until it answers /v2 (itself or through the leader proxy)."""
    port, https_port = free_port(), free_port()
    master = master or f"127.0.0.1:{free_port()}"  # no master listens there unless given: nothing launches
    started = launcher.start(
        "marathon", "marathon", f"--master={master}", f"--zk={zk}",
        f"--http_port={port}", f"--https_port={https_port}", "--hostname=127.0.0.1", "--http_address=127.0.0.1",
        *extra, port=port, env=env, health_path=None,
    )  # fmt: skip
    started.https_port = https_port
    base = f"https://127.0.0.1:{https_port}" if https else f"http://127.0.0.1:{port}"
    context = TlsSettings(ca_file=Path(env["LIBPROCESS_SSL_CA_FILE"])).client_context() if https else None

    def leads() -> bool:
        if started.process.poll() is not None:
            pytest.fail(f"marathon exited with {started.process.returncode}:\n{started.log()[-4000:]}")
        try:
            return call("GET", f"{base}/v2/apps", RIGHT, context=context)[0] == 200
        except OSError:
            return False

    wait_for(leads, 60, what="marathon to lead")
    started.base = base
    started.context = context
    return started


# -- HTTP Basic on every route --------------------------------------------------------------------------------------


def test_every_route_needs_the_credentials_in_marathons_realm(zookeeper, launcher):
    service = start_marathon(
        launcher, zookeeper.url("/marathon"), f"--http_credentials={USER}:{PASSWORD}", "--http_realm=lab"
    )
    routes = router_routes()
    assert ("GET", "/ping") in routes and ("GET", "/v2/apps") in routes and ("GET", "/") in routes
    for method, path in routes:
        body = b"{}" if method in ("POST", "PUT", "PATCH") else None
        for headers in ({}, WRONG):
            status, response_headers, data = call(method, service.base + path, {**JSON, **headers}, body)
            assert status == 401, (method, path, headers, status, data)
            assert response_headers["WWW-Authenticate"] == 'Basic realm="lab"', (method, path)
            assert "X-Marathon-Leader" not in response_headers, (method, path)
            if method != "HEAD":
                assert b'"message"' in data, (method, path, data)
        status, _, data = call(method, service.base + path, {**JSON, **RIGHT}, body)
        assert status not in (401, 403) and status < 500, (method, path, status, data)
    # Paths that no route serves give nothing away either.
    assert call("GET", service.base + "/no/such/route")[0] == 401


def test_credentials_from_marathons_environment_variable(zookeeper, launcher):
    service = start_marathon(
        launcher, zookeeper.url("/marathon"), env={"MARATHON_HTTP_CREDENTIALS": f"{USER}:{PASSWORD}"}
    )
    status, headers, _ = call("GET", service.base + "/ping")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="Mesosphere"'
    assert call("GET", service.base + "/ping", RIGHT)[0] == 200


# -- browsers -----------------------------------------------------------------------------------------------------


def test_state_changing_requests_from_another_origin_are_refused(zookeeper, launcher):
    service = start_marathon(launcher, zookeeper.url("/marathon"), f"--http_credentials={USER}:{PASSWORD}")
    app = b'{"id": "/from-a-page", "cmd": "sleep 100", "instances": 0}'
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{service.https_port}"):
        status, _, data = call("POST", service.base + "/v2/apps", {**RIGHT, **JSON, "Origin": origin}, app)
        assert status == 403 and origin.encode() in data, (origin, status, data)
    status, _, _ = call("DELETE", service.base + "/v2/apps/from-a-page", {**RIGHT, "Origin": "http://evil.example"})
    assert status == 403
    # A form a page may send without asking: not JSON, refused whatever its origin.
    form = {**RIGHT, "Content-Type": "text/plain", "Origin": service.base}
    assert call("POST", service.base + "/v2/apps", form, app)[0] == 415
    # The UI's own requests: same origin, JSON.
    status, _, data = call("POST", service.base + "/v2/apps", {**RIGHT, **JSON, "Origin": service.base}, app)
    assert status == 201, data
    assert call("GET", service.base + "/v2/apps/from-a-page", {"Origin": "http://evil.example", **RIGHT})[0] == 200


@pytest.mark.parametrize(
    ("origin", "scheme", "host", "same"),
    [
        ("http://node1:8080", "http", "node1:8080", True),
        ("HTTP://Node1:8080", "http", "node1:8080", True),
        ("https://node1", "https", "node1:443", True),
        ("https://node1:443", "https", "node1", True),
        ("http://[::1]:8080", "http", "[::1]:8080", True),
        ("https://node1:8080", "http", "node1:8080", False),
        ("http://node1:8081", "http", "node1:8080", False),
        ("http://node1.evil:8080", "http", "node1:8080", False),
        ("http://node1:8080/path", "http", "node1:8080", False),
        ("null", "http", "node1:8080", False),
        ("", "http", "node1:8080", False),
    ],
)
def test_an_origin_is_this_server_only_with_the_same_scheme_host_and_port(origin, scheme, host, same):
    request = make_mocked_request("POST", "/v2/apps", headers={"Host": host, "Origin": origin})
    request = request.clone(scheme=scheme)
    assert is_same_origin(origin, request) is same


# -- https ----------------------------------------------------------------------------------------------------------


def write_keystore(cluster_pki, path: Path, password: str) -> Path:
    key = serialization.load_pem_private_key(cluster_pki.key_file.read_bytes(), password=None)
    certificate = x509.load_pem_x509_certificate(cluster_pki.certificate_file.read_bytes())
    authority = x509.load_pem_x509_certificate(cluster_pki.ca_file.read_bytes())
    encryption = serialization.BestAvailableEncryption(password.encode())
    path.write_bytes(pkcs12.serialize_key_and_certificates(b"marathon", key, certificate, [authority], encryption))
    return path


def test_a_pkcs12_keystore_serves_https_next_to_http(zookeeper, launcher, cluster_pki, tmp_path):
    keystore = write_keystore(cluster_pki, tmp_path / "marathon.p12", KEYSTORE_PASSWORD)
    env = {"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)}
    service = start_marathon(
        launcher, zookeeper.url("/marathon"), f"--ssl_keystore_path={keystore}",
        f"--ssl_keystore_password={KEYSTORE_PASSWORD}", env=env, https=True,
    )  # fmt: skip
    status, _, data = call("GET", service.base + "/v2/info", context=service.context)
    assert status == 200 and b'"https_port": %d' % service.https_port in data
    assert call("GET", f"http://127.0.0.1:{service.port}/ping")[0] == 200  # no --disable_http: http stays
    stranger = TlsSettings(ca_file=cluster_pki.other_ca_file).client_context()
    with pytest.raises(OSError):
        call("GET", service.base + "/ping", context=stranger)


def test_pem_files_https_only_with_marathon_python_and_the_mesos_user(zookeeper, launcher, cluster_pki, tmp_path):
    master_port = free_port()
    launcher.start(
        "master", "master", f"--zk={zookeeper.url('/mesos')}", "--ip=127.0.0.1", "--hostname=127.0.0.1",
        f"--port={master_port}", f"--work_dir={tmp_path / 'master'}", "--quorum=1", port=master_port,
    )  # fmt: skip
    env = {"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)}
    service = start_marathon(
        launcher, zookeeper.url("/marathon"), f"--ssl_certificate_path={cluster_pki.certificate_file}",
        f"--ssl_key_path={cluster_pki.key_file}", "--disable_http", f"--http_credentials={USER}:{PASSWORD}",
        "--mesos_user=nobody", master=f"127.0.0.1:{master_port}", env=env, https=True,
    )  # fmt: skip
    with pytest.raises(ConnectionRefusedError):
        call("GET", f"http://127.0.0.1:{service.port}/ping")
    with pytest.raises((OSError, http.client.HTTPException)):
        call("GET", f"http://127.0.0.1:{service.https_port}/ping", RIGHT)  # plaintext to the TLS port

    client = marathon_python.MarathonClient(
        service.base, username=USER, password=PASSWORD, verify=str(cluster_pki.ca_file), timeout=15
    )
    client.create_app("secure-app", marathon_python.MarathonApp(cmd="sleep 100", cpus=0.1, mem=16, instances=0))
    assert [app.id for app in client.list_apps()] == ["/secure-app"]
    intruder = marathon_python.MarathonClient(
        service.base, username=USER, password="guess", verify=str(cluster_pki.ca_file), timeout=15
    )
    with pytest.raises(marathon_python.exceptions.MarathonHttpError) as refused:
        intruder.list_apps()
    assert refused.value.status_code == 401

    def framework_user() -> str | None:
        status, _, data = call("GET", f"http://127.0.0.1:{master_port}/master/frameworks")
        frameworks = json.loads(data)["frameworks"] if status == 200 else []
        return next((framework["user"] for framework in frameworks if framework["name"] == "marathon"), None)

    assert wait_for(framework_user, 30, what="marathon to subscribe") == "nobody"
    status, _, data = call("GET", service.base + "/v2/info", RIGHT, context=service.context)
    assert status == 200 and b'"mesos_user": "nobody"' in data


def test_the_leader_proxy_forwards_the_credentials_over_https(zookeeper, launcher, cluster_pki):
    env = {"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)}
    flags = (
        f"--ssl_certificate_path={cluster_pki.certificate_file}", f"--ssl_key_path={cluster_pki.key_file}",
        "--disable_http", f"--http_credentials={USER}:{PASSWORD}",
    )  # fmt: skip
    zk = zookeeper.url("/marathon")
    leader = start_marathon(launcher, zk, *flags, env=env, https=True)
    standby = start_marathon(launcher, zk, *flags, env=env, https=True)
    status, headers, data = call("GET", standby.base + "/v2/leader", RIGHT, context=standby.context)
    assert status == 200 and data == b'{"leader": "127.0.0.1:%d"}' % leader.https_port
    assert headers["X-Marathon-Leader"] == leader.base
    app = b'{"id": "/through-the-proxy", "cmd": "sleep 100", "instances": 0}'
    assert call("POST", standby.base + "/v2/apps", {**JSON}, app, context=standby.context)[0] == 401
    status, headers, data = call(
        "POST", standby.base + "/v2/apps", {**RIGHT, **JSON, "Origin": standby.base}, app, context=standby.context
    )
    assert status == 201, data
    assert "X-Marathon-Via" in headers
    status, _, data = call("GET", leader.base + "/v2/apps/through-the-proxy", RIGHT, context=leader.context)
    assert status == 200, data


# -- towards the master -----------------------------------------------------------------------------------------


def test_marathon_authenticates_to_a_tls_master_whose_certificate_it_checks(zookeeper, launcher, cluster_pki, tmp_path):
    credentials = tmp_path / "credentials.json"
    credentials.write_text(json.dumps({"credentials": [{"principal": "marathon", "secret": "framework-secret"}]}))
    secret = tmp_path / "marathon.secret"
    secret.write_text("framework-secret\n")
    port = free_port()
    trusted = TlsSettings(ca_file=cluster_pki.ca_file).client_context()
    mesos_zk = zookeeper.url("/mesos")
    master = launcher.start(
        "master", "master", f"--zk={mesos_zk}", "--ip=127.0.0.1", "--hostname=127.0.0.1", f"--port={port}",
        f"--work_dir={tmp_path / 'master'}", "--quorum=1", "--authenticate_frameworks", f"--credentials={credentials}",
        port=port, env=cluster_pki.environment(), ssl_context=trusted,
    )  # fmt: skip
    authentication = ("--mesos_authentication_principal=marathon", f"--mesos_authentication_secret_file={secret}")

    def frameworks() -> list[dict]:
        status, _, data = call("GET", master.url("/master/frameworks"), context=trusted)
        return json.loads(data)["frameworks"] if status == 200 else []

    # A Marathon that trusts another CA refuses the master's certificate: it never subscribes.
    stranger = start_marathon(
        launcher, zookeeper.url("/marathon"), *authentication, master=mesos_zk,
        env={"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.other_ca_file)},
    )  # fmt: skip
    wait_for(lambda: "certificate verify failed" in stranger.log(), 30, what="the stranger's refusal")
    assert frameworks() == []
    stranger.kill()

    start_marathon(
        launcher, zookeeper.url("/marathon"), *authentication, master=mesos_zk,
        env={"LIBPROCESS_SSL_CA_FILE": str(cluster_pki.ca_file)},
    )  # fmt: skip
    subscribed = wait_for(frameworks, 30, what="marathon to subscribe")
    assert [(framework["name"], framework["principal"]) for framework in subscribed] == [("marathon", "marathon")]


# -- bad flags --------------------------------------------------------------------------------------------------


def test_a_wrong_keystore_password_stops_the_start_naming_the_flag(cluster_pki, tmp_path):
    keystore = write_keystore(cluster_pki, tmp_path / "marathon.p12", KEYSTORE_PASSWORD)
    result = subprocess.run(
        [sys.executable, "-m", "mesolite.cli", "marathon", "--master=127.0.0.1:1", "--zk=zk://127.0.0.1:1/marathon",
         f"--ssl_keystore_path={keystore}", "--ssl_keystore_password=not-the-password"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 1
    assert "--ssl_keystore_password: cannot open the keystore" in result.stdout + result.stderr
    assert "not-the-password" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        (["--disable_http"], "--disable_http"),
        (["--ssl_keystore_path=/nonexistent/keystore.p12", "--ssl_keystore_password=x"], "--ssl_keystore_path"),
        (["--ssl_certificate_path=/nonexistent/cert.pem"], "--ssl_key_path"),
        (["--http_credentials=no-colon"], "--http_credentials"),
        (["--mesos_authentication_secret_file=/nonexistent/secret"], "--mesos_authentication_principal"),
        (
            ["--mesos_authentication_principal=marathon", "--mesos_authentication_secret_file=/nonexistent/secret"],
            "--mesos_authentication_secret_file",
        ),
    ],
)
def test_bad_security_flags_are_named(arguments, named, tmp_path):
    flags = FLAGS.parse(["--master=127.0.0.1:1", "--zk=zk://127.0.0.1:1/marathon", *arguments], {})
    with pytest.raises(FlagError, match=named):
        MarathonService(flags)
