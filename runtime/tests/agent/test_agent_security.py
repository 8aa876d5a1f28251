"""The agent closed (issue 12): tasks run as their user, its HTTP API wants credentials and obeys
`access_sandboxes`, it presents its own credential to the master, and it serves (and speaks) TLS.

Open mode is what every other test of the agent runs: these tests only add flags.
"""

# ruff: noqa: F811 - pytest fixtures imported from agent_testing are redefined as parameters

from __future__ import annotations

import json
import os
import pwd
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pytest
from agent_fake_master import FakeMaster
from agent_testing import AgentHome, agent_tasks, home, tasks_of_state  # noqa: F401 - a fixture
from aiohttp import web

from harness.http import get_json
from harness.processes import MesoliteProcess, free_port
from harness.waiting import wait_for
from mesolite.agent.http import create_app
from mesolite.agent.http_security import AgentSecurity, SecurityConfigurationError
from mesolite.agent.registration import MasterLink
from mesolite.security.authentication import ROUTE_ACCESS, Access, basic_authorization
from mesolite.security.tls import TlsSettings
from mesolite.zookeeper.detector import leader_addresses, master_url, parse_master_location

pytestmark = pytest.mark.integration

NOBODY = pwd.getpwnam("nobody")
AGENT_PRINCIPAL, AGENT_SECRET = "agent-7", "agent-secret"
OPERATOR, DEVELOPER, PASSWORD = "ops", "dev", "s3cret"


@dataclass
class RecordingMaster(FakeMaster):
    """The fake master, also keeping the `Authorization` header of every request; `answer_401` refuses them all
    (a master with --authenticate_agents that does not know the agent's credential); `ssl_context` serves TLS."""

    answer_401: bool = False
    ssl_context: ssl.SSLContext | None = None
    authorizations: list[str | None] = field(default_factory=list)

    async def _start(self) -> None:
        @web.middleware
        async def record(request: web.Request, handler):
            self.authorizations.append(request.headers.get("Authorization"))
            if self.answer_401:
                return web.Response(status=401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="m"'})
            return await handler(request)

        app = web.Application(middlewares=[record])
        app.router.add_post("/internal/agent/subscribe", self._subscribe)
        app.router.add_post("/internal/agent/call", self._call)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=self.ssl_context).start()

    def run_as(self, task_id: str, command: dict, framework_user: str) -> None:
        """RUN_TASK for a framework of `framework_user` (run_task's framework is root's)."""
        from mesolite.resources import parse_resources

        framework = {"id": {"value": "fake-framework-0000"}, "name": "fake", "user": framework_user}
        task = {
            "name": task_id,
            "task_id": {"value": task_id},
            "agent_id": {"value": self.agent_ids[-1]},
            "resources": parse_resources("cpus:0.1;mem:32").to_protobuf_json(),
            "command": command,
        }
        self.send({"type": "RUN_TASK", "run_task": {"framework": framework, "task": task}})


@pytest.fixture
def master() -> Iterator[RecordingMaster]:
    fake = RecordingMaster(free_port())
    yield fake
    fake.stop()


def start_agent(launcher, home: AgentHome, master: FakeMaster, *flags: str, **options) -> MesoliteProcess:
    return launcher.start("agent", *home.arguments(master.address(), *flags), port=home.port, **options)


def registered(master: FakeMaster) -> None:
    wait_for(lambda: master.agent_ids and master.connected(), 30, what="the agent's registration")


