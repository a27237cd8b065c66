"""`edge sources check | set-secret`: the sensor sources of the running service.

``check`` asks the running service (``GET /api/sources``, digest auth) and prints each source's
connection (MQTT lanes, YoLink accounts and hubs with their token expiry and devices) and each
sensor's last message, age and availability. ``set-secret NAME`` stores a YoLink Secret Key in
its 0600 file (read from stdin or asked for, never from the command line, never echoed).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

from .. import paths
from ..apiclient import ServiceError, config_option, data_dir_option, load_config, service_api


@click.group("sources")
def sources() -> None:
    """Sensor sources: connections, tokens, the last message per sensor."""


def _age(s: float | None) -> str:
    if s is None:
        return "never"
    s = int(s)
    if s < 120:
        return f"{s}s ago"
    if s < 7200:
        return f"{s // 60}m ago"
    if s < 172800:
        return f"{s // 3600}h{s % 3600 // 60:02d}m ago"
    return f"{s // 86400}d ago"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths)) + "  " + r[-1])


def _source_lines(src: dict[str, Any]) -> list[str]:
    state = "connected" if src.get("connected") else "DOWN"
    out = [f"{src['name']} ({src.get('type', '?')}): {state}" + (f" to {src['address']}" if src.get("address") else "")]
    if src.get("last_error"):
        out.append(f"  error: {src['last_error']}")
    if src.get("type", "").startswith("yolink"):
        exp = src.get("token_expires_in_s")
        out.append(f"  home {src.get('home_id') or '?'}; token " +
                   ("none yet" if exp is None else f"expires in {int(exp)} s, renewed in {max(0, int(src.get('token_renews_in_s') or 0))} s")
                   + f"; {src.get('tokens_issued', 0)} tokens, {src.get('renewals', 0)} renewals, {src.get('messages', 0)} messages")
        for p in src.get("problems") or []:
            out.append(f"  PROBLEM: {p}")
        for d in src.get("devices") or []:
            used = f" -> sensor {d['sensor']}" if d.get("sensor") else ""
            out.append(f"  device {d['name']!r} {d['type']} {d['id']}{used}")
    elif "messages" in src:
        out.append(f"  {src['messages']} messages, {src.get('topics', 0)} topic filters")
    return out


@sources.command("check")
@config_option
@data_dir_option
def check_cmd(config_path: Path, data_dir: Path | None) -> None:
    """Each source's connection (and YoLink token expiry), each sensor's last message."""
    api = service_api(config_path, data_dir)
    status, data = api.get("/api/sources")
    if status != 200:
        raise ServiceError(f"reading the sources failed ({status}): {data.get('error', data)}")
    srcs = data.get("sources") or []
    if not srcs:
        click.echo("no network sources (only GPIO/Modbus inputs, or no sensors)")
    for src in srcs:
        for line in _source_lines(src):
            click.echo(line)
    rows = [("SENSOR", "KIND", "SOURCE", "LAST MESSAGE", "MSGS", "STATE")]
    for s in data.get("sensors") or []:
        state = "online" if s["online"] else f"OFFLINE ({s.get('reason') or '?'})"
        if s.get("battery_low"):
            state += ", BATTERY LOW"
        if not s.get("offline_after_s"):
            state += " (not supervised)"
        rows.append((s["id"], s["kind"], s["source"], _age(s.get("age_s")), str(s.get("messages", 0)), state))
    click.echo("")
    if len(rows) > 1:
        _table(rows)
    click.echo(f"{data.get('bad_payloads', 0)} bad payloads since start")
    down = [s for s in srcs if not s.get("connected")]
    offline = [s for s in data.get("sensors") or [] if not s["online"]]
    sys.exit(1 if down or offline else 0)


@sources.command("set-secret")
@click.argument("name")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=paths.DEFAULT_CONFIG,
              show_default=True)
@data_dir_option
def set_secret_cmd(name: str, config_path: Path, data_dir: Path | None) -> None:
    """Store the Secret Key of [yolink.NAME] in its 0600 file (read from stdin or asked for)."""
    cfg = load_config(config_path)
    src = cfg.yolink.get(name)
    if src is None:
        raise ServiceError(f"no [yolink.{name}] in {config_path} (have: {', '.join(cfg.yolink) or 'none'})")
    if sys.stdin.isatty():
        secret = click.prompt("Secret Key", hide_input=True)
    else:
        secret = sys.stdin.readline()
    secret = secret.strip()
    if not secret:
        raise ServiceError("empty secret: nothing written")
    path = src.secret_path(paths.data_dir(data_dir), name)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secret + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    tmp.replace(path)
    click.echo(f"yolink.{name}: secret stored in {path} (0600); the running service uses it on its next try")
