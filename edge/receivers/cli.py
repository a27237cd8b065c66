"""`edge report list | test [RECEIVER]`: the alarm receivers of the RUNNING service, over its
HTTP API with digest auth (the service owns the queues, the sequence numbers and the links).

The address comes from the config's [web] section, the credentials from the data dir (so run
it as root or the edge user on the appliance).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import aiohttp
import click

from .. import config as config_mod
from .. import credentials as credentials_mod
from .. import paths


class ServiceError(click.ClickException):
    exit_code = 1


async def _call(base: str, user: str, password: str, method: str, path: str, body: dict[str, Any] | None = None,
                timeout: float = 30) -> tuple[int, Any]:
    mw = aiohttp.DigestAuthMiddleware(user, password)
    try:
        async with aiohttp.ClientSession(middlewares=(mw,), timeout=aiohttp.ClientTimeout(total=timeout, connect=3)) as http:
            async with http.request(method, base + path, json=body) as r:
                if r.status == 401:
                    raise ServiceError("the service refused the credentials from the data dir "
                                       "(another data dir? rotated? see `edge credentials`)")
                try:
                    return r.status, await r.json(content_type=None)
                except ValueError:
                    return r.status, {"error": (await r.text()).strip()}
    except aiohttp.ClientConnectorError:
        raise ServiceError(f"edge is not running: nothing answers on {base} "
                           "(start it with `systemctl start edge`, or check [web] in the config)") from None
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        raise ServiceError(f"no usable answer from the service at {base}: {exc or type(exc).__name__}") from None


def _where(config_path: Path, data_dir: Path | None) -> tuple[str, str, str]:
    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        raise ServiceError("cannot read the config:\n" + "\n".join(exc.problems)) from None
    ddir = paths.data_dir(data_dir)
    try:
        creds = credentials_mod.load(ddir)
    except PermissionError:
        raise ServiceError(f"cannot read the credentials in {ddir}: permission denied (run as root or the edge user)") from None
    if creds is None:
        raise ServiceError(f"no credentials in {ddir}: is it the running service's data dir? (--data-dir, $EDGE_DATA_DIR)")
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(cfg.web.host, cfg.web.host)
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{cfg.web.port}", creds.user, creds.password


def _options(f: Any) -> Any:
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     default=paths.DEFAULT_CONFIG, show_default=True, help="the running service's config")(f)
    return click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="the running service's data dir (default: $EDGE_DATA_DIR, else /var/lib/edge)")(f)


@click.group("report")
def report() -> None:
    """Alarm receivers of the running service: their links, a test report."""


@report.command("list")
@_options
def list_cmd(config_path: Path, data_dir: Path | None) -> None:
    """Every receiver with its links, queue and last answer."""
    base, user, password = _where(config_path, data_dir)
    status, data = asyncio.run(_call(base, user, password, "GET", "/api/receivers"))
    if status != 200:
        raise ServiceError(f"listing receivers failed ({status}): {data.get('error', data)}")
    if not data["receivers"]:
        click.echo("no receivers configured ([receivers.sia.*], [receivers.chekt.*], [receivers.webhook.*])")
    for r in data["receivers"]:
        links = ", ".join(f"{x['path']} {x['where']} " + {True: "up", False: "DOWN", None: "?"}[x["up"]]
                          + (f" ({x['error']})" if x["error"] else "") for x in r["links"])
        last = r["last_answer"]
        click.echo(f"{r['name']} ({r['type']}): {'ok' if r['ok'] else 'TROUBLE'}; {links or r['error']}; "
                   f"{r['queued']} queued, {r['delivered']} delivered, {r['failures']} failed attempts"
                   + (f"; last answer {last['answer']} via {last['path']}" if last else ""))


@report.command("test")
@click.argument("receiver", required=False)
@click.option("--timeout", type=click.FloatRange(1, 600), default=30, show_default=True,
              help="seconds to wait for each receiver's answer")
@_options
def test_cmd(config_path: Path, data_dir: Path | None, receiver: str | None, timeout: float) -> None:
    """Send a test report (SIA RX, Contact ID 601) to RECEIVER (default: every receiver) and
    print its answer."""
    base, user, password = _where(config_path, data_dir)
    body: dict[str, Any] = {"timeout_s": timeout} | ({"receiver": receiver} if receiver else {})
    status, data = asyncio.run(_call(base, user, password, "POST", "/api/receivers/test", body, timeout=timeout + 10))
    if "results" not in data:
        raise ServiceError(f"test failed ({status}): {data.get('error', data)}")
    failed = 0
    for r in data["results"]:
        if r["ok"]:
            click.echo(f"{r['receiver']}: {r['answer']} from {r['path']} {r['where']} in {r['ms']:.1f} ms")
        else:
            failed += 1
            click.echo(f"{r['receiver']}: FAILED: {r['error']}", err=True)
    sys.exit(1 if failed else 0)
