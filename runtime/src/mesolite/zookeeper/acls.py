"""Which ACL a znode gets, and what a refusal (NoAuth) says: the one place that decides both.

Credentials come from the zk:// URL (`zk://user:password@hosts/path`, as Mesos takes them); the session then
authenticates with ZooKeeper's `digest` scheme. What mesolite creates is then protected as Mesos and Marathon
protect theirs:

* `Readers.EVERYONE` — the master's leader znodes (`json.info_<sequence>`) and the election path above them:
  world-readable, all permissions to the creator. Detectors run without credentials (agents, frameworks,
  `mesos-resolve`, pymesos), as Mesos's group does with `EVERYONE_READ_CREATOR_ALL`. Structural parents
  (for example a chroot, or `/mesos/registry` above the registry's stores) get the same: they hold no data.
* `Readers.OWNER` — the master's registry, Marathon's state and Marathon's leader znodes: readable and
  writable only by the identity that created them (`CREATOR_ALL_ACL`, as Marathon sets when it has
  credentials). Marathon's instances share its credentials, so a standby still reads who leads.

Without credentials every znode is created with ZooKeeper's open ACL, exactly as before.

A path that exists already keeps its ACL: nothing is re-ACL'd. That is what an upgrade from an open cluster
needs: the masters, agents and Marathons still running without credentials during a rolling restart keep
working, and only the operator knows when the last of them is gone. New znodes (every new leader znode,
every new registry or state record) get their ACL at once. An existing path more open than it should be (created
without credentials, or a registry left world-readable by an earlier mesolite, which gave every znode the
public ACL) is reported with a warning naming it and the zkCli `setAcl` that closes it, to run once every
client has credentials. Existing records keep their ACL when rewritten (ZooKeeper's `set` does not touch it).

Digest authentication itself never fails (ZooKeeper accepts any user:password and only compares them with
the ACLs), so wrong credentials show as NoAuth on someone else's znodes: `ZooKeeperAccessDenied` names the
path, the user and what to check, and the election, the detector, the registry and Marathon's storage report
it and keep running (they try again slowly), never exit.
"""

from __future__ import annotations

import contextlib
import enum
import logging
from collections.abc import Iterator

from kazoo.client import KazooClient
from kazoo.exceptions import NoAuthError, NodeExistsError, NoNodeError
from kazoo.security import ACL, CREATOR_ALL_ACL, READ_ACL_UNSAFE, Permissions

from mesolite.zookeeper.url import ZooKeeperUrl

log = logging.getLogger(__name__)

# Everyone may read what we create (detectors run without credentials, as Mesos's do); only we may change it.
EVERYONE_READ_CREATOR_ALL_ACL = CREATOR_ALL_ACL + READ_ACL_UNSAFE


class Readers(enum.Enum):
    """Who may read a znode (only its creator ever changes it, once there are credentials)."""

    EVERYONE = "everyone reads, only the creator changes it"
    OWNER = "only the creator reads or changes it"


class ZooKeeperAccessDenied(NoAuthError):
    """ZooKeeper refused our credentials (or their absence) on a path; the message names both.

    A `NoAuthError`, so that code that handles kazoo's error handles this one too."""


def znode_acl(url: ZooKeeperUrl, readers: Readers) -> list[ACL] | None:
    """The ACL for a znode created through a session on `url`; None (kazoo's default, open) without credentials."""
    if url.credentials is None:
        return None
    return list(EVERYONE_READ_CREATOR_ALL_ACL if readers is Readers.EVERYONE else CREATOR_ALL_ACL)


def default_acl(url: ZooKeeperUrl) -> list[ACL] | None:
    """The ACL of znodes created without an explicit one (structural parents): see the module's documentation."""
    return znode_acl(url, Readers.EVERYONE)


def identity(url: ZooKeeperUrl) -> str:
    """Who we are to ZooKeeper, for messages (never the password)."""
    return f"user '{url.credentials[0]}'" if url.credentials else "an unauthenticated client (no credentials)"


def access_denied(url: ZooKeeperUrl, path: str, action: str) -> ZooKeeperAccessDenied:
    """The error for a NoAuth answer while `action` (for example "reading") on `path`."""
    hint = (
        "the znode belongs to other credentials: check user:password in the zk:// URL"
        if url.credentials
        else "the znode is protected: add the owner's user:password to the zk:// URL"
    )
    return ZooKeeperAccessDenied(f"ZooKeeper refused the credentials of {identity(url)} for {action} {path}: {hint}")


@contextlib.contextmanager
def refusals_named(url: ZooKeeperUrl, path: str, action: str) -> Iterator[None]:
    """Turn kazoo's bare NoAuthError (it names no path) into a `ZooKeeperAccessDenied` naming `path`."""
    try:
        yield
    except ZooKeeperAccessDenied:
        raise
    except NoAuthError as error:
        raise access_denied(url, path, action) from error


def ensure_node(client: KazooClient, url: ZooKeeperUrl, path: str, readers: Readers) -> None:
    """Make sure `path` exists (blocking): missing parents get the default ACL, the node itself `readers`' ACL.

    An existing node keeps its ACL (see the module's documentation); if it should be protected and is open,
    a warning says so. NoAuth becomes a `ZooKeeperAccessDenied` naming the path.
    """
    with refusals_named(url, path, "creating"):
        if client.exists(path) is None:
            parent = path.rsplit("/", 1)[0]
            if parent:
                client.ensure_path(parent)
            with contextlib.suppress(NodeExistsError):
                client.create(path, b"", acl=znode_acl(url, readers))
                return
        warn_if_open(client, url, path, readers)


def warn_if_open(client: KazooClient, url: ZooKeeperUrl, path: str, readers: Readers) -> None:
    """Warn when `path` lets anyone do more than `readers` allows although we have credentials: it was created
    without them, or (a private path) world-readable by an earlier mesolite that protected nothing else."""
    if url.credentials is None:
        return
    try:
        acls, _stat = client.get_acls(path)
    except (NoAuthError, NoNodeError):
        return  # not ours to judge (or gone): whoever uses it next reports what matters
    allowed_to_everyone = Permissions.READ if readers is Readers.EVERYONE else 0
    too_open = [acl for acl in acls if acl.id.scheme == "world" and acl.perms & ~allowed_to_everyone]
    if not too_open:
        return
    # A private path's children (records, chunks) were created open too: close the whole subtree. A public
    # one (the election path) only for itself: its members are ephemeral, and come back protected.
    if readers is Readers.OWNER:
        command = f"setAcl -R {path} auth::cdrwa"
    else:
        command = f"setAcl {path} auth::cdrwa,world:anyone:r"
    log.warning(
        "%s keeps its open ACL (anyone may %s it), so that clients without credentials keep working during an "
        "upgrade; new znodes under it are protected. Once every client has credentials, close it with zkCli: "
        "addauth digest <user:password>; %s",
        path,
        "read and change" if any(acl.perms & ~Permissions.READ for acl in too_open) else "read",
        command,
    )