def request(
    url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None, **query: str
) -> tuple[int, bytes, dict]:
    """(status, body, headers) of a GET, whatever the status."""
    if query:
        url += "?" + urllib.parse.urlencode(query)
    headers = {"Authorization": basic_authorization(*auth)} if auth else {}
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10, context=context) as got:
            return got.status, got.read(), dict(got.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read(), dict(error.headers)


def finished_task(master: FakeMaster, task_id: str) -> dict:
    wait_for(lambda: any(s in master.states(task_id) for s in ("TASK_FINISHED", "TASK_FAILED", "TASK_ERROR")), 60,
             what=f"task {task_id} to end")  # fmt: skip
    return master.updates(task_id)[-1]["status"]


# -- --switch_user -------------------------------------------------------------------------------------------


def test_a_command_task_runs_as_its_user_and_owns_its_sandbox(launcher, home, master):
    agent = start_agent(launcher, home, master)
    registered(master)
    master.run_task("as-nobody", {"value": "id -u; touch written-by-the-task", "user": "nobody"})
    status = finished_task(master, "as-nobody")
    assert status["state"] == "TASK_FINISHED", status
    sandbox = Path(agent_tasks(agent.url())["as-nobody"]["directory"])
    assert (sandbox / "stdout").read_text().split() == [str(NOBODY.pw_uid)]
    assert sandbox.stat().st_uid == NOBODY.pw_uid
    assert (sandbox / "written-by-the-task").stat().st_uid == NOBODY.pw_uid
    # The framework's user, when the command names none.
    master.run_as("framework-user", {"value": "id -u"}, framework_user="nobody")
    assert finished_task(master, "framework-user")["state"] == "TASK_FINISHED"
    sandbox = Path(agent_tasks(agent.url())["framework-user"]["directory"])
    assert (sandbox / "stdout").read_text().split() == [str(NOBODY.pw_uid)]


def test_a_task_of_an_unknown_user_fails_naming_the_user(launcher, home, master):
    start_agent(launcher, home, master)
    registered(master)
    master.run_as("ghost", {"value": "id -u"}, framework_user="no-such-user-here")
    status = finished_task(master, "ghost")
    assert status["state"] == "TASK_FAILED", status
    assert "no-such-user-here" in status["message"]
    assert status["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    # The task's own user is looked up the same way: a failed launch, not an invalid task.
    master.run_as("ghost-command", {"value": "id -u", "user": "another-ghost"}, framework_user="root")
    status = finished_task(master, "ghost-command")
    assert (status["state"], status["reason"]) == ("TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED"), status
    assert "another-ghost" in status["message"]


def test_without_switch_user_tasks_run_as_the_agents_user(launcher, home, master):
    agent = start_agent(launcher, home, master, "--switch_user=false")
    registered(master)
    master.run_as("as-agent", {"value": "id -u", "user": "nobody"}, framework_user="no-such-user-here")
    assert finished_task(master, "as-agent")["state"] == "TASK_FINISHED"
    sandbox = Path(agent_tasks(agent.url())["as-agent"]["directory"])
    assert (sandbox / "stdout").read_text().split() == [str(os.getuid())]


# -- HTTP authentication and access_sandboxes ----------------------------------------------------------------


def secured_agent(launcher, home: AgentHome, master: FakeMaster, tmp_path: Path, acls: dict | None = None):
    credentials = tmp_path / "http_credentials.json"
    credentials.write_text(json.dumps({"credentials": [
        {"principal": OPERATOR, "secret": PASSWORD}, {"principal": DEVELOPER, "secret": PASSWORD},
    ]}))  # fmt: skip
    flags = ["--authenticate_http_readonly", "--authenticate_http_readwrite", f"--http_credentials={credentials}"]
    if acls is not None:
        flags.append(f"--acls={json.dumps(acls)}")
    agent = start_agent(launcher, home, master, *flags)
    registered(master)
    return agent


def routes_and_access() -> dict[str, Access]:
    """Every route of the agent's router, with the access it declares."""
    app = create_app(None)  # type: ignore[arg-type] - the handlers are not called
    resources = set(app.router.resources())
    assert resources == set(app[ROUTE_ACCESS]), "a route without a declared access"
    return {resource.canonical: access for resource, access in app[ROUTE_ACCESS].items()}


def test_every_route_wants_credentials_except_health_and_version(launcher, home, master, tmp_path):
    agent = secured_agent(launcher, home, master, tmp_path)
    master.run_task("hello", {"value": "echo hello"})
    assert finished_task(master, "hello")["state"] == "TASK_FINISHED"
    directory = agent_tasks_with(agent.url(), (OPERATOR, PASSWORD))["hello"]["directory"]
    queries = {"/files/browse": {"path": directory}, "/files/read": {"path": f"{directory}/stdout", "offset": "0"},
               "/files/download": {"path": f"{directory}/stdout"}}  # fmt: skip
    routes = routes_and_access()
    assert routes["/health"] is Access.OPEN and routes["/version"] is Access.OPEN
    assert routes["/state"] is Access.READ_ONLY and routes["/files/read"] is Access.READ_ONLY
    for path, access in routes.items():
        query = queries.get(path.removesuffix(".json"), {})
        anonymous, _, headers = request(agent.url(path), **query)
        wrong, _, _ = request(agent.url(path), (OPERATOR, "wrong"), **query)
        unknown, _, _ = request(agent.url(path), ("stranger", PASSWORD), **query)
        right, body, _ = request(agent.url(path), (OPERATOR, PASSWORD), **query)
        assert right == 200, (path, right, body[:300])
        if access is Access.OPEN:
            assert anonymous == wrong == 200, path
            continue
        assert (anonymous, wrong, unknown) == (401, 401, 401), path
        assert headers["WWW-Authenticate"] == 'Basic realm="mesos-agent-readonly"', path
    assert request(agent.url("/files/read"), (DEVELOPER, PASSWORD), **queries["/files/read"])[0] == 200


def agent_tasks_with(agent_url: str, auth: tuple[str, str]) -> dict[str, dict]:
    status, body, _ = request(f"{agent_url}/state", auth)
    assert status == 200
    return tasks_of_state(json.loads(body))


def test_access_sandboxes_and_view_tasks_refuse_a_principal_the_tasks_of_a_user(launcher, home, master, tmp_path):
    acls = {
        "permissive": False,
        "access_sandboxes": [
            {"principals": {"values": [OPERATOR]}, "users": {"type": "ANY"}},
            {"principals": {"values": [DEVELOPER]}, "users": {"values": ["nobody"]}},
        ],
        "view_frameworks": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "view_executors": [{"principals": {"type": "ANY"}, "users": {"type": "ANY"}}],
        "view_tasks": [
            {"principals": {"values": [OPERATOR]}, "users": {"type": "ANY"}},
            {"principals": {"values": [DEVELOPER]}, "users": {"values": ["nobody"]}},
        ],
    }
    agent = secured_agent(launcher, home, master, tmp_path, acls)
    master.run_task("roots", {"value": "echo root"})  # the framework's user: root
    master.run_task("nobodys", {"value": "echo nobody", "user": "nobody"})
    assert finished_task(master, "roots")["state"] == "TASK_FINISHED"
    assert finished_task(master, "nobodys")["state"] == "TASK_FINISHED"
    tasks = agent_tasks_with(agent.url(), (OPERATOR, PASSWORD))
    assert {"roots", "nobodys"} <= set(tasks)
    assert "roots" not in agent_tasks_with(agent.url(), (DEVELOPER, PASSWORD)), "view_tasks: root's task is hidden"
    assert "nobodys" in agent_tasks_with(agent.url(), (DEVELOPER, PASSWORD))
    for task_id, developer_may in (("roots", False), ("nobodys", True)):
        directory = tasks[task_id]["directory"]
        asks = [("/files/browse", {"path": directory}), ("/files/read", {"path": f"{directory}/stdout", "offset": "0"}),
                ("/files/download", {"path": f"{directory}/stdout"}),
                ("/files/read", {"path": f"{directory}/no-such-file", "offset": "0"})]  # fmt: skip
        for path, query in asks:
            expected = 404 if query["path"].endswith("no-such-file") else 200
            assert request(agent.url(path), (OPERATOR, PASSWORD), **query)[0] == expected, (task_id, path)
            status, body, _ = request(agent.url(path), (DEVELOPER, PASSWORD), **query)
            assert status == (expected if developer_may else 403), (task_id, path, status, body[:200])
    # Above the sandboxes only principals allowed every user's sandbox may look.
    work_root = str(Path(tasks["roots"]["directory"]).parents[5])
    assert request(agent.url("/files/browse"), (OPERATOR, PASSWORD), path=work_root)[0] == 200
    assert request(agent.url("/files/browse"), (DEVELOPER, PASSWORD), path=work_root)[0] == 403


def test_an_authenticate_flag_without_credentials_stops_the_start(home):
    for flag in ("--authenticate_http_readonly", "--authenticate_http_readwrite"):
        done = subprocess.run([sys.executable, "-m", "mesolite.cli", *home.arguments("127.0.0.1:1", flag)],
                              capture_output=True, text=True, timeout=60)  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert flag in done.stderr and "--http_credentials" in done.stderr, done.stderr


def test_security_flags_that_cannot_be_used_are_named(tmp_path):
    def flags(**values) -> SimpleNamespace:
        return SimpleNamespace(**{"authenticate_http_readonly": False, "authenticate_http_readwrite": False,
                                  "http_credentials": None, "acls": None, "credential": None, **values})  # fmt: skip

    assert AgentSecurity.from_flags(flags()).middlewares() == []  # open mode: nothing in the way
    missing = tmp_path / "missing.json"
    for bad, named in (
        (flags(http_credentials=str(missing)), str(missing)),
        (flags(credential=str(missing)), str(missing)),
        (flags(acls='{"access_sandboxes": 3}'), "access_sandboxes"),
        (flags(acls='{"run_task": []}'), "run_task"),
    ):
        with pytest.raises(SecurityConfigurationError) as raised:
            AgentSecurity.from_flags(bad)
        assert named in str(raised.value)
    empty = tmp_path / "empty"
    empty.write_text("")
    closed = AgentSecurity.from_flags(flags(authenticate_http_readonly=True, http_credentials=str(empty)))
    assert closed.middlewares(), "an empty credentials file must not leave the endpoints open"


# -- the agent's credential ----------------------------------------------------------------------------------


def credential_file(tmp_path: Path) -> Path:
    path = tmp_path / "credential"
    path.write_text(json.dumps({"principal": AGENT_PRINCIPAL, "secret": AGENT_SECRET}))
    return path


def test_the_agent_presents_its_credential_on_every_call_to_the_master(launcher, home, master, tmp_path):
    start_agent(launcher, home, master, f"--credential={credential_file(tmp_path)}")
    registered(master)
    master.run_task("hello", {"value": "echo hello"})
    assert finished_task(master, "hello")["state"] == "TASK_FINISHED"
    expected = basic_authorization(AGENT_PRINCIPAL, AGENT_SECRET)
    assert len(master.authorizations) >= 3  # the subscription and the status updates
    assert set(master.authorizations) == {expected}


def test_a_refused_credential_is_logged_and_retried(launcher, home, tmp_path):
    master = RecordingMaster(free_port(), answer_401=True)
    try:
        agent = start_agent(launcher, home, master, f"--credential={credential_file(tmp_path)}")
        wait_for(lambda: len(master.authorizations) >= 3, 30, what="the agent to try again")
        assert agent.process.poll() is None, "the agent exited"
        assert f"the master refused this agent's credential (principal '{AGENT_PRINCIPAL}')" in agent.log()
        assert AGENT_SECRET not in agent.log()
        master.answer_401 = False  # the master learns the credential: the agent registers
        registered(master)
    finally:
        master.stop()


# -- TLS -----------------------------------------------------------------------------------------------------


def client_context(cluster_pki, ca_file: Path | None = None) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cafile=str(ca_file or cluster_pki.ca_file))
    return context


def test_the_agent_serves_https_only_and_speaks_tls_to_its_master(launcher, home, cluster_pki):
    environment = cluster_pki.environment()
    master_tls = TlsSettings.from_environment(environment).server_context()
    master = RecordingMaster(free_port(), ssl_context=master_tls)
    try:
        agent = start_agent(launcher, home, master, env=environment, ssl_context=client_context(cluster_pki))
        registered(master)
        assert master.subscriptions[-1]["scheme"] == "https"
        status, body, _ = request(agent.url("/state"), context=client_context(cluster_pki))
        assert status == 200 and json.loads(body)["id"] == master.agent_ids[-1]
        with pytest.raises((urllib.error.URLError, ConnectionError)):
            request(agent.url("/state").replace("https://", "http://"))
        with pytest.raises(urllib.error.URLError) as refused:  # a client trusting another CA does not trust it
            request(agent.url("/state"), context=client_context(cluster_pki, cluster_pki.other_ca_file))
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
        master.run_task("hello", {"value": "echo hello"})
        assert finished_task(master, "hello")["state"] == "TASK_FINISHED"
    finally:
        master.stop()


def test_bad_tls_settings_stop_the_start(home, cluster_pki, tmp_path):
    missing = tmp_path / "missing.pem"
    for overrides, named in (({"LIBPROCESS_SSL_CERT_FILE": str(missing)}, str(missing)),
                             ({"LIBPROCESS_SSL_ENABLED": "maybe"}, "LIBPROCESS_SSL_ENABLED")):  # fmt: skip
        done = subprocess.run([sys.executable, "-m", "mesolite.cli", *home.arguments("127.0.0.1:1")],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, **cluster_pki.environment(**overrides)})  # fmt: skip
        assert done.returncode == 2, done.stderr
        assert named in done.stderr, done.stderr


