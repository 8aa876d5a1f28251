"""Who may use the agent's HTTP API: Mesos's agent flags for authentication, ACLs and the agent's own credential.

- `--authenticate_http_readonly` / `--authenticate_http_readwrite` with `--http_credentials=<file>`: the agent's
  endpoints need HTTP Basic credentials, in the realms Mesos names `mesos-agent-readonly` and
  `mesos-agent-readwrite`. `/health` and `/version` stay open, as in Mesos.
- `--acls`: `access_sandboxes` decides which principal may browse, read and download the sandbox of which
  user (the task's user: `command.user`, else its framework's).
- `--credential=<file>`: what the agent presents to the master (`Authorization: Basic`).

Every route of the agent declares its access (`security.authentication.Access`) where it is added to the router
(agent/http.py), so a new route cannot be forgotten: `realm_for` reads it from the route that matched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

from aiohttp import web

from mesolite.security.authentication import Access, BasicAuthenticator, authentication_middleware, route_access
from mesolite.security.authorization import AclError, Authorizer
from mesolite.security.credentials import Credential, CredentialsError, load_credential, load_credentials

READONLY_REALM = "mesos-agent-readonly"
READWRITE_REALM = "mesos-agent-readwrite"


class SecurityConfigurationError(ValueError):
    """Security flags that cannot be used; the message names the flag."""


@dataclass(frozen=True)
class AgentSecurity:
    """The agent's security flags, read once at start-up. `AgentSecurity()` is open mode (no flag set)."""

    authenticate_readonly: bool = False
    authenticate_readwrite: bool = False
    credentials: dict[str, str] = field(default_factory=dict, repr=False)  # --http_credentials
    authorizer: Authorizer = field(default_factory=Authorizer.open)
    credential: Credential | None = None  # --credential: presented to the master

    @classmethod
    def from_flags(cls, flags: SimpleNamespace) -> AgentSecurity:
        """`SecurityConfigurationError` naming the flag when one cannot be used."""
        readonly = bool(getattr(flags, "authenticate_http_readonly", False))
        readwrite = bool(getattr(flags, "authenticate_http_readwrite", False))
        credentials_path = getattr(flags, "http_credentials", None)
        for enabled, flag in ((readonly, "--authenticate_http_readonly"), (readwrite, "--authenticate_http_readwrite")):
            if enabled and not credentials_path:
                raise SecurityConfigurationError(
                    f"{flag} needs --http_credentials=<file> (the principals and secrets HTTP clients present)"
                )
        try:
            credentials = load_credentials(credentials_path) if credentials_path else {}
            credential = load_credential(flags.credential) if getattr(flags, "credential", None) else None
        except CredentialsError as error:
            raise SecurityConfigurationError(f"--http_credentials/--credential: {error}") from None
        try:
            authorizer = Authorizer.load(flags.acls) if getattr(flags, "acls", None) else Authorizer.open()
        except AclError as error:
            raise SecurityConfigurationError(str(error)) from None
        return cls(readonly, readwrite, credentials, authorizer, credential)

    def realm_for(self, request: web.Request) -> str | None:
        """The realm of a request that needs a principal, None for one that may be anonymous."""
        access = route_access(request)
        if access is Access.READ_ONLY and self.authenticate_readonly:
            return READONLY_REALM
        if access is Access.READ_WRITE and self.authenticate_readwrite:
            return READWRITE_REALM
        return None

    def middlewares(self) -> list[Callable]:
        """The authentication middleware, or none at all in open mode (requests then go as they always did). An
        authenticate flag with an empty credentials file gets it too: then nobody passes, which is what it says."""
        if not (self.credentials or self.authenticate_readonly or self.authenticate_readwrite):
            return []
        return [authentication_middleware(BasicAuthenticator(self.credentials), self.realm_for)]

    def may_access_sandbox(self, principal: str | None, user: str) -> bool:
        """`access_sandboxes`: may `principal` (None: anonymous) read the sandbox of a task run by `user`?"""
        return self.authorizer.allows("access_sandboxes", principal, user)
