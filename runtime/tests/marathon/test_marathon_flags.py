"""`mesolite marathon` flags: command line > MARATHON_* environment > /etc/marathon/conf files > defaults."""

from __future__ import annotations

import pytest

from mesolite.flags import FlagError
from mesolite.marathon.service import FLAGS, MarathonService


def configure(root, files: dict[str, str]) -> dict[str, str]:
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)
    return {"MESOLITE_CONFIG_ROOT": str(root)}


def test_reference_layout_master_from_etc_mesos_zk(tmp_path):
    environ = configure(
        tmp_path,
        {
            "/etc/mesos/zk": "zk://192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183/mesos\n",
            "/etc/marathon/conf/hostname": "192.168.56.11\n",
            "/etc/marathon/conf/http_port": "8080\n",
        },
    )
    flags = FLAGS.parse([], environ)
    assert flags.master == "zk://192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183/mesos"
    assert flags.hostname == "192.168.56.11" and flags.http_port == 8080
    service = MarathonService(flags)
    assert str(service.zk_url) == "zk://192.168.56.12:2181,192.168.56.12:2182,192.168.56.12:2183/marathon"
    assert service.address == "192.168.56.11:8080"


def test_precedence_command_line_environment_files(tmp_path):
    environ = configure(
        tmp_path, {"/etc/marathon/conf/framework_name": "from-file", "/etc/marathon/conf/zk": "zk://f:1/m"}
    )
    environ |= {"MARATHON_FRAMEWORK_NAME": "from-env", "MARATHON_LOCAL_PORT_MIN": "12000"}
    flags = FLAGS.parse(["--framework_name=from-cli"], environ)
    assert (flags.framework_name, flags.local_port_min, flags.zk) == ("from-cli", 12000, "zk://f:1/m")
    assert FLAGS.parse([], environ).framework_name == "from-env"


def test_timeouts_are_milliseconds_as_in_marathon(tmp_path):
    flags = FLAGS.parse(["--task_launch_timeout=60000", "--zk_session_timeout=5secs"], configure(tmp_path, {}))
    assert (flags.task_launch_timeout, flags.zk_session_timeout) == (60000.0, 5000.0)


def test_unknown_flag_files_are_refused_by_name(tmp_path):
    environ = configure(tmp_path, {"/etc/marathon/conf/no_such_flag": "1"})
    with pytest.raises(FlagError, match="no_such_flag"):
        FLAGS.parse([], environ)
