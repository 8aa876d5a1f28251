"""The mesolite role: the runtime comes from the wheelhouse, its commands are on the PATH, and the
first install restarted the running service that uses it exactly once (idempotence proves no more)."""


def test_runtime_is_installed_in_its_virtualenv(host):
    version = host.run("/opt/mesolite/venv/bin/python -c 'import mesolite; print(mesolite.__version__)'")
    assert version.rc == 0, version.stderr
    assert version.stdout.strip()


def test_commands_are_linked_into_the_path(host):
    for command in ("mesolite", "mesos-execute", "mesos-resolve"):
        link = host.file(f"/usr/local/bin/{command}")
        assert link.is_symlink
        assert link.linked_to == f"/opt/mesolite/venv/bin/{command}"
    result = host.run("mesolite --version")
    assert result.rc == 0, result.stderr
    assert result.stdout.startswith("mesolite ")


def test_installed_build_matches_the_wheelhouse_on_the_host(host):
    fingerprint = host.file("/opt/mesolite/venv/mesolite-build-fingerprint").content_string.strip()
    assert host.file(f"/opt/mesolite/wheelhouse/{fingerprint}").is_directory
    assert len(host.run("ls /opt/mesolite/wheelhouse").stdout.split()) == 1


def test_the_host_cannot_reach_pypi_yet_all_dependencies_are_installed(host):
    # aiohttp and kazoo are compiled/pure dependencies that could only have come from the wheelhouse.
    result = host.run("/opt/mesolite/venv/bin/python -c 'import aiohttp, kazoo, docker'")
    assert result.rc == 0, result.stderr


def test_the_running_service_was_restarted_after_the_install(host):
    started_before = int(host.file("/root/probe-started").content_string.strip())
    started_now = int(host.check_output("systemctl show -P ActiveEnterTimestampMonotonic mesolite-probe"))
    assert started_now > started_before
    assert host.service("mesolite-probe").is_running
