"""The /files API: browse, read and download files of task sandboxes (Mesos's query parameters and JSON).

Paths are the sandbox directories that /state reports (`<work_dir>/slaves/...`) or Mesos's virtual
form `/frameworks/<framework>/executors/<executor>/runs/latest/...`. Nothing outside the sandboxes
is served.
"""

from __future__ import annotations

import grp
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

MAX_READ_BYTES = 1024 * 1024  # one /files/read answer; clients page with offset


class FilesError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class SandboxFiles:
    work_dir: Path
    agent_id: str | None = None

    @property
    def root(self) -> Path:
        return (self.work_dir / "slaves").resolve()

    def resolve(self, path: str | None) -> Path:
        """The real file behind a requested path; FilesError 400/404 otherwise."""
        if not path:
            raise FilesError(400, "Expecting 'path' in query parameters")
        requested = path
        if path.startswith("/frameworks/") and self.agent_id:
            requested = str(self.work_dir / "slaves" / self.agent_id) + path
        real = Path(requested).resolve()
        if real != self.root and self.root not in real.parents:
            raise FilesError(404, f"No such file or directory: '{path}' is not in a sandbox of this agent")
        if not real.exists():
            raise FilesError(404, f"No such file or directory: '{path}'")
        return real

    def browse(self, path: str | None) -> list[dict]:
        directory = self.resolve(path)
        if not directory.is_dir():
            raise FilesError(400, f"'{path}' is not a directory")
        prefix = path.rstrip("/")
        return [_describe(child, f"{prefix}/{child.name}") for child in sorted(directory.iterdir())]

    def read(self, path: str | None, offset: str | None, length: str | None) -> dict:
        file = self.resolve(path)
        if file.is_dir():
            raise FilesError(400, f"Cannot read a directory: '{path}'")
        start = _integer(offset, "offset", -1)
        count = _integer(length, "length", -1)
        size = file.stat().st_size
        if start == -1:
            return {"data": "", "offset": size}  # Mesos: offset -1 asks for the file's size
        if start < 0 or count < -1:
            raise FilesError(400, "Negative offset or length")
        if start > size:
            start = size
        count = MAX_READ_BYTES if count == -1 else min(count, MAX_READ_BYTES)
        with open(file, "rb") as handle:
            handle.seek(start)
            data = handle.read(count)
        return {"data": data.decode("utf-8", errors="replace"), "offset": start}

    def download(self, path: str | None) -> Path:
        file = self.resolve(path)
        if file.is_dir():
            raise FilesError(400, f"Cannot download a directory: '{path}'")
        return file


def _integer(text: str | None, name: str, default: int) -> int:
    if text is None or text == "":
        return default
    try:
        return int(text)
    except ValueError:
        raise FilesError(400, f"Failed to parse {name}: '{text}' is not an integer") from None


def _describe(path: Path, shown: str) -> dict:
    info = path.lstat()
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
