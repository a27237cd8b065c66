"""`edge relay list | pulse | set | test`: talk to the RUNNING service over its HTTP API (never
to the hardware directly: the service owns the boards, their locks and the audit trail).

The address comes from the config's [web] section, the credentials from the data dir (so run
it as root or the edge user on the appliance). HTTP Digest: the password never crosses the
wire.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

import click

from ..apiclient import Api, ServiceError, config_option, data_dir_option, service_api


def _api(config_path: Path, data_dir: Path | None) -> Api:
    return service_api(config_path, data_dir)


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def _print_result(data: dict[str, Any]) -> bool:
    ok = bool(data.get("ok"))
    name = data.get("relay", "?")
    if ok:
        click.echo(f"{name}: {data.get('command')} ok ({data.get('latency_ms', 0):.1f} ms)")
    else:
        cmd = data.get("command")
        click.echo(f"{name}: {cmd + ' ' if cmd else ''}FAILED: {data.get('error', 'unknown error')}", err=True)
    return ok


@click.group("relay")
def relay() -> None:
    """Relays of the running service: list them, pulse, switch, wiring test."""


def _where(f: Any) -> Any:
    return config_option(data_dir_option(f))


@relay.command("list")
@_where
def list_cmd(config_path: Path, data_dir: Path | None) -> None:
    """Every relay channel with its state and board health."""
    api = _api(config_path, data_dir)
    status, data = _run(api.call("GET", "/api/relays"))
    if status != 200:
        raise ServiceError(f"listing relays failed ({status}): {data.get('error', data)}")
    rows = [("RELAY", "BOARD", "CH", "MODE", "STATE", "SAFE", "HEALTH", "LABEL")]
    for r in data["relays"]:
        state = "?" if r["on"] is None else ("ON" if r["on"] else "off")
        health = "FAULT: " + r["detail"] if r["faulted"] else ("ok" if r["reachable"] else "UNREACHABLE: " + r["detail"])
        mode = r["mode"] + (f" {r['pulse_ms']}ms" if r["mode"] == "pulse" else "")
        rows.append((r["name"], r["board"], str(r["channel"]), mode, state, r["safe_state"], health, r["label"]))
    if len(rows) == 1:
        click.echo("no relays configured ([relays.channels.*] in the config)")
        return
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])


@relay.command("pulse")
@click.argument("channel")
@click.option("--ms", type=click.IntRange(1, 600_000), default=None, help="pulse length (default: the channel's pulse_ms)")
@_where
def pulse_cmd(config_path: Path, data_dir: Path | None, channel: str, ms: int | None) -> None:
    """Pulse CHANNEL (a relay name from `edge relay list`)."""
    api = _api(config_path, data_dir)
    body = {"source": "cli"} | ({"ms": ms} if ms is not None else {})
    _, data = _run(api.call("POST", f"/api/relays/{channel}/pulse", body))
    if not _print_result(data):
        sys.exit(1)


@relay.command("set")
@click.argument("channel")
@click.argument("state", type=click.Choice(["on", "off"], case_sensitive=False))
@_where
def set_cmd(config_path: Path, data_dir: Path | None, channel: str, state: str) -> None:
    """Switch CHANNEL on or off (on a pulse channel, on = one pulse)."""
    api = _api(config_path, data_dir)
    _, data = _run(api.call("POST", f"/api/relays/{channel}/set", {"on": state.lower() == "on", "source": "cli"}))
    if not _print_result(data):
        sys.exit(1)


@relay.command("test")
@click.argument("channels", nargs=-1)
@click.option("--ms", type=click.IntRange(1, 10_000), default=500, show_default=True, help="pulse length per channel")
@click.option("--gap-ms", type=click.IntRange(0, 60_000), default=1000, show_default=True, help="pause between channels")
@_where
def test_cmd(config_path: Path, data_dir: Path | None, channels: tuple[str, ...], ms: int, gap_ms: int) -> None:
    """Wiring check: pulse each channel in turn (all, or the CHANNELS given) and say which
    answered. Latched and follow channels are pulsed too: they end in their safe state."""
    api = _api(config_path, data_dir)

    async def go() -> int:
        status, data = await api.call("GET", "/api/relays")
        if status != 200:
            raise ServiceError(f"listing relays failed ({status}): {data.get('error', data)}")
        names = [r["name"] for r in data["relays"]]
        unknown = [c for c in channels if c not in names]
        if unknown:
            raise ServiceError(f"unknown relay(s): {', '.join(unknown)} (relays: {', '.join(names)})")
        todo = list(channels) or names
        failed = 0
        for i, name in enumerate(todo):
            click.echo(f"[{i + 1}/{len(todo)}] ", nl=False)
            _, res = await api.call("POST", f"/api/relays/{name}/pulse", {"ms": ms, "source": "cli test"})
            if not _print_result(res):
                failed += 1
            if i + 1 < len(todo):
                await asyncio.sleep((ms + gap_ms) / 1000)
        click.echo(f"{len(todo) - failed} of {len(todo)} relays pulsed" + (f", {failed} FAILED" if failed else ""))
        return 1 if failed else 0

    t0 = time.monotonic()
    rc = _run(go())
    click.echo(f"done in {time.monotonic() - t0:.1f} s")
    sys.exit(rc)
