from __future__ import annotations

import subprocess
import sys

from edge import credentials
from edge.credentials import PASSWORD_ALPHABET


def test_first_start_creates_unique_0600_credentials(tmp_path):
    a, created_a = credentials.load_or_create(tmp_path / "a")
    b, created_b = credentials.load_or_create(tmp_path / "b")
    assert created_a and created_b
    assert a.password != b.password and a.device_uuid != b.device_uuid
    assert (tmp_path / "a" / "credentials.json").stat().st_mode & 0o777 == 0o600
    # readable on a 16-character LCD line, no ambiguous characters
    assert len(a.password) <= 16
    assert all(c in PASSWORD_ALPHABET + "-" for c in a.password)
    assert not set("0O1lI") & set(a.password)


def test_stable_across_restarts_and_rotation_keeps_identity(tmp_path):
    a, _ = credentials.load_or_create(tmp_path)
    again, created = credentials.load_or_create(tmp_path)
    assert not created and again == a
    rotated = credentials.rotate(tmp_path)
    assert rotated.password != a.password
    assert (rotated.device_uuid, rotated.serial) == (a.device_uuid, a.serial)


def test_cli_prints_user_and_password(tmp_path):
    out = subprocess.run([sys.executable, "-m", "edge", "credentials", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, check=True).stdout
    creds = credentials.load(tmp_path)
    assert f"user: {creds.user}\n" in out
    assert f"password: {creds.password}\n" in out


def test_no_default_password_in_repo():
    """No literal password in the code or configs: every credential is generated."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    suspicious = []
    for p in list(root.glob("edge/**/*.py")) + list(root.glob("edge/**/*.toml")) + list(root.glob("hw/**/*.py")):
        for no, line in enumerate(p.read_text().splitlines(), 1):
            low = line.lower().replace(" ", "")
            if any(k in low for k in ('password="', "password='", 'password:str="', "passwd=")) and "generate" not in low:
                suspicious.append(f"{p}:{no}: {line.strip()}")
    assert not suspicious, suspicious
