"""The marathon_lb role: flag files in /etc/marathon-lb, the marathon-lb unit driving HAProxy, and an app posted to
Marathon answering through HAProxy on its service port and by vhost."""

import json
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

SERVICE_PORT = 10080
APP = {
    "id": "/molecule-web",
    # A web server that answers its own name; $PORT0 is the host port Marathon assigned.
    "cmd": "mkdir -p www && echo molecule-web > www/index.html && cd www && exec python3 -m http.server $PORT0",
    "cpus": 0.1,
    "mem": 64,
    "instances": 2,
    # The service port HAProxy serves; the tasks' host ports come from the agent's offers (31000-32000).
    "portDefinitions": [{"port": SERVICE_PORT, "protocol": "tcp", "name": "http"}],
    "labels": {"HAPROXY_0_VHOST": "web.mesolite.test"},
    "healthChecks": [{"protocol": "HTTP", "path": "/", "portIndex": 0, "gracePeriodSeconds": 30, "intervalSeconds": 2}],
}


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("marathon", "http://molecule-marathon-lb:8080"),
        ("group", "external"),
        ("expose_ungrouped", "true"),
        ("haproxy_config", "/etc/haproxy/marathon-lb.cfg"),
        ("stats_port", "9090"),
    ],
)
def test_each_flag_has_its_file(host, flag, value):
    assert host.file(f"/etc/marathon-lb/{flag}").content_string == f"{value}\n"


def test_service_is_enabled_and_running_and_debians_unit_is_not(host):
    assert host.service("marathon-lb").is_enabled
    assert host.service("marathon-lb").is_running
    assert not host.service("haproxy").is_enabled
    assert host.check_output("systemctl show -P KillMode marathon-lb") == "process"


def test_haproxy_health_check_and_metrics_answer(host):
    assert host.run("curl -sf http://127.0.0.1:9090/_haproxy_health_check").rc == 0
    assert "haproxy_process_nbthread" in host.check_output("curl -sf http://127.0.0.1:9090/metrics")


def test_a_posted_app_answers_through_haproxy(host):
    posted = host.run(
        "curl -sf -X PUT -H 'Content-Type: application/json' "
        f"http://127.0.0.1:8080/v2/apps{APP['id']} -d '{json.dumps(APP)}'"
    )
    assert posted.rc == 0, posted.stderr
    try:
        for _ in range(120):
            by_port = host.run(f"curl -sf http://127.0.0.1:{SERVICE_PORT}/")
            by_vhost = host.run("curl -sf -H 'Host: web.mesolite.test' http://127.0.0.1/")
            if by_port.stdout.strip() == "molecule-web" and by_vhost.stdout.strip() == "molecule-web":
                break
            time.sleep(1)
        else:
            pytest.fail(f"no answer through HAProxy: {by_port.stdout!r} {by_vhost.stdout!r}")
        assert host.run("haproxy -c -f /etc/haproxy/marathon-lb.cfg").rc == 0
    finally:
        host.run(f"curl -sf -X DELETE http://127.0.0.1:8080/v2/apps{APP['id']}")
