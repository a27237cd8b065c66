"""The device's own TLS key and self-signed certificate, made once per device (first boot).

``<data dir>/tls/key.pem`` (ECDSA P-256, 0600) and ``cert.pem``: the certificate names the
host (``edge-XXXX``, ``edge-XXXX.local``, localhost) and the addresses the device had when it
was made. Nobody signs it: an installer checks its SHA-256 fingerprint, shown by
``edge credentials`` and on the LCD, against what the browser (or MQTT client) shows, once.
HTTPS uses it, and so does the appliance broker's TLS listener.

``server_context()`` is the one TLS policy: TLS 1.2 and 1.3 only, forward-secret AEAD
ciphers only.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

from .credentials import write_private

DIR_NAME = "tls"
KEY_NAME = "key.pem"
CERT_NAME = "cert.pem"
VALID_DAYS = 20 * 365
# TLS 1.2 suites (1.3 has only strong ones): ECDHE key exchange, AEAD, nothing else.
TLS12_CIPHERS = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305"


@dataclass(frozen=True)
class DeviceCert:
    key_path: Path
    cert_path: Path
    fingerprint: str  # SHA-256 of the DER certificate, "AB:CD:..."
    created: bool = False

    @property
    def short_fingerprint(self) -> str:
        """The first 8 bytes, as the LCD shows them (enough to tell a stranger's certificate)."""
        return self.fingerprint[:23]


def paths(data_dir: Path) -> tuple[Path, Path]:
    d = Path(data_dir) / DIR_NAME
    return d / KEY_NAME, d / CERT_NAME


def fingerprint_of(cert_pem: bytes) -> str:
    """SHA-256 of the certificate's DER bytes (what browsers show)."""
    der = ssl.PEM_cert_to_DER_cert(cert_pem.decode("ascii"))
    return hashlib.sha256(der).digest().hex(":").upper()


def local_names() -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) this host answers to now."""
    host = socket.gethostname().split(".")[0] or "edge"
    names = [host, f"{host}.local", "localhost"]
    ips = {"127.0.0.1", "::1"}
    try:
        for info in socket.getaddrinfo(host, None):
            ips.add(str(info[4][0]).split("%")[0])
    except OSError:
        pass
    try:  # the address used towards the LAN (no packet is sent)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            ips.add(s.getsockname()[0])
    except OSError:
        pass
    return names, sorted(ip for ip in ips if _is_ip(ip))


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def make_certificate(names: list[str], ips: list[str], common_name: str) -> tuple[bytes, bytes]:
    """A new key and a self-signed certificate for them: (key PEM, certificate PEM)."""
    # imported here, on the first boot only: ~1.6 MB every other start does not need
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name[:64]),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edge appliance")])
    now = dt.datetime.now(dt.timezone.utc)
    san = [x509.DNSName(n) for n in dict.fromkeys(names)] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        # a Pi has no clock: on first boot it may run behind; clients compare with theirs
        .not_valid_before(now - dt.timedelta(days=2))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, content_commitment=False,
                                     key_encipherment=False, data_encipherment=False, key_agreement=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def load_or_create(data_dir: Path) -> DeviceCert:
    """The device certificate, made on the first call (first boot)."""
    key_path, cert_path = paths(data_dir)
    created = False
    if not (key_path.exists() and cert_path.exists()):
        names, ips = local_names()
        key_pem, cert_pem = make_certificate(names, ips, names[0])
        write_private(key_path, key_pem, Path(data_dir))
        write_private(cert_path, cert_pem, Path(data_dir), mode=0o644)
        created = True
    return DeviceCert(key_path, cert_path, fingerprint_of(cert_path.read_bytes()), created)


def load(data_dir: Path) -> DeviceCert | None:
    """The certificate if it was made (never makes one)."""
    key_path, cert_path = paths(data_dir)
    try:
        return DeviceCert(key_path, cert_path, fingerprint_of(cert_path.read_bytes()))
    except FileNotFoundError:
        return None


def server_context(cert: DeviceCert) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers(TLS12_CIPHERS)
    ctx.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE | ssl.OP_NO_RENEGOTIATION
    ctx.load_cert_chain(str(cert.cert_path), str(cert.key_path))
    return ctx


def client_context(cert: DeviceCert) -> ssl.SSLContext:
    """A client context that trusts exactly this device certificate (the CLI, tests)."""
    ctx = ssl.create_default_context(cafile=str(cert.cert_path))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
