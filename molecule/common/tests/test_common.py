"""What the common role promises, checked on the converged instance."""

import pytest

testinfra_hosts = ["common-instance"]


def test_hostname_is_set_from_the_inventory(host):
    assert host.check_output("hostname") == "common-node"
    assert host.file("/etc/hostname").content_string.strip() == "common-node"


def test_every_inventory_host_resolves_by_name(host):
    hosts_file = host.file("/etc/hosts").content_string
    assert "# BEGIN mesolite cluster hosts (managed by Ansible)" in hosts_file
    # A peer that is never contacted: its address can only come from mesolite_address.
    assert host.check_output("getent hosts peer.example.internal").split() == [
        "198.51.100.50",
        "peer.example.internal",
        "peer",
    ]
    assert host.run("getent hosts common-instance").rc == 0


def test_hostname_does_not_resolve_to_loopback(host):
    assert "127.0.1.1" not in host.file("/etc/hosts").content_string


@pytest.mark.parametrize("package", ["ca-certificates", "curl", "gnupg", "lsof", "procps", "python3", "python3-apt"])
def test_base_packages_are_installed(host, package):
    assert host.package(package).is_installed


def test_time_sync_is_left_to_the_container_host(host):
    # Inside a container the clock belongs to the host: no client is installed by default.
    assert not host.package("chrony").is_installed
