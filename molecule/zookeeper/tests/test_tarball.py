"""The tarball install refuses an archive whose checksum differs, and unpacks one that matches.

Apache's download servers are unreachable from the test machines, so the "release" is a small
archive made on the host and fetched through a file:// URL; get_url verifies it all the same.
"""

import os
import subprocess
import sys

testinfra_hosts = ["zk-pseudo"]

RELEASE = "apache-zookeeper-9.9.9-bin"
INSTALL_DIR = "/opt/zookeeper-tarball-test"


def install(url, checksum):
    playbook = os.path.join(os.path.dirname(__file__), "..", "tarball.yml")
    return subprocess.run(
        [
            "ansible-playbook",
            "-i",
            os.path.dirname(os.environ["MOLECULE_INVENTORY_FILE"]),
            playbook,
            "-e",
            f"zookeeper_tarball_url={url}",
            "-e",
            f"zookeeper_tarball_checksum={checksum}",
            "-e",
            f"zookeeper_tarball_install_dir={INSTALL_DIR}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"),
    )


def test_checksum_is_enforced(host):
    host.check_output(
        f"mkdir -p /tmp/release/{RELEASE}/lib && echo jar > /tmp/release/{RELEASE}/lib/zookeeper.jar"
        f" && tar -C /tmp/release -czf /tmp/{RELEASE}.tar.gz {RELEASE}"
    )
    good = "sha512:" + host.check_output(f"sha512sum /tmp/{RELEASE}.tar.gz").split()[0]
    bad = "sha512:" + "0" * 128
    url = f"file:///tmp/{RELEASE}.tar.gz"
    try:
        refused = install(url, bad)
        assert refused.returncode != 0
        assert "checksum" in refused.stdout.lower()
        assert not host.file(INSTALL_DIR).exists
        assert not host.file(f"/opt/{RELEASE}").exists

        accepted = install(url, good)
        assert accepted.returncode == 0, accepted.stdout
        assert host.file(INSTALL_DIR).linked_to == f"/opt/{RELEASE}"
        assert host.file(f"{INSTALL_DIR}/lib/zookeeper.jar").exists
    finally:
        host.check_output(
            f"rm -rf {INSTALL_DIR} /opt/{RELEASE} /tmp/release /tmp/{RELEASE}.tar.gz"
            f" /var/cache/zookeeper/{RELEASE}.tar.gz"
        )
