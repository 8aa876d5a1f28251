"""Credentials as Mesos and Marathon take them.

- Mesos `--credentials=<file>` (master, agent): JSON `{"credentials": [{"principal": "p", "secret": "s"}]}`, or
  plain text with one `principal secret` pair per line.
- Mesos `--credential=<file>` (an agent's or a framework's own): JSON `{"principal": "p", "secret": "s"}`, or one
  `principal secret` line.
- Marathon `--http_credentials=user:password` (several separated by commas, as Marathon accepts).

A `file://` prefix is accepted wherever a path is, as Mesos accepts it. Secrets never appear in error messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

FILE_SCHEME = "file://"


class CredentialsError(ValueError):
    """A credentials file or value that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Credential:
    principal: str
    secret: str = field(repr=False)


def _read(path: str) -> tuple[Path, str]:
    location = Path(path[len(FILE_SCHEME) :] if path.startswith(FILE_SCHEME) else path)
    try:
        return location, location.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CredentialsError(f"cannot read credentials from '{location}': {error}") from None


def _credential(entry: object, where: str) -> Credential:
    if not isinstance(entry, dict):
        raise CredentialsError(f"{where} must be an object with 'principal' and 'secret'")
    principal, secret = entry.get("principal"), entry.get("secret")
    if not isinstance(principal, str) or not principal:
        raise CredentialsError(f"{where}.principal must be a non-empty string")
    if not isinstance(secret, str):
        raise CredentialsError(f"{where}.secret must be a string")
    return Credential(principal, secret)


def _text_lines(text: str, location: Path) -> list[Credential]:
    credentials = []
    for number, line in enumerate(text.splitlines(), start=1):
        words = line.split()
        if not words:
            continue
        if len(words) != 2:
            raise CredentialsError(f"{location}, line {number}: expected 'principal secret' (two words)")
        credentials.append(Credential(words[0], words[1]))
    return credentials


def parse_credentials(text: str, location: Path = Path("<credentials>")) -> list[Credential]:
    """The credentials of a Mesos `--credentials` file's contents (JSON or plain text)."""
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise CredentialsError(f"{location} is not valid JSON: {error.msg} (line {error.lineno})") from None
        entries = document.get("credentials")
        if not isinstance(entries, list):
            raise CredentialsError(f"{location}: 'credentials' must be a list of {{principal, secret}} objects")
        credentials = [_credential(entry, f"{location}: credentials[{index}]") for index, entry in enumerate(entries)]
    else:
        credentials = _text_lines(stripped, location)
    principals = [credential.principal for credential in credentials]
    duplicates = sorted({principal for principal in principals if principals.count(principal) > 1})
    if duplicates:
        raise CredentialsError(f"{location}: principal(s) {', '.join(duplicates)} listed more than once")
    return credentials


def load_credentials(path: str) -> dict[str, str]:
    """A Mesos `--credentials` file as {principal: secret}."""
    location, text = _read(path)
    return {credential.principal: credential.secret for credential in parse_credentials(text, location)}


def load_credential(path: str) -> Credential:
    """A Mesos `--credential` file (one principal): JSON, or a `principal secret` line."""
    location, text = _read(path)
    stripped = text.strip()
    if stripped.startswith("{"):
        try:
            document = json.loads(stripped)
        except json.JSONDecodeError as error:
            raise CredentialsError(f"{location} is not valid JSON: {error.msg} (line {error.lineno})") from None
        return _credential(document, str(location))
    credentials = _text_lines(stripped, location)
    if len(credentials) != 1:
        raise CredentialsError(f"{location}: expected exactly one 'principal secret' line")
    return credentials[0]


def load_secret(path: str) -> str:
    """A secret kept alone in a file (Marathon's `--mesos_authentication_secret_file`, `--secret_file`): the file's
    contents without the trailing newline editors add."""
    location, text = _read(path)
    secret = text.rstrip("\r\n")
    if not secret:
        raise CredentialsError(f"{location} is empty: expected a secret")
    return secret


def parse_user_passwords(value: str, flag: str = "--http_credentials") -> dict[str, str]:
    """Marathon's `user:password[,user:password...]` as {user: password}."""
    credentials: dict[str, str] = {}
    for index, pair in enumerate(value.split(",")):
        user, separator, password = pair.strip().partition(":")
        if not user or not separator:
            raise CredentialsError(f"{flag}: entry {index + 1} must be written user:password")
        credentials[user] = password
    return credentials
