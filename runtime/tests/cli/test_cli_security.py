"""mesos-execute and mesos-resolve against a master that authenticates frameworks and speaks TLS (issue 12).

The runbook's authenticated form, `mesos-execute --principal … --secret …`, as real processes against a real
master (`--authenticate_frameworks --authenticate_http_frameworks --http_framework_authenticators=basic
--credentials=<file>`) and agent; and, with LIBPROCESS_SSL_* set on every process, the same over https with the
master found as the runbook finds it: `--master=$(mesos-resolve …)`.
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import urllib.request

import pytest
from cluster_testing import needs_services, run_cli

from harness.processes import ProcessLauncher, free_port
from harness.waiting import wait_for
from harness.zookeeper import ZooKeeperServer

PRINCIPAL, SECRET = "ops", "s3cret"


def write_credentials(directory) -> str:
    path = directory / "credentials.json"
    path.write_text(json.dumps({"credentials": [{"principal": PRINCIPAL, "secret": SECRET}]}))
    path.chmod(0o600)
    return str(path)


def start_secured_cluster(
    launcher: ProcessLauncher, zookeeper: ZooKeeperServer, tmp_path, tls_environment: dict[str, str] | None = None
) -> str:
    """A master that authenticates frameworks (and with `tls_environment`, speaks https) and one agent; the zk URL."""
    zk_url = zookeeper.url()
    master_port, agent_port = free_port(), free_port()
    client_context = None
    if tls_environment:
        client_context = ssl.create_default_context(cafile=tls_environment["LIBPROCESS_SSL_CA_FILE"])
    master = launcher.start(
        "master", "master", "--ip=127.0.0.1", f"--port={master_port}", f"--zk={zk_url}", "--quorum=1",
        f"--work_dir={tmp_path / 'master'}", "--authenticate_frameworks", "--authenticate_http_frameworks",
        "--http_framework_authenticators=basic", f"--credentials={write_credentials(tmp_path)}",
        port=master_port, env=tls_environment, ssl_context=client_context,
    )  # fmt: skip
    launcher.start(
        "agent", "agent", "--ip=127.0.0.1", f"--port={agent_port}", f"--master={zk_url}",
        f"--work_dir={tmp_path / 'agent'}", "--resources=cpus:2;mem:1024;disk:1024;ports:[31000-31100]",
        "--containerizers=mesos", port=agent_port, env=tls_environment, ssl_context=client_context,
    )  # fmt: skip

    def agent_active() -> bool:
        with urllib.request.urlopen(master.url("/metrics/snapshot"), timeout=2, context=client_context) as response:
            return json.load(response).get("master/slaves_active", 0) >= 1

    wait_for(agent_active, 30, what="the agent to register with the master")
    return zk_url


def run_cli_with(environment: dict[str, str], name: str, *arguments: str, timeout: float = 120):
    """run_cli with extra environment variables (LIBPROCESS_SSL_* as an operator exports them)."""
    saved = {key: os.environ.get(key) for key in environment}
    os.environ.update(environment)
    try:
        return run_cli(name, *arguments, timeout=timeout)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


# --- flags, without a cluster ---------------------------------------------------------------------------


def test_help_documents_the_secret_file_form_and_tls():
    result = run_cli("mesos-execute", "--help")
    assert result.returncode == 0
    assert "--secret" in result.stdout and "file:///path" in result.stdout
    assert "LIBPROCESS_SSL_ENABLED" in result.stdout and "LIBPROCESS_SSL_CA_FILE" in result.stdout


@pytest.mark.parametrize("prefix", ["file://", ""])
def test_an_unreadable_secret_file_is_a_usage_error_naming_it(tmp_path, prefix):
    missing = tmp_path / "no-such-secret"
    result = run_cli(
        "mesos-execute", "--master=127.0.0.1:1", "--name=t", "--command=true", "--principal=ops",
        f"--secret={prefix}{missing}",
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert "--secret" in result.stderr and f"{missing}" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_tls_settings_are_a_usage_error_not_a_traceback(tmp_path):
    environment = {"LIBPROCESS_SSL_CA_FILE": str(tmp_path / "no-such-ca.pem")}
    result = run_cli_with(environment, "mesos-execute", "--master=127.0.0.1:1", "--name=t", "--command=true")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "no-such-ca.pem" in result.stderr and "Traceback" not in result.stderr


# --- against a real master that authenticates frameworks ---------------------------------------------------


@pytest.fixture
def secured_cluster(launcher, zookeeper, tmp_path) -> str:
    return start_secured_cluster(launcher, zookeeper, tmp_path)


@pytest.mark.integration
@needs_services
def test_the_runbook_with_principal_and_secret_runs_the_task(secured_cluster):
    result = run_cli(
        "mesos-execute", f"--master={secured_cluster}", "--name=secured", "--command=true",
        f"--principal={PRINCIPAL}", f"--secret={SECRET}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received status update TASK_FINISHED for task 'secured'" in result.stdout


@pytest.mark.integration
@needs_services
@pytest.mark.parametrize("prefix", ["file://", ""])
def test_the_secret_may_come_from_a_file(secured_cluster, tmp_path, prefix):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    secret_file.chmod(0o600)
    result = run_cli(
        "mesos-execute", f"--master={secured_cluster}", "--name=from-file", "--command=true",
        f"--principal={PRINCIPAL}", f"--secret={prefix}{secret_file}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.integration
@needs_services
def test_wrong_credentials_end_with_one_line_naming_the_principal(secured_cluster):
    result = run_cli(
        "mesos-execute", f"--master={secured_cluster}", "--name=intruder", "--command=true",
        f"--principal={PRINCIPAL}", "--secret=guess", timeout=60,
    )  # fmt: skip
    assert result.returncode == 3, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "refused" in lines[0] and f"principal '{PRINCIPAL}'" in lines[0] and "401" in lines[0]
    assert "guess" not in result.stderr
    assert "Submitted task" not in result.stdout


@pytest.mark.integration
@needs_services
def test_without_credentials_the_master_says_it_needs_them(secured_cluster):
    result = run_cli("mesos-execute", f"--master={secured_cluster}", "--name=anonymous", "--command=true", timeout=60)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "requires a principal and a secret" in result.stderr and "Traceback" not in result.stderr


# --- the same over TLS, the master found through mesos-resolve ---------------------------------------------


@pytest.mark.integration
@needs_services
def test_over_tls_the_resolved_master_is_reached_with_https(launcher, zookeeper, tmp_path, cluster_pki):
    tls = cluster_pki.environment()
    zk_url = start_secured_cluster(launcher, zookeeper, tmp_path, tls)
    resolved = run_cli("mesos-resolve", zk_url)
    assert resolved.returncode == 0, resolved.stderr
    address = resolved.stdout.strip()
    assert address.startswith("127.0.0.1:") and "://" not in address  # host:port, as Mesos prints it
    # A client exports what libprocess reads: TLS on, the cluster's CA.
    client_environment = {**tls, "LIBPROCESS_SSL_VERIFY_CERT": "true"}
    result = run_cli_with(
        client_environment, "mesos-execute", f"--master={address}", "--name=over-tls", "--command=true",
        f"--principal={PRINCIPAL}", f"--secret={SECRET}",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Received status update TASK_FINISHED for task 'over-tls'" in result.stdout


@pytest.mark.integration
@needs_services
def test_a_master_certificate_from_another_ca_is_refused(launcher, zookeeper, tmp_path, cluster_pki):
    tls = cluster_pki.environment()
    zk_url = start_secured_cluster(launcher, zookeeper, tmp_path, tls)
    # The client trusts only another CA: the master's certificate must not pass (the client keeps saying so
    # while it waits for a master it can trust), and no task is submitted.
    stranger = {**tls, "LIBPROCESS_SSL_CA_FILE": str(cluster_pki.other_ca_file)}
    with pytest.raises(subprocess.TimeoutExpired) as waited:
        run_cli_with(
            stranger, "mesos-execute", f"--master={zk_url}", "--name=mitm", "--command=true",
            f"--principal={PRINCIPAL}", f"--secret={SECRET}", timeout=20,
        )  # fmt: skip
    stderr = waited.value.stderr or ""
    stderr = stderr.decode() if isinstance(stderr, bytes) else stderr
    assert "is not trusted" in stderr and "certificate verify failed" in stderr, stderr
    assert "Submitted task" not in str(waited.value.stdout or "")
