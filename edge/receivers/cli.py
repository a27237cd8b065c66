"""`edge report list | test [RECEIVER]`: the alarm receivers of the RUNNING service, over its
HTTP API with digest auth (the service owns the queues, the sequence numbers and the links).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import click

from ..apiclient import ServiceError, config_option, data_dir_option, service_api


@click.group("report")
def report() -> None:
    """Alarm receivers of the running service: their links, a test report."""


@report.command("list")
@config_option
@data_dir_option
def list_cmd(config_path: Path, data_dir: Path | None) -> None:
    """Every receiver with its links, queue and last answer."""
    status, data = service_api(config_path, data_dir).get("/api/receivers")
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
@config_option
@data_dir_option
def test_cmd(config_path: Path, data_dir: Path | None, receiver: str | None, timeout: float) -> None:
    """Send a test report (SIA RX, Contact ID 601) to RECEIVER (default: every receiver) and
    print its answer."""
    api = service_api(config_path, data_dir)
    body: dict[str, Any] = {"timeout_s": timeout} | ({"receiver": receiver} if receiver else {})
    status, data = asyncio.run(api.call("POST", "/api/receivers/test", body, timeout_s=timeout + 10))
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
