"""`edge update install FILE|URL` and `edge update status`.

RAUC's service (root, D-Bus) does the work; this asks it through the ``rauc`` client, so the
command needs no more privilege than RAUC's D-Bus policy gives its caller (root on the
appliance). A URL is downloaded to the data partition first (https, or http on a trusted
network: the bundle's signature is what is trusted, checked by RAUC before anything is
written). After a good install the device reboots once into the new slot (the firmware's
tryboot); it keeps that slot only once edge is READY there, else it comes back by itself.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import click

DOWNLOAD_DIR = Path(os.environ.get("EDGE_UPDATE_DIR", "/data/update"))
TRYBOOT = os.environ.get("EDGE_TRYBOOT", "/usr/local/lib/edge/tryboot")
RAUC = os.environ.get("EDGE_RAUC", "rauc")


def _download(url: str, into: Path) -> Path:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise click.UsageError(f"{url}: only http(s) URLs or a local file")
    into.mkdir(parents=True, exist_ok=True)
    name = Path(parts.path).name or "update.raucb"
    fd, tmp = tempfile.mkstemp(prefix=".download-", suffix=".raucb", dir=into)
    t0 = time.monotonic()
    try:
        with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=60) as resp:
            shutil.copyfileobj(resp, fh, 1 << 20)
        target = into / name
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    click.echo(f"downloaded {url} ({target.stat().st_size / 1e6:.1f} MB in {time.monotonic() - t0:.1f} s)")
    return target


@click.group()
def update() -> None:
    """A/B software updates (signed RAUC bundles)."""


@update.command("install")
@click.argument("source")
@click.option("--no-reboot", is_flag=True, help="install only; the new slot is tried at the next `tryboot reboot`")
def install(source: str, no_reboot: bool) -> None:
    """Install a bundle (FILE or http(s) URL) into the other slot, then reboot into it."""
    downloaded = None
    if "://" in source:
        try:
            path = downloaded = _download(source, DOWNLOAD_DIR)
        except OSError as exc:
            raise click.ClickException(f"cannot download {source}: {exc}")
    else:
        path = Path(source).resolve()
        if not path.is_file():
            raise click.ClickException(f"{source}: no such file")
    t0 = time.monotonic()
    try:
        res = subprocess.run([RAUC, "install", str(path)], capture_output=True, text=True)
    finally:
        if downloaded is not None:
            downloaded.unlink(missing_ok=True)
    took = time.monotonic() - t0
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        reason = [line for line in out.splitlines() if "error" in line.lower() or "fail" in line.lower()] or out.splitlines()[-1:]
        raise click.ClickException(f"update refused or failed (nothing changed on the running slot): "
                                   f"{'; '.join(reason) or f'rauc exit {res.returncode}'}")
    click.echo(f"installed {path.name} in {took:.1f} s")
    if no_reboot:
        click.echo("not rebooting (--no-reboot): `/usr/local/lib/edge/tryboot reboot` tries the new slot")
        return
    click.echo("rebooting into the new slot (it is kept once edge is READY there)")
    sys.stdout.flush()  # exec does not flush Python's buffers
    os.execvp(TRYBOOT, [TRYBOOT, "reboot"])


@update.command("status")
def status() -> None:
    """Slots, the default one, a pending trial, and the last results."""
    res = subprocess.run([TRYBOOT, "status"], capture_output=True, text=True)
    click.echo((res.stdout + res.stderr).rstrip())
    if res.returncode != 0:
        raise SystemExit(res.returncode)
