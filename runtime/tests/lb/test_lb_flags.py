"""`mesolite lb`'s flags as the marathon_lb role writes them (one file per flag in /etc/marathon-lb/), and as
marathon-lb's users spell them on the command line (dashes)."""

from __future__ import annotations

from pathlib import Path

from mesolite.flags import CONFIG_ROOT_VARIABLE
from mesolite.lb.service import FLAGS, lb_settings, marathon_endpoint

# What roles/marathon_lb writes (vars/main.yml), with the lab's values.
ROLE_FILES = {
    "marathon": "http://192.168.56.11:8080,http://192.168.56.12:8080",
    "group": "external",
    "expose_ungrouped": "true",
    "strict_mode": "false",
    "haproxy_config": "/etc/haproxy/marathon-lb.cfg",
    "run_directory": "/run/marathon-lb",
    "haproxy_keep_running": "true",
    "bind_address": "*",
    "http_port": "80",
    "https_port": "443",
    "stats_port": "9090",
    "server_slots": "10",
    "reload_interval": "5secs",
    "drain_timeout": "5secs",
    "maxconn": "4096",
}


def test_the_role_flag_files_are_read(tmp_path: Path):
    directory = tmp_path / "etc" / "marathon-lb"
    directory.mkdir(parents=True)
    for name, value in ROLE_FILES.items():
        (directory / name).write_text(value + "\n")
    flags = FLAGS.parse([], environ={CONFIG_ROOT_VARIABLE: str(tmp_path)})
    assert flags.expose_ungrouped is True and flags.haproxy_keep_running is True
    assert flags.reload_interval == 5.0 and flags.server_slots == 10
    endpoint = marathon_endpoint(flags)
    assert endpoint.urls == ("http://192.168.56.11:8080", "http://192.168.56.12:8080")
    settings = lb_settings(flags, "/run/marathon-lb/haproxy.sock")
    assert settings.exposure.groups == frozenset({"external"})
    assert settings.exposure.reserved_ports == frozenset({80, 443, 9090})


def test_marathon_lb_spellings_and_credentials(tmp_path: Path):
    credential_file = tmp_path / "credential"
    credential_file.write_text("lb:s3cret\n")
    flags = FLAGS.parse(
        [
            "--marathon=http://m1:8080",
            "--haproxy-config=/tmp/h.cfg",
            "--strict-mode",
            "--marathon-auth-credential-file",
            str(credential_file),
        ],
        environ={},
    )
    assert flags.haproxy_config == "/tmp/h.cfg" and flags.strict_mode is True
    assert marathon_endpoint(flags).credentials == ("lb", "s3cret")
    assert marathon_endpoint(FLAGS.parse(["--auth-credentials=a:b"], environ={})).credentials == ("a", "b")