def test_get_json_helper_still_reads_open_agents(launcher, home, master):
    """Open mode: no flag, no credentials asked, http (the other tests of the agent rely on it)."""
    agent = start_agent(launcher, home, master)
    registered(master)
    assert get_json(agent.url("/state"))["id"] == master.agent_ids[-1]
    assert "scheme" not in master.subscriptions[-1]
    assert master.authorizations and set(master.authorizations) == {None}


async def test_the_masters_scheme_comes_from_its_master_info_or_the_master_flag():
    assert master_url({"address": {"ip": "10.0.0.1", "port": 5050, "scheme": "https"}}) == "https://10.0.0.1:5050"
    assert master_url({"address": {"ip": "10.0.0.1", "port": 5050}}) == "http://10.0.0.1:5050"
    for flag, expected in (
        ("https://127.0.0.1:5050", "https://127.0.0.1:5050"),
        ("127.0.0.1:5050", "http://127.0.0.1:5050"),
    ):
        addresses = leader_addresses(parse_master_location(flag))
        assert await anext(addresses) == expected
        await addresses.aclose()
    link = MasterLink(parse_master_location("127.0.0.1:5050"), None, None, tls=TlsSettings())  # type: ignore[arg-type]
    assert link._redirected("http://127.0.0.1:5050", "//127.0.0.2:5050/master/redirect") == "http://127.0.0.2:5050"
    assert link._redirected("http://127.0.0.1:5050", "https://127.0.0.2:5050/x") == "https://127.0.0.2:5050"
    tls_link = MasterLink(parse_master_location("127.0.0.1:5050"), None, None,  # type: ignore[arg-type]
                          tls=TlsSettings(enabled=True))  # fmt: skip
    assert tls_link._url("http://127.0.0.1:5050") == "https://127.0.0.1:5050", "a TLS agent speaks only TLS"
