"""Test certificates: a cluster CA, a certificate for 127.0.0.1/localhost signed by it, and a second, unrelated
CA with its own certificate (for "a certificate from another CA is refused")."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


@dataclass(frozen=True)
class ClusterPki:
    ca_file: Path
    certificate_file: Path
    key_file: Path
    other_ca_file: Path
    other_certificate_file: Path
    other_key_file: Path

    def environment(self, **overrides: str) -> dict[str, str]:
        """LIBPROCESS_SSL_* for a service of this PKI (TLS on, peers verified against its CA)."""
        environment = {
            "LIBPROCESS_SSL_ENABLED": "true",
            "LIBPROCESS_SSL_CERT_FILE": str(self.certificate_file),
            "LIBPROCESS_SSL_KEY_FILE": str(self.key_file),
            "LIBPROCESS_SSL_CA_FILE": str(self.ca_file),
            "LIBPROCESS_SSL_VERIFY_CERT": "true",
            "LIBPROCESS_SSL_REQUIRE_CERT": "false",
        }
        environment.update(overrides)
        return environment


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _authority(directory: Path, name: str) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(_name(name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    path = directory / f"{name}.pem"
    path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    return certificate, key, path


def _leaf(
    directory: Path, name: str, authority: x509.Certificate, authority_key: ec.EllipticCurvePrivateKey
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(_name(name))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH, x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(authority_key, hashes.SHA256())
    )
    certificate_path, key_path = directory / f"{name}.pem", directory / f"{name}-key.pem"
    certificate_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    _write_key(key, key_path)
    return certificate_path, key_path


def make_cluster_pki(directory: Path) -> ClusterPki:
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key, ca_file = _authority(directory, "cluster-ca")
    certificate_file, key_file = _leaf(directory, "node", ca, ca_key)
    other, other_key, other_ca_file = _authority(directory, "other-ca")
    other_certificate_file, other_key_file = _leaf(directory, "stranger", other, other_key)
    return ClusterPki(ca_file, certificate_file, key_file, other_ca_file, other_certificate_file, other_key_file)
