"""The reference nginx.json, verbatim, through curl-style HTTP: a Docker nginx on a host port from the offer."""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import urllib.request

import pytest
from marathon_cluster import Cluster

from harness.waiting import wait_for

pytestmark = [pytest.mark.integration, pytest.mark.docker]

# The runbook's nginx.json, as an operator types it.
NGINX_JSON = """
{
  "id":"nginx",
  "cpus":0.2,
  "mem":32.0,
  "instances": 1,
  "constraints": [["hostname", "UNIQUE",""]],
  "container": {
    "type":"DOCKER",
    "docker": {
      "image": "nginx",
      "network": "BRIDGE",
      "portMappings": [
        {"containerPort": 80, "hostPort": 0,"servicePort": 0, "protocol": "tcp" }
      ]
    }
  }
}
"""


def nginx_image_present() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "image", "inspect", "nginx"], capture_output=True, check=False)
    return found.returncode == 0


def curl_post(url: str, body: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=15) as response:
        return response.status, json.loads(response.read())


def serves_nginx(port: int) -> bool:
    with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
        return b"nginx" in response.read().lower()
    return False


@pytest.mark.skipif(not nginx_image_present(), reason="needs dockerd and the local nginx image (images/nginx)")
def test_reference_nginx_json_runs_a_docker_container(cluster: Cluster):
    # The docker containerizer first, as /etc/mesos-slave/containerizers says on the reference cluster.
    docker_agent = cluster.start_agent("127.0.0.1", extra=("--containerizers=docker,mesos",), port_base=31000)
    service = cluster.start_marathon()
    status, app = curl_post(service.url("/v2/apps"), NGINX_JSON)
    assert status == 201 and app["id"] == "/nginx"

    def running_task():
        with urllib.request.urlopen(service.url("/v2/apps/nginx/tasks"), timeout=5) as response:
            tasks = json.loads(response.read())["tasks"]
        return next((t for t in tasks if t["state"] == "TASK_RUNNING"), None)

    task = wait_for(running_task, 120, what="the nginx task to run")
    host_port = task["ports"][0]
    assert 31000 <= host_port <= 32000
    wait_for(lambda: serves_nginx(host_port), 60, what=f"nginx on host port {host_port}")
    assert docker_agent.process.poll() is None
