"""Flags from the command line, the environment and the packaging convention's files."""

import pytest

from mesolite.flags import Flag, FlagError, FlagSet, byte_size, duration


def master_flags(tmp_path) -> FlagSet:
    return FlagSet(
        service_name="mesolite master",
        env_prefix="MESOS_",
        config_directories=["/etc/mesos-master"],
        zookeeper_file="/etc/mesos/zk",
        zookeeper_flag="zk",
        flags=[
            Flag("zk", str, None, "ZooKeeper URL"),
            Flag("port", int, 5050, "port"),
            Flag("quorum", int, 1, "quorum"),
            Flag("hostname_lookup", bool, True, "lookup"),
            Flag("allocation_interval", duration, 1.0, "interval"),
            Flag("agent_ping_timeout", duration, 15.0, "ping", aliases=("slave_ping_timeout",)),
            Flag("cluster", str, None, "name"),
        ],
    )


def environment(tmp_path, **variables) -> dict:
    return {"MESOLITE_CONFIG_ROOT": str(tmp_path), **variables}


def write(tmp_path, relative: str, content: str = "") -> None:
    path = tmp_path / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)


def test_defaults(tmp_path):
    flags = master_flags(tmp_path).parse([], environment(tmp_path))
    assert (flags.zk, flags.port, flags.hostname_lookup, flags.allocation_interval) == (None, 5050, True, 1.0)


@pytest.mark.parametrize(
    ("argv", "name", "value"),
    [
        (["--port=5051"], "port", 5051),
        (["--port", "5052"], "port", 5052),
        (["--no-hostname_lookup"], "hostname_lookup", False),
        (["--hostname_lookup=false"], "hostname_lookup", False),
        (["--hostname_lookup"], "hostname_lookup", True),
        (["--allocation_interval=500ms"], "allocation_interval", 0.5),
        (["--slave_ping_timeout=1mins"], "agent_ping_timeout", 60.0),
        (["--allocation-interval=2secs"], "allocation_interval", 2.0),
    ],
)
def test_command_line_forms(tmp_path, argv, name, value):
    assert getattr(master_flags(tmp_path).parse(argv, environment(tmp_path)), name) == value


def test_packaging_convention_files(tmp_path):
    write(tmp_path, "etc/mesos/zk", "zk://10.0.0.1:2181/mesos\n")
    write(tmp_path, "etc/mesos-master/quorum", "2\n")
    write(tmp_path, "etc/mesos-master/?no-hostname_lookup")
    write(tmp_path, "etc/mesos-master/cluster", "prod")
    flags = master_flags(tmp_path).parse([], environment(tmp_path))
    assert (flags.zk, flags.quorum, flags.hostname_lookup, flags.cluster) == (
        "zk://10.0.0.1:2181/mesos",
        2,
        False,
        "prod",
    )
    # A value that does not parse is reported with the file it came from.
    write(tmp_path, "etc/mesos-master/quorum", "two\n")
    with pytest.raises(FlagError, match="etc/mesos-master/quorum"):
        master_flags(tmp_path).parse([], environment(tmp_path))


def test_precedence_command_line_over_environment_over_files(tmp_path):
    write(tmp_path, "etc/mesos-master/port", "1")
    flags_set = master_flags(tmp_path)
    assert flags_set.parse([], environment(tmp_path)).port == 1
    assert flags_set.parse([], environment(tmp_path, MESOS_PORT="2")).port == 2
    assert flags_set.parse(["--port=3"], environment(tmp_path, MESOS_PORT="2")).port == 3


def test_boolean_question_mark_file_sets_true(tmp_path):
    write(tmp_path, "etc/mesos-master/?hostname_lookup")
    assert master_flags(tmp_path).parse(["--no-hostname_lookup"], environment(tmp_path)).hostname_lookup is False
    assert master_flags(tmp_path).parse([], environment(tmp_path)).hostname_lookup is True


def test_file_url_values_are_read(tmp_path):
    write(tmp_path, "zkfile", "zk://h:1/p\n")
    flags = master_flags(tmp_path).parse([f"--zk=file://{tmp_path}/zkfile"], environment(tmp_path))
    assert flags.zk == "zk://h:1/p"


@pytest.mark.parametrize(
    ("argv", "files", "complaint"),
    [
        (["--bogus=1", "--other"], {}, "unknown flags --bogus, --other"),
        (["--port=abc"], {}, "--port from the command line: invalid literal"),
        (["--port"], {}, "--port needs a value"),
        (["--no-port"], {}, "only boolean flags can be negated"),
        (["port=1"], {}, "unexpected argument 'port=1'"),
        ([], {"etc/mesos-master/frobnicate": "1"}, "unknown flag file: .*etc/mesos-master/frobnicate"),
        ([], {"etc/mesos-master/?port": ""}, "--port is not a boolean flag"),
        ([], {"etc/mesos-master/allocation_interval": "soon"}, "allocation_interval from .*'soon' is not a duration"),
        (["--zk=file:///nonexistent/zk"], {}, "cannot read /nonexistent/zk"),
    ],
)
def test_errors_name_the_flag_and_its_origin(tmp_path, argv, files, complaint):
    for relative, content in files.items():
        write(tmp_path, relative, content)
    with pytest.raises(FlagError, match=complaint):
        master_flags(tmp_path).parse(argv, environment(tmp_path))


def test_unknown_environment_variables_only_warn(tmp_path):
    flag_set = master_flags(tmp_path)
    flags = flag_set.parse([], environment(tmp_path, MESOS_NATIVE_JAVA_LIBRARY="/usr/lib/libmesos.so"))
    assert flags.port == 5050
    assert any("MESOS_NATIVE_JAVA_LIBRARY" in warning for warning in flag_set.warnings)


def test_help_lists_flags(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        master_flags(tmp_path).load(["--help"])
    assert exit_info.value.code == 0
    assert "--allocation_interval=VALUE" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("15secs", 15.0), ("1mins", 60.0), ("500ms", 0.5), ("2hrs", 7200.0), ("1weeks", 604800.0), ("3", 3.0)],
)
def test_durations(text, seconds):
    assert duration(text) == seconds


def test_byte_sizes():
    assert byte_size("512MB") == 512 * 1024 * 1024
    assert byte_size("1GB") == 1024**3
    with pytest.raises(ValueError, match="not a size"):
        byte_size("lots")
