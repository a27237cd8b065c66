"""The appliance's Mosquitto broker files, made from the device identity (``edge broker-setup``,
run as root by ``edge-broker-setup.service`` before Mosquitto and edge start).

Two accounts, both with generated passwords (no anonymous access):

- ``edge``: the service itself (``[mqtt] username = "edge"``, password in
  ``<data dir>/mqtt/edge.password``, 0600, the service user's);
- the sensor-gateway account (``credentials.json``: shown by ``edge credentials`` and on the
  LCD) for Zigbee2MQTT / Z-Wave JS UI on the LAN. The ACL (shipped in the image,
  ``/etc/mosquitto/edge/acl``) lets gateways publish their own topic trees, never edge's
  command topics.

Written into ``out`` (``/etc/mosquitto/edge``): ``passwd`` (Mosquitto's PBKDF2-SHA512 hashes,
the format ``mosquitto_passwd`` writes), and copies of the device certificate and key for the
TLS listener, each root-owned and readable by the ``mosquitto`` group only.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import secrets
from pathlib import Path

from . import credentials as credentials_mod
from . import tls

PASSWORD_FILE = Path("mqtt") / "edge.password"
SERVICE_USER = "edge"
PBKDF2_ROUNDS = 101  # what mosquitto_passwd 2.0 uses for its "$7$" hashes


def mosquitto_hash(password: str, salt: bytes | None = None) -> str:
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ROUNDS)
    return f"$7${PBKDF2_ROUNDS}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def service_password(data_dir: Path) -> str:
    """edge's own broker password (made on first call)."""
    path = Path(data_dir) / PASSWORD_FILE
    try:
        text = path.read_text().strip()
        if text:
            return text
    except FileNotFoundError:
        pass
    password = secrets.token_urlsafe(24)
    credentials_mod.write_private(path, (password + "\n").encode(), Path(data_dir))
    return password


def _write_for_broker(path: Path, data: bytes, group: str | None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o640)
    if group is not None and os.geteuid() == 0:
        os.chown(tmp, 0, grp.getgrnam(group).gr_gid)
    tmp.replace(path)


def setup(data_dir: Path, out: Path, group: str | None = "mosquitto") -> list[str]:
    """Write the broker's files; returns what was written (for the log). ``group``: the group
    Mosquitto runs as (None: leave the group alone, for tests)."""
    data_dir = Path(data_dir)
    creds, _ = credentials_mod.load_or_create(data_dir)
    cert = tls.load_or_create(data_dir)
    edge_pw = service_password(data_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o750)
    if group is not None and os.geteuid() == 0:
        os.chown(out, 0, grp.getgrnam(group).gr_gid)
    accounts = (f"{SERVICE_USER}:{mosquitto_hash(edge_pw)}\n"
              f"{creds.gateway_user}:{mosquitto_hash(creds.gateway_password)}\n")
    _write_for_broker(out / "passwd", accounts.encode(), group)
    _write_for_broker(out / "cert.pem", cert.cert_path.read_bytes(), group)
    _write_for_broker(out / "key.pem", cert.key_path.read_bytes(), group)
    return [str(out / n) for n in ("passwd", "cert.pem", "key.pem")]
