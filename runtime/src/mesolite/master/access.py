"""Who may call the master, and do what: its authentication flags, ACLs and TLS, read once at startup.

Each route of the master's router is of one kind (`security.authentication.Access`), given where the route is
added (`http.build_app`), so that a new route cannot be left out; the realm of a request follows from its route's
kind and the flags:

| Access     | Routes                                                              | Closed by                        |
|------------|---------------------------------------------------------------------|----------------------------------|
| OPEN       | /health, /version, /redirect, /master/redirect[/...], the UI page   | never (Mesos leaves them open)   |
|            | (/, /ui, /ui/) and its static files (/ui/static/...)                |                                  |
| READ_ONLY  | /state, /state.json, /state-summary, /frameworks, /slaves, /tasks,  | --authenticate_http_readonly     |
|            | /tasks.json (each also under /master/), /metrics/snapshot, the UI's |                                  |
|            | data calls to the sandbox proxy (/ui/api/agents/...),               |                                  |
|            | /maintenance/status                                                 |                                  |
| READ_WRITE | /teardown, /master/teardown, /maintenance/schedule (GET and POST),  | --authenticate_http_readwrite    |
|            | /machine/down, /machine/up, /api/v1 (the operator API)              |                                  |
| FRAMEWORK  | /api/v1/scheduler                                                   | --authenticate_frameworks or     |
|            |                                                                     | --authenticate_http_frameworks   |
| AGENT      | /internal/agent/subscribe, /internal/agent/call                     | --authenticate_agents            |

A request to no route (404/405) needs no credentials: it reveals nothing. A route the table does not name counts as
READ_WRITE (closed as soon as anything is). Credentials presented to an open route are still checked and name the
principal that the ACLs then judge.

The maintenance endpoints and operator calls are judged by Mesos's ACLs (`get_maintenance_schedules`,
`update_maintenance_schedules`, `get_maintenance_statuses`, `start_maintenances`, `stop_maintenances`,
`drain_agents`, `reactivate_agents`, `mark_agents_gone`; `maintenance.ACL_ACTIONS`) for no object in particular:
rules whose object is ANY or NONE decide, per-machine or per-agent values are not matched.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

from aiohttp import web

from mesolite.flags import FlagError
from mesolite.security.authentication import (
    Access,
    BasicAuthenticator,
    authentication_middleware,
    principal_of,
    route_access,
)
from mesolite.security.authorization import AclError, Authorizer
from mesolite.security.credentials import CredentialsError, load_credentials
from mesolite.security.tls import TlsError, TlsSettings

log = logging.getLogger(__name__)

REALM = "mesos"
SUPPORTED_HTTP_AUTHENTICATORS = ("basic",)


@dataclass
class MasterSecurity:
    """The master's authentication, authorization and TLS settings (all open by default)."""

    authenticator: BasicAuthenticator | None = None
    authorizer: Authorizer = field(default_factory=Authorizer.open)
    tls: TlsSettings = field(default_factory=TlsSettings)
    authenticate_frameworks: bool = False
    authenticate_http_readonly: bool = False
    authenticate_http_readwrite: bool = False
    authenticate_agents: bool = False

    @classmethod
    def from_flags(cls, flags: SimpleNamespace, environment: Mapping[str, str] | None = None) -> MasterSecurity:
        """The settings of the flags and LIBPROCESS_SSL_* variables; a `FlagError` naming the flag if unusable."""
        authenticators = [name.strip() for name in (flags.http_framework_authenticators or "").split(",")]
        unsupported = [name for name in authenticators if name not in SUPPORTED_HTTP_AUTHENTICATORS]
        if unsupported:
            raise FlagError(
                f"--http_framework_authenticators: '{', '.join(unsupported)}' is not supported (only 'basic' is)"
            )
        authenticate = {
            "--authenticate_frameworks": flags.authenticate_frameworks,
            "--authenticate_http_frameworks": flags.authenticate_http_frameworks,
            "--authenticate_http_readonly": flags.authenticate_http_readonly,
            "--authenticate_http_readwrite": flags.authenticate_http_readwrite,
            "--authenticate_agents": flags.authenticate_agents,
        }
        authenticator = None
        if flags.credentials:
            try:
                authenticator = BasicAuthenticator(load_credentials(flags.credentials))
            except CredentialsError as error:
                raise FlagError(f"--credentials: {error}") from None
        else:
            enabled = [name for name, value in authenticate.items() if value]
            if enabled:
                raise FlagError(f"{', '.join(enabled)} needs --credentials=<file> (the principals and their secrets)")
        authorizer = Authorizer.open()
        if flags.acls:
            try:
                authorizer = Authorizer.load(flags.acls)
            except AclError as error:
                raise FlagError(f"--acls: {error}") from None
        try:
            tls = TlsSettings.from_environment(environment)
            tls.server_context()  # loads the certificate, key and CA now: a bad file is a startup error
        except TlsError as error:
            raise FlagError(f"TLS: {error}") from None
        return cls(
            authenticator=authenticator,
            authorizer=authorizer,
            tls=tls,
            authenticate_frameworks=flags.authenticate_frameworks or flags.authenticate_http_frameworks,
            authenticate_http_readonly=flags.authenticate_http_readonly,
            authenticate_http_readwrite=flags.authenticate_http_readwrite,
            authenticate_agents=flags.authenticate_agents,
        )

    def required(self, access: Access) -> bool:
        """Whether a request to a route of this kind must carry valid credentials."""
        return {
            Access.OPEN: False,
            Access.READ_ONLY: self.authenticate_http_readonly,
            Access.READ_WRITE: self.authenticate_http_readwrite,
            Access.FRAMEWORK: self.authenticate_frameworks,
            Access.AGENT: self.authenticate_agents,
        }[access]

    def realm_for(self, request: web.Request) -> str | None:
        """The realm a request must authenticate in, or None when it may be anonymous (see the table above)."""
        access = route_access(request)
        return REALM if access is not None and self.required(access) else None

    def install(self, app: web.Application) -> None:
        """Authenticate the app's requests (only when there are credentials to check them against)."""
        if self.authenticator is not None:
            app.middlewares.append(authentication_middleware(self.authenticator, self.realm_for))

    def server_context(self) -> ssl.SSLContext | None:
        return self.tls.server_context()

    def client_context(self) -> ssl.SSLContext | None:
        """The context for the master's own calls to https endpoints (agents), None without TLS."""
        return self.tls.client_context() if self.tls.enabled else None

    # ------------------------------------------------------------------ authorization

    def allows(self, action: str, request: web.Request | None, value: str | None = None) -> bool:
        """Whether the request's principal may perform `action` on `value` (a role, a user, a principal; None for
        actions about no object in particular, such as `register_agents`)."""
        principal = principal_of(request) if request is not None else None
        return self.authorizer.allows(action, principal, value)
