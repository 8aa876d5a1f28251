"""Clients with a certificate from the operator's CA reach the instances over TLS (secureClientPort)."""

import os
import uuid

from kazoo.client import KazooClient

testinfra_hosts = ["zk-pseudo"]

SECURE_PORTS = {1: 2281, 2: 2282, 3: 2283}


def test_each_instance_serves_tls_clients_on_its_secure_port(host):
    for port in SECURE_PORTS.values():
        assert host.socket(f"tcp://0.0.0.0:{port}").is_listening
    assert "secureClientPort=2282" in host.file("/etc/zookeeper/conf/zk2.cfg").content_string
    assert host.file("/etc/zookeeper/conf/zk2.cfg").mode == 0o640  # holds the store passwords


def test_a_tls_client_writes_and_a_plain_client_reads(host):
    certificates = os.path.join(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"], "tls")
    address = host.interface("eth0").addresses[0]
    path, value = f"/mesolite-tls-test/{uuid.uuid4()}", b"written over TLS"
    secure = KazooClient(
        hosts=f"{address}:{SECURE_PORTS[3]}",
        use_ssl=True,
        verify_certs=True,
        ca=os.path.join(certificates, "ca.pem"),
        certfile=os.path.join(certificates, "client.crt"),
        keyfile=os.path.join(certificates, "client.key"),
        timeout=10,
    )
    plain = KazooClient(hosts=f"{address}:2181", timeout=10)
    secure.start(timeout=15)
    plain.start(timeout=15)
    try:
        secure.create(path, value, makepath=True)
        plain.sync(path)
        assert plain.get(path)[0] == value
    finally:
        secure.stop()
        plain.stop()
