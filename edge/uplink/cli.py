"""`edge uplink bridge-config`: write the appliance broker's bridge config from [uplink.bridge].

Root runs it before Mosquitto starts (a drop-in of mosquitto.service on the appliance), so a
changed config takes effect with `systemctl restart mosquitto`.
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import config as config_mod
from .. import credentials as credentials_mod
from .. import paths


@click.group()
def uplink() -> None:
    """The fleet uplink (the broker bridge to a central MQTT broker)."""


@uplink.command("bridge-config")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=paths.DEFAULT_CONFIG,
              show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="data directory (default: $EDGE_DATA_DIR, else /var/lib/edge)")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="file to write (default: [uplink.bridge] output); - prints it")
def bridge_config(config_path: Path, data_dir: Path | None, out: Path | None) -> None:
    """Write the Mosquitto bridge config of [uplink.bridge] (an empty one without it)."""
    from .bridge import render, write

    try:
        cfg = config_mod.load(config_path)
    except config_mod.ConfigError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        raise SystemExit(2) from None
    creds = credentials_mod.load(paths.data_dir(data_dir))
    if creds is None:
        # the device has no identity yet (edge makes it on its first start): no bridge yet
        text = "# edge: no device identity yet (first start pending): no fleet bridge\n"
        serial = None
    else:
        serial = creds.serial
        text = render(cfg.uplink, serial)
    if out is not None and str(out) == "-":
        click.echo(text, nl=False)
        return
    if serial is None:
        target = Path(out or (cfg.uplink.bridge.output if cfg.uplink.bridge else "/etc/mosquitto/conf.d/edge-uplink-bridge.conf"))
        target.write_text(text, encoding="utf-8")
    else:
        target = write(cfg.uplink, serial, out)
    bridge = cfg.uplink.bridge
    what = (f"bridge to {', '.join(bridge.addresses)}" if bridge and bridge.enabled and serial else "no bridge")
    click.echo(f"{target}: {what}")
