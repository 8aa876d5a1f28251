"""marathon-lb's label contract, read into service settings and rendered into HAProxy configurations.

Rendered configurations are compared with golden files (tests/lb/golden/; regenerate with
`LB_GOLDEN_UPDATE=1 pytest tests/lb/test_lb_labels.py` and read the diff), and every golden file is checked by
the real `haproxy -c`, so that a golden file cannot hold a configuration HAProxy would refuse.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from lb_testing import marathon_app, marathon_task, requires_haproxy

from mesolite.lb.labels import LabelError, is_exposed, service_settings
from mesolite.lb.model import Exposure, desired_state, takes_traffic
from mesolite.lb.render import GlobalSettings, layout_for, render, slot_count

GOLDEN = Path(__file__).parent / "golden"
SETTINGS = GlobalSettings(stats_socket="/run/marathon-lb/haproxy.sock", http_port=80, https_port=443, stats_port=9090)
EXPOSURE = Exposure(groups=frozenset({"external"}), reserved_ports=frozenset({80, 443, 9090}))


def app_with_task(app_id: str, port: int, labels: dict[str, str], host_port: int, **kwargs) -> dict:
    app = marathon_app(app_id, port, labels, **kwargs)
    task = marathon_task(app_id, host_port, port)
    task["id"] = f"{app_id.strip('/')}.task-{host_port}"  # stable names for golden files
    app["tasks"] = [task]
    return app


def rendered(apps: list[dict], exposure: Exposure = EXPOSURE) -> str:
    state = desired_state(apps, exposure, set(), lambda host: "10.0.0.5")
    layout = layout_for(state.backends, SETTINGS, 4, None)
    slots = {backend.name: list(backend.servers) for backend in state.backends}
    ready = {server.task_id for backend in state.backends for server in backend.servers}
    return render(layout, slots, ready)


# (golden file, apps): each case shows one part of the contract.
CASES = {
    "tcp_service_port": [app_with_task("/db", 10001, {"HAPROXY_GROUP": "external"}, 31001)],
    "vhosts_paths_and_weights": [
        app_with_task("/web", 10000, {"HAPROXY_GROUP": "external", "HAPROXY_0_VHOST": "web.test,www.web.test"}, 31000),
        app_with_task(
            "/web/api",
            10002,
            {
                "HAPROXY_GROUP": "external",
                "HAPROXY_0_VHOST": "web.test",
                "HAPROXY_0_PATH": "/api",
                "HAPROXY_0_BACKEND_WEIGHT": "10",
            },
            31002,
        ),
    ],
    "sticky_redirect_balance_bind_port": [
        app_with_task(
            "/shop",
            10003,
            {
                "HAPROXY_GROUP": "external",
                "HAPROXY_0_VHOST": "shop.test",
                "HAPROXY_0_STICKY": "true",
                "HAPROXY_0_REDIRECT_TO_HTTPS": "true",
                "HAPROXY_0_BALANCE": "leastconn",
                "HAPROXY_0_BIND_ADDR": "127.0.0.1",
                "HAPROXY_0_PORT": "8443",
            },
            31003,
        )
    ],
    "http_health_check_makes_http_mode": [
        app_with_task(
            "/checked",
            10004,
            {"HAPROXY_GROUP": "external"},
            31004,
            health_checks=[{"protocol": "MESOS_HTTP", "path": "/health", "portIndex": 0}],
        )
    ],
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_rendered_configuration_matches_its_golden_file(case: str):
    text = rendered(CASES[case])
    golden = GOLDEN / f"{case}.cfg"
    if os.environ.get("LB_GOLDEN_UPDATE"):
        golden.write_text(text)
    assert text == golden.read_text()


@requires_haproxy
@pytest.mark.parametrize("golden", sorted(GOLDEN.glob("*.cfg")), ids=lambda path: path.stem)
def test_golden_files_are_valid_haproxy_configurations(golden: Path):
    result = subprocess.run(["haproxy", "-c", "-f", str(golden)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ssl_cert_adds_an_sni_frontend_on_the_https_port():
    apps = [app_with_task("/web", 10000, {"HAPROXY_0_VHOST": "web.test", "HAPROXY_0_SSL_CERT": "/etc/ssl/web.pem"}, 1)]
    text = rendered(apps, Exposure(groups=frozenset({"*"})))
    assert "bind *:443 ssl crt /etc/ssl/web.pem" in text
    assert "acl sni_web_10000 ssl_fc_sni -i web.test" in text and "use_backend web_10000 if sni_web_10000" in text


@pytest.mark.parametrize(
    ("labels", "groups", "ungrouped", "exposed"),
    [
        ({"HAPROXY_GROUP": "external"}, {"external"}, False, True),
        ({"HAPROXY_GROUP": "internal,external"}, {"external"}, False, True),
        ({"HAPROXY_GROUP": "internal"}, {"external"}, False, False),
        ({"HAPROXY_GROUP": "internal"}, {"*"}, False, True),
        ({}, {"*"}, False, True),
        ({}, {"external"}, False, False),
        ({}, {"external"}, True, True),
        ({"HAPROXY_GROUP": "internal"}, {"external"}, True, False),
    ],
)
def test_group_matching(labels, groups, ungrouped, exposed):
    assert is_exposed(marathon_app("/a", 10000, labels), groups, ungrouped) is exposed


@pytest.mark.parametrize(
    ("labels", "strict", "served"),
    [
        ({}, False, True),
        ({"HAPROXY_0_ENABLED": "false"}, False, False),
        ({}, True, False),
        ({"HAPROXY_0_ENABLED": "true"}, True, True),
    ],
)
def test_enabled_and_strict_mode(labels, strict, served):
    settings, errors = service_settings(marathon_app("/a", 10000, labels), "*", strict_mode=strict)
    assert errors == [] and bool(settings) is served


@pytest.mark.parametrize(
    ("label", "value", "complaint"),
    [
        ("HAPROXY_0_PORT", "eighty", "whole number"),
        ("HAPROXY_0_PORT", "70000", "whole number"),
        ("HAPROXY_0_MODE", "udp", "http or tcp"),
        ("HAPROXY_0_STICKY", "maybe", "true or false"),
        ("HAPROXY_0_VHOST", "web.test\n  server evil 10.0.0.1:22", "one line"),
        ("HAPROXY_0_BALANCE", "roundrobin\nlisten evil", "one line"),
        ("HAPROXY_0_PATH", "api", "begin with /"),
        ("HAPROXY_0_PATH", "/a b", "one word"),
        ("HAPROXY_0_SSL_CERT", "/a.pem crt /etc/shadow", "one word"),
        ("HAPROXY_0_VHOST", "bad_host!", "host names"),
    ],
)
def test_a_bad_label_drops_its_port_and_names_the_label(label, value, complaint):
    settings, errors = service_settings(marathon_app("/a", 10000, {label: value}), "*")
    assert settings == []
    assert len(errors) == 1 and isinstance(errors[0], LabelError)
    assert label in str(errors[0]) and "/a" in str(errors[0]) and complaint in str(errors[0])


def test_a_vhost_makes_the_port_http_and_refuses_tcp():
    settings, _ = service_settings(marathon_app("/a", 10000, {"HAPROXY_0_VHOST": "a.test"}), "*")
    assert settings[0].mode == "http"
    settings, errors = service_settings(
        marathon_app("/a", 10000, {"HAPROXY_0_VHOST": "a.test", "HAPROXY_0_MODE": "tcp"}), "*"
    )
    assert settings == [] and "MODE" in str(errors[0])


def test_only_running_healthy_tasks_not_leaving_take_traffic():
    app = marathon_app("/a", 10000, health_checks=[{"protocol": "HTTP", "portIndex": 0}])
    task = marathon_task("/a", 31000, 10000)
    assert not takes_traffic(task, app, set())  # no health result yet
    task["healthCheckResults"] = [{"alive": True, "taskId": task["id"]}]
    assert takes_traffic(task, app, set())
    assert not takes_traffic(task, app, {task["id"]})
    assert not takes_traffic({**task, "state": "TASK_KILLING"}, app, set())
    task["healthCheckResults"] = [{"alive": False, "taskId": task["id"]}]
    assert not takes_traffic(task, app, set())


def test_port_conflicts_are_reported_and_the_first_app_keeps_the_port():
    apps = [
        app_with_task("/a", 10000, {"HAPROXY_GROUP": "external"}, 31000),
        app_with_task("/b", 10000, {"HAPROXY_GROUP": "external"}, 31001),
        app_with_task("/c", 9090, {"HAPROXY_GROUP": "external"}, 31002),
    ]
    state = desired_state(apps, EXPOSURE, set(), lambda host: "10.0.0.5")
    assert [backend.name for backend in state.backends] == ["a_10000"]
    assert any("/b" in problem and "10000" in problem for problem in state.problems)
    assert any("/c" in problem and "LB's own" in problem for problem in state.problems)


def test_slots_grow_by_doubling_and_do_not_shrink_while_servers_fit():
    assert [slot_count(servers, 4) for servers in (0, 1, 4, 5, 9)] == [4, 4, 4, 8, 16]
    big = desired_state([app_with_task("/a", 10000, {"HAPROXY_GROUP": "external"}, 31000)], EXPOSURE, set(), str)
    grown = layout_for(big.backends, SETTINGS, 4, None)
    assert grown.slot_count("a_10000") == 4
    wide = layout_for(big.backends, SETTINGS, 16, None)
    assert layout_for(big.backends, SETTINGS, 4, wide) == wide  # scaling down keeps the slots: no reload
