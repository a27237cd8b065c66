from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

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


def _as_user(uid: int, *cmd: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd],
                          capture_output=True, text=True)


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv")
async def test_rotate_run_as_root_keeps_the_service_users_file_and_the_service_switches(service_factory, tmp_path):
    """`edge credentials rotate` as root on a data dir the service user owns: the file stays
    the service user's (0600), the running service accepts the new password at once, and after
    a restart too (a root-owned file made the next start restart-loop)."""
    from .peers import digest_session

    import tempfile

    service_uid = 65534  # nobody: stands for the edge user
    base = Path(tempfile.mkdtemp(prefix="edge-rotate-"))  # pytest's tmp dirs are root-only
    base.chmod(0o755)
    data = base / "data"
    data.mkdir()
    os.chown(data, service_uid, service_uid)
    os.chmod(data, 0o700)
    async with service_factory(data_dir=data) as svc:
        old = svc.password
        assert (data / "credentials.json").stat().st_uid == service_uid  # made by the (root) service: chowned too
        res = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "edge", "credentials", "--data-dir",
                                                       str(data), "rotate"], capture_output=True, text=True, check=True)
        new = res.stdout.split("password: ")[1].strip()
        st = (data / "credentials.json").stat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (service_uid, service_uid, 0o600)
        assert not list(data.glob("*.tmp"))
        # the service user can read what root wrote
        assert new in _as_user(service_uid, "cat", str(data / "credentials.json")).stdout
        deadline = time.monotonic() + 5
        while True:
            async with digest_session(svc.user, new) as http, http.get(svc.base_url + "/healthz") as r:
                if r.status == 200:
                    break
            assert time.monotonic() < deadline, "the running service did not switch to the rotated password"
            await asyncio.sleep(0.2)
        took = time.monotonic() - (deadline - 5)
        assert took < 2.5, took
        async with digest_session(svc.user, old) as http, http.get(svc.base_url + "/healthz") as r:
            assert r.status == 401
    async with service_factory(data_dir=data) as svc:  # restart
        assert svc.password == new
        async with digest_session(svc.user, new) as http, http.get(svc.base_url + "/healthz") as r:
            assert r.status == 200
    shutil.rmtree(base)
