"""The docker role: Docker Engine runs inside the node, keeps containers across a daemon restart,
and the preloaded image runs without any registry."""

import json


def test_docker_service_is_enabled_and_running(host):
    service = host.service("docker")
    assert service.is_enabled
    assert service.is_running


def test_daemon_json_enables_live_restore_and_log_rotation(host):
    settings = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert settings["live-restore"] is True
    assert settings["log-driver"] == "json-file"
    assert settings["log-opts"]["max-size"] == "10m"


def test_preloaded_image_runs_without_a_registry(host):
    result = host.run("docker run --rm mesolite/busybox:latest echo hello-from-node")
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == "hello-from-node"


def test_containers_survive_a_daemon_restart(host):
    host.run("docker rm -f live-restore-probe")
    started = host.run("docker run -d --name live-restore-probe mesolite/busybox:latest sleep 600")
    assert started.rc == 0, started.stderr
    before = host.check_output("docker inspect -f '{{.State.StartedAt}}' live-restore-probe")
    assert host.run("systemctl restart docker").rc == 0
    after = host.check_output("docker inspect -f '{{.State.StartedAt}} {{.State.Running}}' live-restore-probe")
    host.run("docker rm -f live-restore-probe")
    assert after == f"{before} true"
