"""The /files API: browse, read and download files of task sandboxes (Mesos's query parameters and JSON).

Paths are the sandbox directories that /state reports (`<work_dir>/slaves/...`) or Mesos's virtual
form `/frameworks/<framework>/executors/<executor>/runs/latest/...`. Nothing outside the sandboxes
is served, and only regular files and directories: a task owns its sandbox and may put a FIFO, a socket
or a device node there, and opening a FIFO blocks until a writer comes. Files are opened with O_NONBLOCK
after an `lstat` and checked again with `fstat` (the task may swap the file in between). The methods here
block on the filesystem: the HTTP layer runs them in a thread, never on the event loop.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

MAX_READ_BYTES = 1024 * 1024  # one /files/read answer; clients page with offset
MAX_OFFSET = 2**63 - 1  # off_t
MAX_PATH_CHARACTERS = 4096  # PATH_MAX
INTEGER = re.compile(r"-?[0-9]{1,19}")


class FilesError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


SandboxIds = tuple[str, str]  # (framework id, executor id) of a sandbox


@dataclass(frozen=True)
class SandboxUsers:
    """Who runs each sandbox (the object of `access_sandboxes`): a snapshot of the agent's runs."""

    executors: dict[SandboxIds, str] = field(default_factory=dict)  # the task's user
    frameworks: dict[str, str] = field(default_factory=dict)  # the framework's user (runs no longer known)

    def user_of(self, ids: SandboxIds | None) -> str:
        """The user of a sandbox; "" for paths above the sandboxes, which only rules for ANY user allow."""
        if ids is None:
            return ""
        return self.executors.get(ids) or self.frameworks.get(ids[0]) or ""


