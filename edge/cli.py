"""The `edge` command line."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from . import config as config_mod
from . import credentials as credentials_mod
from . import paths

data_dir_option = click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
    help="data directory (default: $EDGE_DATA_DIR, else /var/lib/edge)",
)


def _load_config(path: Path) -> config_mod.Config:
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        for line in exc.problems:
            click.echo(line, err=True)
        raise SystemExit(2) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """edge: sensor events in, relay pulses out, the dashboard as a camera."""


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=paths.DEFAULT_CONFIG,
              show_default=True)
@data_dir_option
@click.option("--simulated", is_flag=True, help="use the simulated twin of every hardware driver")
def run(config_path: Path, data_dir: Path | None, simulated: bool) -> None:
    """Run the service (systemd starts this)."""
    from .memtune import tune_process
    from .service import main_run

    tune_process()
    cfg = _load_config(config_path)
    sys.exit(main_run(cfg, paths.data_dir(data_dir), simulated=simulated, config_path=config_path))


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=paths.DEMO_CONFIG,
              show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("var"), show_default=True)
def demo(config_path: Path, data_dir: Path) -> None:
    """Run the appliance on this machine with simulated hardware and its own MQTT broker."""
    from .demo_runner import run_demo, working_config
    from .memtune import tune_process

    tune_process()
    config_path = working_config(config_path, data_dir)
    cfg = _load_config(config_path)
    sys.exit(run_demo(cfg, data_dir, config_path))


@cli.command("check-config")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
def check_config(path: Path) -> None:
    """Validate a config file; print every problem with its key path and line."""
    _load_config(path)
    click.echo(f"{path}: ok")


@cli.group(invoke_without_command=True)
@data_dir_option
@click.pass_context
def credentials(ctx: click.Context, data_dir: Path | None) -> None:
    """Print the device credentials (creating them on first use)."""
    ctx.obj = paths.data_dir(data_dir)
    if ctx.invoked_subcommand is None:
        try:
            creds, _ = credentials_mod.load_or_create(ctx.obj)
        except PermissionError as exc:
            raise click.ClickException(f"cannot read credentials in {ctx.obj}: {exc.strerror} (run as the edge user or root)")
        from . import tls

        try:
            cert = tls.load_or_create(ctx.obj)
        except PermissionError as exc:
            raise click.ClickException(f"cannot read the certificate in {ctx.obj}/tls: {exc.strerror}")
        click.echo(f"user: {creds.user}")
        click.echo(f"password: {creds.password}")
        click.echo(f"serial: {creds.serial}")
        click.echo(f"uuid: {creds.device_uuid}")
        click.echo(f"tls fingerprint (SHA-256): {cert.fingerprint}")
        click.echo(f"sensor gateway (MQTT) user: {creds.gateway_user}")
        click.echo(f"sensor gateway (MQTT) password: {creds.gateway_password}")


@credentials.command("rotate")
@click.option("--gateway", is_flag=True, help="renew the sensor gateways' MQTT password instead (then run "
                                              "`edge broker-setup` as root and update the gateways)")
@click.pass_obj
def credentials_rotate(data_dir: Path, gateway: bool) -> None:
    """Generate a new password (the running service switches to it within a second). Run as
    root, the file stays the data dir owner's (the service user's)."""
    try:
        creds = credentials_mod.rotate(data_dir, gateway=gateway)
    except PermissionError as exc:
        raise click.ClickException(f"cannot write the credentials in {data_dir}: {exc.strerror} (run as the edge user or root)")
    if gateway:
        click.echo(f"sensor gateway (MQTT) user: {creds.gateway_user}")
        click.echo(f"sensor gateway (MQTT) password: {creds.gateway_password}")
        return
    click.echo(f"user: {creds.user}")
    click.echo(f"password: {creds.password}")


@cli.command("broker-setup")
@data_dir_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("/etc/mosquitto/edge"),
              show_default=True, help="where Mosquitto reads the accounts and TLS files")
@click.option("--group", default="mosquitto", show_default=True, help="the group Mosquitto runs as")
def broker_setup(data_dir: Path | None, out: Path, group: str) -> None:
    """Write the appliance broker's accounts and TLS files (root; edge-broker-setup.service
    runs it at every boot before Mosquitto). After `edge credentials rotate --gateway`, run it
    and `systemctl reload mosquitto`."""
    from . import broker_setup as broker_mod

    written = broker_mod.setup(paths.data_dir(data_dir), out, group or None)
    click.echo("wrote " + ", ".join(written))


from .receivers.cli import report  # noqa: E402
from .relays.cli import relay  # noqa: E402
from .sensors.cli import sources  # noqa: E402
from .store.cli import events  # noqa: E402
from .update.cli import update  # noqa: E402
from .uplink.cli import uplink  # noqa: E402

cli.add_command(relay)
cli.add_command(events)
cli.add_command(report)
cli.add_command(sources)
cli.add_command(update)
cli.add_command(uplink)


def main() -> None:
    cli(prog_name="edge")


if __name__ == "__main__":
    main()
