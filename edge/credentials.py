"""Device identity and the credentials every network surface checks.

On the first start with none, a unique admin password is generated (readable on a
16-character LCD line: no 0/O, 1/l/I and similar), with a stable device uuid and serial, and
the sensor-gateway account of the appliance's MQTT broker (Zigbee2MQTT, Z-Wave JS UI). They
are stored in ``<data dir>/credentials.json`` with mode 0600, written atomically. There is no
default password anywhere: a surface that has no credentials refuses everything.

Whoever writes (the service, or ``edge credentials rotate`` run as root), the file belongs to
the owner of the data dir: the service user can always read what root wrote.
"""

from __future__ import annotations

import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path

# No 0 O o 1 l I i, no 5/S, 2/Z, 8/B pairs: what an installer copies off a small LCD.
PASSWORD_ALPHABET = "3467abcdefghjkmnpqrtuvwxyACDEFGHJKLMNPQRTUVWXY9"
PASSWORD_GROUPS = 3
PASSWORD_GROUP_LEN = 4  # "xxxx-xxxx-xxxx": 14 characters, ~66 bits
FILE_NAME = "credentials.json"
ADMIN_USER = "admin"
GATEWAY_USER = "gateway"


def generate_password() -> str:
    groups = ["".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(PASSWORD_GROUP_LEN)) for _ in range(PASSWORD_GROUPS)]
    return "-".join(groups)


def _hardware_serial() -> str | None:
    """The Pi's own serial from /proc/cpuinfo or the device tree, when there is one."""
    for path in ("/sys/firmware/devicetree/base/serial-number",):
        try:
            s = Path(path).read_text().strip("\0\n ")
            if s:
                return s[-8:].upper()
        except OSError:
            pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("serial"):
                s = line.split(":", 1)[1].strip()
                if s.strip("0"):
                    return s[-8:].upper()
    except OSError:
        pass
    return None


@dataclass(frozen=True)
class Credentials:
    user: str
    password: str
    device_uuid: str
    serial: str
    acknowledged: bool = False  # the installer confirmed on the LCD that they noted them
    gateway_user: str = GATEWAY_USER  # the broker account of LAN sensor gateways
    gateway_password: str = ""  # generated (load_or_create); empty only in files from before it existed

    @property
    def short_id(self) -> str:
        return self.serial[-4:].lower()


def path_for(data_dir: Path) -> Path:
    return Path(data_dir) / FILE_NAME


def write_private(target: Path, data: bytes, owner_dir: Path, mode: int = 0o600) -> None:
    """Write ``target`` atomically with ``mode``; run as root, the file is given to the owner
    of ``owner_dir`` (the data dir: the service user on the appliance) before it appears, so a
    root-run command never leaves a file the service cannot read."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        if os.geteuid() == 0:
            st = os.stat(owner_dir)
            if (st.st_uid, st.st_gid) != (0, 0):
                os.chown(tmp, st.st_uid, st.st_gid)
                if target.parent != Path(owner_dir):
                    os.chown(target.parent, st.st_uid, st.st_gid)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _write(data_dir: Path, creds: Credentials) -> None:
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    write_private(path_for(data_dir), json.dumps(asdict(creds), indent=2).encode(), data_dir)


def load(data_dir: Path) -> Credentials | None:
    try:
        data = json.loads(path_for(data_dir).read_text())
    except FileNotFoundError:
        return None
    return Credentials(**data)


def load_or_create(data_dir: Path) -> tuple[Credentials, bool]:
    """Return the device's credentials, creating them on first start. (creds, created)."""
    existing = load(data_dir)
    if existing is not None:
        p = path_for(data_dir)
        if p.stat().st_mode & 0o077:
            os.chmod(p, 0o600)
        if not existing.gateway_password:  # made before the broker had a gateway account
            existing = replace(existing, gateway_password=generate_password())
            _write(data_dir, existing)
        return existing, False
    serial = _hardware_serial() or secrets.token_hex(4).upper()
    creds = Credentials(
        user=ADMIN_USER,
        password=generate_password(),
        device_uuid=str(uuid.uuid4()),
        serial=serial,
        gateway_password=generate_password(),
    )
    _write(data_dir, creds)
    return creds, True


def rotate(data_dir: Path, *, gateway: bool = False) -> Credentials:
    """New admin password (or, with ``gateway``, a new broker gateway password), same identity
    (uuid, serial stay: NVRs keep the device)."""
    creds, _ = load_or_create(data_dir)
    if gateway:
        new = replace(creds, gateway_password=generate_password(), acknowledged=False)
    else:
        new = replace(creds, password=generate_password(), acknowledged=False)
    _write(data_dir, new)
    return new


def acknowledge(data_dir: Path) -> Credentials:
    creds, _ = load_or_create(data_dir)
    new = replace(creds, acknowledged=True)
    _write(data_dir, new)
    return new
