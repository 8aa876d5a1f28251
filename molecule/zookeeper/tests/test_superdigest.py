"""The operators' super user (zookeeper_superdigest) gets past any ACL; nobody else does."""

import uuid

import pytest
from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError
from kazoo.security import make_digest_acl

testinfra_hosts = ["zk-pseudo"]

# molecule.yml sets zookeeper_superdigest to the digest of super:mesolite-test.
SUPER_PASSWORD = "mesolite-test"


def client(host, auth_data=None):
    address = host.interface("eth0").addresses[0]
    zookeeper = KazooClient(hosts=f"{address}:2182", timeout=10, auth_data=auth_data)
    zookeeper.start(timeout=15)
    return zookeeper


def test_super_user_reads_a_znode_that_only_its_owner_may_read(host):
    path = f"/mesolite-acl-test/{uuid.uuid4()}"
    owner = client(host, auth_data=[("digest", "alice:alice-password")])
    stranger = client(host)
    operator = client(host, auth_data=[("digest", f"super:{SUPER_PASSWORD}")])
    try:
        owner.create(path, b"alice's", makepath=True, acl=[make_digest_acl("alice", "alice-password", all=True)])
        with pytest.raises(NoAuthError):
            stranger.get(path)
        assert operator.get(path)[0] == b"alice's"
        operator.delete(path)
    finally:
        for zookeeper in (owner, stranger, operator):
            zookeeper.stop()
