"""The Mesos fetcher: a task's `command.uris` downloaded or copied into its sandbox before the task starts.

Each URI `{value, executable, extract (default true), cache, output_file}` becomes one file in the sandbox,
named by `output_file` (relative to the sandbox) or else by the last segment of the URI's path. `value` is
an http(s) URL, a `file://` URI or an absolute path on the agent. `executable` makes the file 0755 and leaves
it as it is; otherwise `extract` unpacks a recognized archive (by its name: .tar, .tar.gz/.tgz,
.tar.bz2/.tbz2, .tar.xz/.txz, .zip, or a single gzipped file) into the sandbox; the archive stays, as in
Mesos. Nothing may land outside the sandbox: not an `output_file`, not an archive member (absolute, `..`,
or through a link). `cache` is accepted and ignored: every task downloads its own copy (Mesos's fetcher
cache saves downloads, it does not change what the task gets).

As in Mesos, fetching is a process of its own (`python -m mesolite.agent.fetcher`), which the task's
executor runs between TASK_STARTING and the launch of the container (`fetch()`): a kill stops it at any
point, and it fetches as the task's user, so that the agent's file permissions apply to local URIs and the
fetched files belong to the task. It logs into the sandbox's `stderr`, where Mesos's fetcher writes too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import encodings.cp437  # codecs loaded before the switch to the task's user: see switch_user
import encodings.idna  # noqa: F401
import gzip
import json
import logging
import lzma
import os
import posixpath
import pwd
import shutil
import signal
import sys
import tarfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath

from mesolite import __version__
from mesolite.agent.checkpoint import open_for_append

log = logging.getLogger("mesolite.fetcher")

# Mesos's --fetcher_stall_timeout default: a download that delivers nothing for this long fails. The whole
# download has no limit: a large file on a slow link is not an error.
STALL_TIMEOUT_SECONDS = 60.0
NETWORK_SCHEMES = ("http", "https")
# Archives are recognized by the name of the fetched file, as Mesos does; tarfile finds the compression.
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
COPY_CHUNK_BYTES = 1 << 20
# What fetching one URI may raise besides FetchError: network and file errors, refusals (ValueError),
# broken or unsupported archives. Each becomes a FetchError naming the URI.
FETCH_FAILURES = (
    OSError,
    ValueError,
    EOFError,
    RuntimeError,
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)


class FetchError(Exception):
    """Fetching failed; the message names the URI and the cause (the task's TASK_FAILED message)."""


# -- the executor's side -------------------------------------------------------------------------------


async def fetch(uris: list[dict], sandbox: Path, user: str | None) -> None:
    """Run the fetcher process for `uris` into `sandbox`, as `user` when given (and the executor is root).

    Raises FetchError when a URI cannot be fetched. Cancelling kills the process at once."""
    arguments = ["--sandbox", str(sandbox), *(["--user", user] if user else [])]
    # Appended, as the containerizers append the task's own output after it.
    stderr = open_for_append(sandbox / "stderr")
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mesolite.agent.fetcher", *arguments,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=stderr, start_new_session=True,
        )  # fmt: skip
    finally:
        os.close(stderr)
    try:
        output, _ = await process.communicate(json.dumps(uris).encode())
    except asyncio.CancelledError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
        raise
    code = process.returncode
    if code != 0:
        ended = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        raise FetchError(output.decode(errors="replace").strip() or f"Failed to fetch URIs: the fetcher {ended}")


# -- the fetcher process -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mesolite.agent.fetcher", description=__doc__.splitlines()[0])
    parser.add_argument("--sandbox", required=True, type=Path, help="the task's sandbox directory")
    parser.add_argument("--user", help="the user to fetch as (when started as root)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s fetcher[%(process)d] %(message)s", stream=sys.stderr
    )
    uris = json.load(sys.stdin)
    log.info("Fetching %d URI(s) into the sandbox %s", len(uris), arguments.sandbox)
    # Paths relative to the sandbox from here on: the task's user may not be allowed to search the agent's
    # work directory above it, just as the task only reaches it as its working directory.
    os.chdir(arguments.sandbox)
    try:
        if arguments.user:
            switch_user(arguments.user)
        fetch_all(uris, Path("."))
    except FetchError as error:
        log.error("%s", error)
        print(error)  # the executor's TASK_FAILED message
        return 1
    log.info("Fetched every URI")
    return 0


def switch_user(user: str) -> None:
    """Become the task's user, as Mesos's fetcher does (only a root process can, as for the task itself), and
    give it the sandbox (the current directory) to write into.

    Whatever Python imports lazily while fetching must be imported before: the task's user need not be able
    to read Python's files (a pyenv under /root). Hence the imports of the codecs of host names (idna) and of
    zip member names (cp437) above."""
    try:
        account = account_to_switch_to(user)
    except KeyError:
        raise FetchError(f"Failed to fetch URIs: there is no user '{user}' on this agent") from None
    if account is None:
        return
    os.chown(".", account.pw_uid, account.pw_gid)
    os.initgroups(account.pw_name, account.pw_gid)
    os.setgid(account.pw_gid)
    os.setuid(account.pw_uid)


def account_to_switch_to(user: str | None) -> pwd.struct_passwd | None:
    """The account a process of the agent becomes to act as `user` (the fetcher, the task's command), or None to
    stay as it is: no user asked for, not root (only root can switch), or the user is root. KeyError when there
    is no such user on this agent."""
    if not user or os.geteuid() != 0:
        return None
    account = pwd.getpwnam(user)
    return None if account.pw_uid == os.geteuid() else account


