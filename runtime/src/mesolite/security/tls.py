"""TLS for the services and their clients, configured as Mesos configures libprocess: environment variables.

- `LIBPROCESS_SSL_ENABLED`: the service's HTTP server speaks only TLS (master, agent), and its MasterInfo/pids
  advertise https.
- `LIBPROCESS_SSL_CERT_FILE`, `LIBPROCESS_SSL_KEY_FILE`: the service's certificate chain and key (PEM); a client
  presents them too, for servers that require client certificates.
- `LIBPROCESS_SSL_CA_FILE`, `LIBPROCESS_SSL_CA_DIR`: the certificates trusted to sign the peers'.
- `LIBPROCESS_SSL_VERIFY_CERT`: verify the peer's certificate (servers: when one is presented).
- `LIBPROCESS_SSL_REQUIRE_CERT`: servers refuse clients without a valid certificate.

Booleans are `true`/`false`/`1`/`0`, as Mesos reads them. One difference from libprocess, on purpose: a client
verifies the server whenever it is given a CA (file or directory), not only with `VERIFY_CERT` — naming a CA only
makes sense to check against it. Without either, a client accepts any certificate, as libprocess's default does.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

ENVIRONMENT_PREFIX = "LIBPROCESS_SSL_"
TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no", ""}


class TlsError(ValueError):
    """TLS settings that cannot be used; the message names the variable or file."""


def _flag(environment: Mapping[str, str], name: str) -> bool:
    value = environment.get(ENVIRONMENT_PREFIX + name, "").strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return False
    raise TlsError(f"{ENVIRONMENT_PREFIX}{name} must be true or false, not {value!r}")


def _path(environment: Mapping[str, str], name: str) -> Path | None:
    value = environment.get(ENVIRONMENT_PREFIX + name, "").strip()
    return Path(value) if value else None


@dataclass(frozen=True)
class TlsSettings:
    enabled: bool = False
    certificate_file: Path | None = None
    key_file: Path | None = None
    ca_file: Path | None = None
    ca_directory: Path | None = None
    verify_certificate: bool = False
    require_certificate: bool = False

    @classmethod
    def from_environment(cls, environment: Mapping[str, str] | None = None) -> TlsSettings:
        environment = os.environ if environment is None else environment
        settings = cls(
            enabled=_flag(environment, "ENABLED"),
            certificate_file=_path(environment, "CERT_FILE"),
            key_file=_path(environment, "KEY_FILE"),
            ca_file=_path(environment, "CA_FILE"),
            ca_directory=_path(environment, "CA_DIR"),
            verify_certificate=_flag(environment, "VERIFY_CERT"),
            require_certificate=_flag(environment, "REQUIRE_CERT"),
        )
        if settings.require_certificate and settings.ca_file is None and settings.ca_directory is None:
            raise TlsError(
                f"{ENVIRONMENT_PREFIX}REQUIRE_CERT needs {ENVIRONMENT_PREFIX}CA_FILE or {ENVIRONMENT_PREFIX}CA_DIR"
            )
        return settings

    @property
    def scheme(self) -> str:
        """The scheme this service's own endpoints are reached with."""
        return "https" if self.enabled else "http"

    @property
    def has_ca(self) -> bool:
        return self.ca_file is not None or self.ca_directory is not None

    def _load_trust(self, context: ssl.SSLContext) -> None:
        if not self.has_ca:
            return
        try:
            context.load_verify_locations(
                cafile=str(self.ca_file) if self.ca_file else None,
                capath=str(self.ca_directory) if self.ca_directory else None,
            )
        except (OSError, ssl.SSLError) as error:
            raise TlsError(f"cannot load the CA from {self.ca_file or self.ca_directory}: {error}") from None

    def _load_own_certificate(self, context: ssl.SSLContext) -> None:
        if self.certificate_file is None or self.key_file is None:
            return
        try:
            context.load_cert_chain(str(self.certificate_file), str(self.key_file))
        except (OSError, ssl.SSLError) as error:
            raise TlsError(
                f"cannot load the certificate {self.certificate_file} with the key {self.key_file}: {error}"
            ) from None

    def server_context(self) -> ssl.SSLContext | None:
        """The context a TLS server listens with, or None when TLS is not enabled."""
        if not self.enabled:
            return None
        # Only a server needs its own certificate: a CLI with TLS enabled just speaks https to the master.
        if self.certificate_file is None or self.key_file is None:
            raise TlsError(
                f"{ENVIRONMENT_PREFIX}ENABLED needs {ENVIRONMENT_PREFIX}CERT_FILE and {ENVIRONMENT_PREFIX}KEY_FILE"
            )
        context = new_server_context()
        self._load_own_certificate(context)
        self._load_trust(context)
        if self.require_certificate:
            context.verify_mode = ssl.CERT_REQUIRED
        elif self.verify_certificate and self.has_ca:
            context.verify_mode = ssl.CERT_OPTIONAL
        return context

    def client_context(self) -> ssl.SSLContext:
        """The context for connecting to https endpoints of the cluster."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.has_ca:
            # Only the cluster's CA: a certificate from a public CA must not pass for a cluster member's.
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            self._load_trust(context)
        elif not self.verify_certificate:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._load_own_certificate(context)
        return context


def new_server_context() -> ssl.SSLContext:
    """A TLS server context (TLS 1.2 or later) before its certificate is loaded."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def load_pkcs12_chain(context: ssl.SSLContext, path: Path, password: str | None) -> None:
    """Load a PKCS#12 keystore's key and certificates (Marathon's `--ssl_keystore_path`) into `context`.

    Python's ssl module loads PEM files only: the keystore is converted in memory and written, for the moment of
    loading, to a private temporary directory (mode 0700) that is removed at once."""
    try:
        from cryptography.hazmat.primitives.serialization import (
            Encoding,
            NoEncryption,
            PrivateFormat,
            pkcs12,
        )
    except ImportError:  # pragma: no cover - cryptography is a dependency of the package
        raise TlsError("reading a PKCS#12 keystore needs the 'cryptography' package") from None
    try:
        data = path.read_bytes()
    except OSError as error:
        raise TlsError(f"cannot read the keystore {path}: {error.strerror or error}") from None
    try:
        key, certificate, additional = pkcs12.load_key_and_certificates(
            data, password.encode() if password is not None else None
        )
    except ValueError:
        raise TlsError(f"cannot open the keystore {path}: wrong password or not a PKCS#12 file") from None
    if key is None or certificate is None:
        raise TlsError(f"the keystore {path} must hold a private key and its certificate")
    chain = b"".join(item.public_bytes(Encoding.PEM) for item in [certificate, *(additional or [])])
    key_pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    directory = tempfile.mkdtemp(prefix="mesolite-keystore-")  # created with mode 0700
    try:
        certificate_file, key_file = Path(directory, "chain.pem"), Path(directory, "key.pem")
        certificate_file.write_bytes(chain)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(str(certificate_file), str(key_file))
    finally:
        shutil.rmtree(directory, ignore_errors=True)
