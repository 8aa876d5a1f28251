"""mesos-execute as a real process against a real master and agent (and its usage errors without them)."""

import pytest
from cluster_testing import needs_services, run_cli, start_cluster


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--name=t", "--command=true"), "missing required flag: --master"),
        (("--master=127.0.0.1:5050",), "missing required flags: --name, --command"),
        (("--master=127.0.0.1:5050", "--name=t", "--command=true", "--env=[1"), "--env is not valid JSON"),
        (("--master=127.0.0.1:5050", "--name=t", "--command=true", "--env=[1]"), "--env must be a JSON object"),
        (("--master=127.0.0.1:5050", "--name=t", "--command=true", "--resources=cpus:lots"), "cpus: 'lots'"),
        (("--master=127.0.0.1:5050", "--name=t", "--command=true", "--kill_after=soon"), "--kill_after"),
        (("--master=127.0.0.1:5050", "--name=t", "--command=true", "--shel"), "unknown flag --shel"),
        (("--master=nowhere", "--name=t", "--command=true"), "invalid master 'nowhere'"),
    ],
)
def test_usage_errors_exit_2_naming_the_flag(arguments, message):
    result = run_cli("mesos-execute", *arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def test_help_documents_the_exit_status():
    result = run_cli("mesos-execute", "--help")
    assert result.returncode == 0
    assert "0  the task reached TASK_FINISHED" in result.stdout
    assert "--kill_after" in result.stdout and "--docker_image" in result.stdout


@pytest.fixture
def cluster(launcher, zookeeper, tmp_path):
    return start_cluster(launcher, zookeeper, tmp_path)


@pytest.mark.integration
@needs_services
def test_reference_command_with_a_finishing_task_exits_0(cluster):
    # The runbook's command, with `sleep 1` instead of `sleep 60`: the master comes from mesos-resolve.
    resolved = run_cli("mesos-resolve", cluster.zk_url)
    assert resolved.returncode == 0, resolved.stderr
    result = run_cli("mesos-execute", f"--master={resolved.stdout.strip()}", "--name=cluster-test", "--command=sleep 1")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("Subscribed with ID ")
    assert lines[1].startswith("Submitted task 'cluster-test' to agent '")
    assert "Received status update TASK_RUNNING for task 'cluster-test'" in lines
    assert "Received status update TASK_FINISHED for task 'cluster-test'" in lines


@pytest.mark.integration
@needs_services
def test_failing_task_exits_non_zero_with_the_reason(cluster):
    result = run_cli("mesos-execute", f"--master={cluster.zk_url}", "--name=fails", "--command=exit 3")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Received status update TASK_FAILED for task 'fails'" in result.stdout
    assert "3" in result.stdout.split("TASK_FAILED", 1)[1]  # the message names the exit code


@pytest.mark.integration
@needs_services
def test_kill_after_kills_the_task_and_exits_non_zero(cluster):
    result = run_cli(
        "mesos-execute", f"--master={cluster.zk_url}", "--name=sleepy", "--command=sleep 60", "--kill_after=1secs"
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Received status update TASK_KILLED for task 'sleepy'" in result.stdout


@pytest.mark.integration
@needs_services
def test_task_that_fits_no_agent_waits_and_environment_reaches_the_task(cluster, tmp_path):
    marker = tmp_path / "env-seen"
    result = run_cli(
        "mesos-execute", f"--master={cluster.zk_url}", "--name=env", "--resources=cpus:0.5;mem:64",
        f"--command=echo $GREETING > {marker}", '--env={"GREETING": "hello"}',
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert marker.read_text() == "hello\n"
