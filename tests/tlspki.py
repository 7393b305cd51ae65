"""A throwaway PKI for the TLS tests, made with the `cryptography` package:
CAs and the certificates they issue, written as PEM files (EC P-256 keys in
PKCS#8, which Python's ssl, kazoo and ZooKeeper 3.8's PEM key stores all read).
"""

import datetime
import ipaddress
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_ATTRS = {"C": NameOID.COUNTRY_NAME, "ST": NameOID.STATE_OR_PROVINCE_NAME,
          "L": NameOID.LOCALITY_NAME, "O": NameOID.ORGANIZATION_NAME,
          "OU": NameOID.ORGANIZATIONAL_UNIT_NAME, "CN": NameOID.COMMON_NAME,
          "emailAddress": NameOID.EMAIL_ADDRESS, "DC": NameOID.DOMAIN_COMPONENT}


class Issued(NamedTuple):
    cert: Path     # the certificate (PEM)
    key: Path      # its private key (PEM, unencrypted PKCS#8)
    bundle: Path   # key and certificate in one file: a ZooKeeper PEM key store
    subject: str   # as Java's X500Principal.getName() prints it


def _name(pairs):
    """x509.Name from (attribute, value) pairs, most general first (C, O, OU, CN)."""
    return x509.Name([x509.NameAttribute(_ATTRS[attr], value) for attr, value in pairs])


def _key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _now():
    return datetime.datetime.now(datetime.timezone.utc)


class CA:
    def __init__(self, directory, name="nookeeper test CA"):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = _name([("O", "nookeeper tests"), ("CN", name)])
        now = _now()
        self.certificate = (
            x509.CertificateBuilder()
            .subject_name(self.name).issuer_name(self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        slug = name.replace(" ", "-")
        self.cert_path = self.directory / f"{slug}.pem"
        self.cert_path.write_bytes(self.certificate.public_bytes(serialization.Encoding.PEM))

    def issue(self, name, subject=None, hosts=("127.0.0.1", "localhost"), days=30,
              not_before=None, not_after=None, key=None):
        """A leaf certificate (server and client use) named `name` in the
        CA's directory; subject defaults to O=acme,CN=<name>."""
        pairs = subject or [("O", "acme"), ("CN", name)]
        key = key or ec.generate_private_key(ec.SECP256R1())
        now = _now()
        sans = []
        for host in hosts:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                sans.append(x509.DNSName(host))
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(pairs)).issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before or now - datetime.timedelta(hours=1))
            .not_valid_after(not_after or now + datetime.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                self.key.public_key()), critical=False)
        )
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        paths = Issued(self.directory / f"{name}.crt", self.directory / f"{name}.key",
                       self.directory / f"{name}.bundle.pem",
                       ",".join(f"{attr}={value}" for attr, value in reversed(pairs)))
        paths.cert.write_bytes(cert_pem)
        paths.key.write_bytes(_key_pem(key))
        paths.key.chmod(0o600)
        paths.bundle.write_bytes(_key_pem(key) + cert_pem)
        return paths


def other_key(path):
    """Write a fresh private key that matches no certificate to `path`."""
    Path(path).write_bytes(_key_pem(ec.generate_private_key(ec.SECP256R1())))
    return Path(path)
