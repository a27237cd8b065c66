"""Reading a receiver's secret (AES key, API token, HMAC key) from its file.

Secrets never sit in the config: the config names a file, absolute or relative to the data
dir (``/var/lib/edge/receivers/arc.key`` on the appliance), and the file must not be open to
other users (like ssh with its keys: mode 0600, or 0640 root:edge). A bad file is an error
naming the file and what is wrong; the receiver's reports stay queued until it is fixed.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class SecretError(ValueError):
    pass


def secret_path(path: Path, data_dir: Path) -> Path:
    return path if path.is_absolute() else Path(data_dir) / path


def read_secret(path: Path, data_dir: Path, what: str) -> str:
    p = secret_path(path, data_dir)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise SecretError(f"{what} file {p} does not exist") from None
    except PermissionError:
        raise SecretError(f"{what} file {p}: permission denied (run as the edge user)") from None
    if not stat.S_ISREG(st.st_mode):
        raise SecretError(f"{what} file {p} is not a file")
    if st.st_mode & 0o007:
        raise SecretError(f"{what} file {p} is open to other users (mode {stat.S_IMODE(st.st_mode):04o}): "
                          f"chmod 600 {p}")
    try:
        text = p.read_text(encoding="utf-8").strip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        raise SecretError(f"{what} file {p}: {exc}") from None
    if not text:
        raise SecretError(f"{what} file {p} is empty")
    return text


def write_secret(path: Path, text: str) -> None:
    """Write a secret file readable by its owner only (created 0600, never world-readable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode("utf-8") + b"\n")
    finally:
        os.close(fd)