@dataclass
class SandboxFiles:
    work_dir: Path
    agent_id: str | None = None
    # Whether the request may see the sandbox (framework id, executor id) of a path (None: above sandboxes).
    may_access: Callable[[SandboxIds | None], bool] | None = None

    @property
    def root(self) -> Path:
        return (self.work_dir / "slaves").resolve()

    def resolve(self, path: str | None) -> Path:
        """The real file behind a requested path; FilesError 400/404 otherwise."""
        if not path:
            raise FilesError(400, "Expecting 'path' in query parameters")
        if "\0" in path:
            raise FilesError(400, "Invalid 'path': it contains a NUL character")
        if len(path) > MAX_PATH_CHARACTERS:
            raise FilesError(400, f"Invalid 'path': longer than {MAX_PATH_CHARACTERS} characters")
        requested = path
        if path.startswith("/frameworks/") and self.agent_id:
            requested = str(self.work_dir / "slaves" / self.agent_id) + path
        try:
            real = Path(requested).resolve()
            if real != self.root and self.root not in real.parents:
                raise FilesError(404, f"No such file or directory: '{path}' is not in a sandbox of this agent")
            # Before the file is looked at: a refused principal learns nothing, not even whether it exists.
            if self.may_access is not None and not self.may_access(self.sandbox_ids(real)):
                raise FilesError(403, f"Forbidden: this principal may not access the sandbox of '{path}'")
            info = real.lstat()
        except FileNotFoundError:
            raise FilesError(404, f"No such file or directory: '{path}'") from None
        except (OSError, RuntimeError, ValueError) as error:  # too long, a symlink loop, not a directory...
            raise FilesError(400, f"Invalid 'path' '{path}': {getattr(error, 'strerror', None) or error}") from None
        _check_kind(info.st_mode, path)
        return real

    def sandbox_ids(self, real: Path) -> SandboxIds | None:
        """(framework id, executor id) of a resolved path inside `slaves/<agent>/frameworks/<f>/executors/<e>`."""
        parts = real.relative_to(self.root).parts
        if len(parts) >= 5 and parts[1] == "frameworks" and parts[3] == "executors":
            return parts[2], parts[4]
        return None

    def browse(self, path: str | None) -> list[dict]:
        directory = self.resolve(path)
        if not directory.is_dir():
            raise FilesError(400, f"'{path}' is not a directory")
        prefix = path.rstrip("/")
        try:
            children = sorted(directory.iterdir())
            described = (_describe(child, f"{prefix}/{child.name}") for child in children)
            return [entry for entry in described if entry is not None]
        except OSError as error:
            raise FilesError(_status_of(error), f"Cannot browse '{path}': {error.strerror}") from None

    def read(self, path: str | None, offset: str | None, length: str | None) -> dict:
        file = self.resolve(path)
        if file.is_dir():
            raise FilesError(400, f"Cannot read a directory: '{path}'")
        start = _integer(offset, "offset", -1)
        count = _integer(length, "length", -1)
        if start < -1 or count < -1:
            raise FilesError(400, "Negative offset or length")
        descriptor = self.open_regular(file, path)
        try:
            size = os.fstat(descriptor).st_size
            if start == -1:
                return {"data": "", "offset": size}  # Mesos: offset -1 asks for the file's size
            start = min(start, size)
            count = MAX_READ_BYTES if count == -1 else min(count, MAX_READ_BYTES)
            data = os.pread(descriptor, count, start)
        except OSError as error:
            raise FilesError(_status_of(error), f"Cannot read '{path}': {error.strerror}") from None
        finally:
            os.close(descriptor)
        return {"data": data.decode("utf-8", errors="replace"), "offset": start}

    def download(self, path: str | None) -> tuple[int, int, str]:
        """(an open descriptor of the regular file, its size, its name); the caller closes the descriptor."""
        file = self.resolve(path)
        if file.is_dir():
            raise FilesError(400, f"Cannot download a directory: '{path}'")
        descriptor = self.open_regular(file, path)
        return descriptor, os.fstat(descriptor).st_size, file.name

    @staticmethod
    def open_regular(file: Path, path: str | None) -> int:
        """A read-only descriptor of `file`, which must (still) be a regular file; never blocks."""
        try:
            descriptor = os.open(file, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as error:
            raise FilesError(_status_of(error), f"Cannot open '{path}': {error.strerror}") from None
        try:
            mode = os.fstat(descriptor).st_mode
            _check_kind(mode, path)
            if not stat.S_ISREG(mode):
                raise FilesError(400, f"'{path}' is not a regular file")
        except BaseException:
            os.close(descriptor)
            raise
        return descriptor


def _check_kind(mode: int, path: str | None) -> None:
    """Only regular files and directories are served; anything else is a 400 saying what it is."""
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kinds = {
        stat.S_ISFIFO: "a FIFO",
        stat.S_ISSOCK: "a socket",
        stat.S_ISCHR: "a character device",
        stat.S_ISBLK: "a block device",
        stat.S_ISLNK: "a symbolic link",
    }
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    raise FilesError(400, f"'{path}' is {kind}: only regular files and directories are served")


def _status_of(error: OSError) -> int:
    if isinstance(error, FileNotFoundError):
        return 404
    if isinstance(error, PermissionError):
        return 403
    return 400


def _integer(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    if not INTEGER.fullmatch(text):
        raise FilesError(400, f"Failed to parse {name}: '{text[:100]}' is not an integer")
    value = int(text)
    if value > MAX_OFFSET:
        raise FilesError(400, f"Failed to parse {name}: '{text}' is out of range")
    return value


def _describe(path: Path, shown: str) -> dict | None:
    """A listing entry, None when the file went away since the directory was read (tasks keep writing)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    return {
        "path": shown,
        "nlink": info.st_nlink,
        "size": info.st_size,
        "mtime": int(info.st_mtime),
        "mode": stat.filemode(info.st_mode),
        "uid": _name(pwd.getpwuid, info.st_uid),
        "gid": _name(grp.getgrgid, info.st_gid),
    }


def _name(lookup, number: int) -> str:
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)
