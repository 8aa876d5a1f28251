"""ZooKeeper URLs as Mesos writes them: `zk://[user:password@]host:port[,host:port...]/path`, or a `file://`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ZOOKEEPER_SCHEME = "zk://"
FILE_SCHEME = "file://"
DEFAULT_ZOOKEEPER_PORT = 2181


@dataclass(frozen=True)
class ZooKeeperUrl:
    """A parsed zk:// URL: `hosts` is the comma-separated `host:port` list kazoo takes, `path` is absolute."""

    hosts: str
    path: str
    credentials: tuple[str, str] | None = None

    @property
    def digest(self) -> str | None:
        """`user:password` for ZooKeeper's digest authentication scheme, or None."""
        return None if self.credentials is None else ":".join(self.credentials)

    def child(self, name: str) -> str:
        """The absolute path of a node directly under this URL's path."""
        return f"{self.path.rstrip('/')}/{name}"

    def __str__(self) -> str:
        # Never print the password: URLs end up in logs.
        user = f"{self.credentials[0]}:***@" if self.credentials else ""
        return f"{ZOOKEEPER_SCHEME}{user}{self.hosts}{self.path}"


def read_url_file(url: str) -> str:
    """The contents of a `file://` URL, stripped; `ValueError` if it cannot be read or is empty."""
    path = Path(url[len(FILE_SCHEME) :])
    try:
        contents = path.read_text().strip()
    except OSError as error:
        raise ValueError(f"cannot read '{url}': {error.strerror or error}") from error
    if not contents:
        raise ValueError(f"'{url}' is empty: expected a zk:// URL in it")
    return contents


def parse_zookeeper_url(url: str) -> ZooKeeperUrl:
    """Parse a zk:// URL (or a file:// URL whose file holds one); `ValueError` naming the problem otherwise."""
    text = url.strip()
    if text.startswith(FILE_SCHEME):
        text = read_url_file(text)
        if text.startswith(FILE_SCHEME):
            raise ValueError(f"'{url}' names another file:// URL; only one level of indirection is allowed")
    if not text.startswith(ZOOKEEPER_SCHEME):
        raise ValueError(f"invalid ZooKeeper URL '{text}': it must start with zk:// (or be a file:// URL holding one)")

    rest = text[len(ZOOKEEPER_SCHEME) :]
    credentials = None
    if "@" in rest.split("/", 1)[0]:
        authority, rest = rest.split("@", 1)
        user, separator, password = authority.partition(":")
        if not user or not separator:
            raise ValueError(f"invalid ZooKeeper URL '{_redacted(text)}': credentials must be written user:password@")
        credentials = (user, password)

    hosts_part, slash, path = rest.partition("/")
    path = "/" + path if slash else "/"
    if len(path) > 1:
        path = path.rstrip("/")
    if "//" in path:
        raise ValueError(f"invalid ZooKeeper URL '{_redacted(text)}': path '{path}' has an empty component")
    hosts = [_parse_host(host, text) for host in hosts_part.split(",")]
    return ZooKeeperUrl(hosts=",".join(hosts), path=path, credentials=credentials)


def _parse_host(host: str, url: str) -> str:
    host = host.strip()
    if not host:
        raise ValueError(f"invalid ZooKeeper URL '{_redacted(url)}': empty host in the server list")
    name, separator, port = host.rpartition(":") if ":" in host else (host, "", "")
    if not separator:
        return f"{host}:{DEFAULT_ZOOKEEPER_PORT}"
    if not name:
        raise ValueError(f"invalid ZooKeeper URL '{_redacted(url)}': host '{host}' has no name before the port")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"invalid ZooKeeper URL '{_redacted(url)}': port '{port}' of host '{host}' is not 1-65535")
    return f"{name}:{int(port)}"


def _redacted(url: str) -> str:
    """The URL with any password replaced, for error messages."""
    if "@" not in url:
        return url
    scheme_and_credentials, at, rest = url.partition("@")
    user = scheme_and_credentials[len(ZOOKEEPER_SCHEME) :].partition(":")[0]
    return f"{ZOOKEEPER_SCHEME}{user}:***{at}{rest}"
