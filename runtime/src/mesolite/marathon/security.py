"""How a Marathon instance is secured, from Marathon's own flags: who may use its HTTP API, whether it serves
https, and how it proves itself to the Mesos master.

- `--http_credentials=user:password` (several separated by commas) closes every route behind HTTP Basic in
  `--http_realm` (Marathon's default realm: "Mesosphere"). As in Marathon, whose Jetty constraint covers `/*`,
  nothing stays open: `/ping`, `/metrics` and the UI need credentials too.
- TLS key material — Marathon's `--ssl_keystore_path`/`--ssl_keystore_password` (a PKCS#12 keystore), or PEM
  files `--ssl_certificate_path`/`--ssl_key_path` — serves https on `--https_port`; plain http stays on
  `--http_port` unless `--disable_http`. As in Marathon, an instance without http advertises its https port.
- `--mesos_authentication_principal` (FrameworkInfo.principal) and `--mesos_authentication_secret_file`: the
  credentials Marathon presents to the master. The master's certificate is verified against
  `LIBPROCESS_SSL_CA_FILE`/`LIBPROCESS_SSL_CA_DIR`, as every Mesos client does (`security.tls`).

Bad settings stop the start with a `FlagError` that names the flag; secrets never appear in messages.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mesolite.flags import FlagError
from mesolite.security.credentials import CredentialsError, load_secret, parse_user_passwords
from mesolite.security.tls import TlsError, TlsSettings, load_pkcs12_chain, new_server_context

DEFAULT_REALM = "Mesosphere"


@dataclass(frozen=True)
class HttpSecurity:
    """The HTTP side: which listeners to open and who may use them."""

    credentials: dict[str, str] | None = field(default=None, repr=False)  # None: open, as Marathon by default
    realm: str = DEFAULT_REALM
    serve_http: bool = True
    https_context: ssl.SSLContext | None = None  # None: no https listener

    @property
    def advertised_scheme(self) -> str:
        """The scheme of the address this instance advertises (in the election, to Mesos, to clients)."""
        return "http" if self.serve_http else "https"


@dataclass(frozen=True)
class MesosAuthentication:
    """What Marathon presents to the master: FrameworkInfo.principal, and the secret when it authenticates."""

    principal: str | None = None
    secret: str | None = field(default=None, repr=False)


def http_security(flags: Any) -> HttpSecurity:
    credentials = None
    if flags.http_credentials:
        try:
            credentials = parse_user_passwords(flags.http_credentials, "--http_credentials")
        except CredentialsError as error:
            raise FlagError(str(error)) from None
    https_context = _https_context(flags)
    if flags.disable_http and https_context is None:
        raise FlagError(
            "--disable_http needs TLS key material to serve https instead: --ssl_keystore_path "
            "(with --ssl_keystore_password) or --ssl_certificate_path with --ssl_key_path"
        )
    return HttpSecurity(credentials, flags.http_realm or DEFAULT_REALM, not flags.disable_http, https_context)


def _https_context(flags: Any) -> ssl.SSLContext | None:
    keystore, certificate, key = flags.ssl_keystore_path, flags.ssl_certificate_path, flags.ssl_key_path
    if keystore and (certificate or key):
        raise FlagError("give either --ssl_keystore_path or --ssl_certificate_path/--ssl_key_path, not both")
    if keystore:
        context = new_server_context()
        try:
            load_pkcs12_chain(context, Path(keystore), flags.ssl_keystore_password)
        except TlsError as error:
            # "wrong password or not a PKCS#12 file": both flags are suspects; the password is the likelier one.
            which = "--ssl_keystore_password" if Path(keystore).is_file() else "--ssl_keystore_path"
            raise FlagError(f"{which}: {error}") from None
        except (OSError, ssl.SSLError) as error:
            raise FlagError(f"--ssl_keystore_path: cannot use the keystore {keystore}: {error}") from None
        return context
    if certificate or key:
        if not certificate or not key:
            missing = "--ssl_key_path" if certificate else "--ssl_certificate_path"
            raise FlagError(f"{missing} is needed too: https needs a certificate and its private key (PEM files)")
        context = new_server_context()
        for flag_name, path in (("--ssl_certificate_path", certificate), ("--ssl_key_path", key)):
            if not Path(path).is_file():
                raise FlagError(f"{flag_name}: no readable file {path}")
        try:
            context.load_cert_chain(certificate, key)
        except (OSError, ssl.SSLError) as error:
            raise FlagError(
                f"--ssl_certificate_path/--ssl_key_path: cannot use the certificate {certificate} with the key "
                f"{key}: {getattr(error, 'reason', None) or error}"
            ) from None
        return context
    return None


def mesos_authentication(flags: Any) -> MesosAuthentication:
    principal = flags.mesos_authentication_principal or None
    secret = None
    if flags.mesos_authentication_secret_file:
        if principal is None:
            raise FlagError("--mesos_authentication_secret_file needs --mesos_authentication_principal")
        try:
            secret = load_secret(flags.mesos_authentication_secret_file)
        except CredentialsError as error:
            raise FlagError(f"--mesos_authentication_secret_file: {error}") from None
    if flags.mesos_authentication and secret is None:
        raise FlagError(
            "--mesos_authentication needs --mesos_authentication_principal and --mesos_authentication_secret_file"
        )
    return MesosAuthentication(principal, secret)


def cluster_tls() -> TlsSettings:
    """LIBPROCESS_SSL_*: how this instance verifies the master (and a leading Marathon that serves https)."""
    try:
        return TlsSettings.from_environment()
    except TlsError as error:
        raise FlagError(str(error)) from None


def client_context(tls: TlsSettings) -> ssl.SSLContext:
    """The context for https towards the cluster (the master, a leading Marathon), checked against its CA."""
    try:
        return tls.client_context()
    except TlsError as error:
        raise FlagError(str(error)) from None