def fetch_all(uris: list[dict], sandbox: Path, stall_timeout: float = STALL_TIMEOUT_SECONDS) -> None:
    """Fetch the URIs in order into `sandbox`; FetchError at the first one that fails."""
    for uri in uris:
        value = str(uri.get("value") or "").lstrip()  # Mesos ignores leading white space too
        log.info("Fetching URI '%s'", value)
        try:
            name = fetch_uri(uri, value, sandbox, stall_timeout)
        except FETCH_FAILURES as error:
            raise FetchError(f"Failed to fetch '{value}': {cause(error)}") from error
        log.info("Fetched '%s' to '%s'", value, name)


def fetch_uri(uri: dict, value: str, sandbox: Path, stall_timeout: float) -> str:
    """Fetch one URI into the sandbox; returns the name of its file there."""
    name = str(uri.get("output_file") or "") or basename(value)
    destination = inside_sandbox(sandbox, name, "output_file" if uri.get("output_file") else "the file name")
    destination.parent.mkdir(parents=True, exist_ok=True)
    source = local_path(value)
    if source is None:
        download(value, destination, stall_timeout)
    else:
        shutil.copyfile(source, destination)
    if uri.get("executable"):
        destination.chmod(0o755)
    elif uri.get("extract", True) and extract(destination, sandbox):
        log.info("Extracted '%s' into the sandbox", name)
    return name


def basename(value: str) -> str:
    """The name of the local copy when there is no output_file: the last segment of the URI's path."""
    path = urllib.parse.urlsplit(value).path if "://" in value else value
    name = posixpath.basename(path)
    if name in ("", ".", ".."):
        raise ValueError("the URI names no file: give it an output_file")
    return name


def local_path(value: str) -> Path | None:
    """The file a local URI names (`file:///path`, `file://localhost/path`, `/path`); None for http(s)."""
    scheme, separator, rest = value.partition("://")
    if not separator:
        if value.startswith("/"):
            return Path(value)
        raise ValueError("neither a URI nor an absolute path (this agent has no frameworks home for relative ones)")
    scheme = scheme.lower()
    if scheme in NETWORK_SCHEMES:
        return None
    if scheme == "file":
        host, _, path = rest.partition("/")
        if host not in ("", "localhost"):
            raise ValueError(f"a file URI must name a file on this agent, not on '{host}'")
        return Path("/" + path)
    raise ValueError(f"URIs of scheme '{scheme}' cannot be fetched (http, https, file and absolute paths can)")


def inside_sandbox(sandbox: Path, relative: str, what: str) -> Path:
    """`sandbox / relative`, or ValueError when that names no file or would be outside the sandbox (an
    absolute path, `..`, or through a link that leads out)."""
    path = PurePosixPath(relative)
    if not path.parts:
        raise ValueError(f"{what} '{relative}' names no file")
    target = sandbox / path
    real_sandbox = os.path.realpath(sandbox)
    if (
        path.is_absolute()
        or ".." in path.parts
        or os.path.commonpath([real_sandbox, os.path.realpath(target)]) != real_sandbox
    ):
        raise ValueError(f"{what} '{relative}' is outside the sandbox")
    return target


def download(url: str, destination: Path, stall_timeout: float) -> None:
    """Download `url` (redirects followed, proxies from the environment as curl would) into `destination`."""
    request = urllib.request.Request(url, headers={"User-Agent": f"mesolite-fetcher/{__version__}"})
    try:
        # The timeout bounds the connection and every read: it is the stall timeout, not a deadline.
        with urllib.request.urlopen(request, timeout=stall_timeout) as response:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status} {response.reason} (200 was expected)")
            with open(destination, "wb") as file:
                shutil.copyfileobj(response, file, COPY_CHUNK_BYTES)
    except OSError as error:
        if isinstance(error, TimeoutError) or isinstance(getattr(error, "reason", None), TimeoutError):
            raise TimeoutError(f"the download stalled: nothing arrived for {stall_timeout:g} s") from error
        raise


def extract(archive: Path, sandbox: Path) -> bool:
    """Unpack `archive` into the sandbox when its name says it is one; whether it was."""
    if archive.name.endswith(TAR_SUFFIXES):
        extract_tar(archive, sandbox)
    elif archive.name.endswith(".zip"):
        extract_zip(archive, sandbox)
    elif archive.name.endswith(".gz"):
        decompress_gzip(archive, sandbox)
    else:
        return False
    return True


def extract_tar(archive: Path, sandbox: Path) -> None:
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:  # every member is checked before anything is written
            inside_sandbox(sandbox, member.name, "archive member")
        # The "data" filter refuses what could still lead out (links pointing outside, device files) and
        # drops the archive's owners and setuid bits: the files belong to whoever fetches.
        tar.extractall(sandbox, members=members, filter="data")


def extract_zip(archive: Path, sandbox: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.infolist()
        for member in members:  # every member is checked before anything is written
            inside_sandbox(sandbox, member.filename, "archive member")
        for member in members:
            extracted = zipped.extract(member, sandbox)
            # zipfile ignores the unix modes a zip keeps; scripts must stay executable (as with `unzip`).
            mode = (member.external_attr >> 16) & 0o777
            if mode and not member.is_dir():
                os.chmod(extracted, mode & ~0o022)


def decompress_gzip(archive: Path, sandbox: Path) -> None:
    """A single gzipped file: decompressed into the sandbox under its name without `.gz`."""
    target = inside_sandbox(sandbox, archive.name.removesuffix(".gz"), "the decompressed file")
    with gzip.open(archive, "rb") as compressed, open(target, "wb") as plain:
        shutil.copyfileobj(compressed, plain, COPY_CHUNK_BYTES)


def cause(error: Exception) -> str:
    """What went wrong, in the words operators know ("HTTP 404 Not Found", "Connection refused", ...)."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return cause(error.reason) if isinstance(error.reason, Exception) else str(error.reason)
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: '{error.filename}'" if error.filename else error.strerror
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
