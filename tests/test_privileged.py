"""The front panel's network, reboot and factory reset on the shipped image: the networkd
backend (a .network file and `networkctl reload`), and root's edge-ctl helper the unprivileged
service asks through request files. Real file systems and the real shell script; systemctl,
networkctl and ip are stand-ins that record their calls (the image test boots the real ones:
`make image-test`)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest

from hw.network import NetSettings, NetworkError, Networkd, ipv4_of, parse_networkd, render_networkd
from hw.platform import Platform
from hw.system import Privileged, PrivilegeError, RealSystem

from edge.setup.network import change

ROOT = Path(__file__).resolve().parent.parent
EDGE_CTL = ROOT / "image-build" / "overlay" / "usr" / "local" / "lib" / "edge" / "edge-ctl"
FACTORY_NETWORK = ROOT / "image-build" / "overlay" / "usr" / "local" / "share" / "edge" / "10-edge.network"


def stand_in(bin_dir: Path, name: str, script: str = "") -> None:
    """An executable `name` that appends its arguments to <bin_dir>/calls.log."""
    p = bin_dir / name
    p.write_text(f'#!/bin/sh\necho "{name} $*" >> "{bin_dir}/calls.log"\n{script}')
    p.chmod(0o755)


def calls(bin_dir: Path) -> list[str]:
    log = bin_dir / "calls.log"
    return log.read_text().splitlines() if log.exists() else []


def test_networkd_file_round_trips_and_matches_the_image_default(tmp_path):
    static = NetSettings("static", "192.168.1.50/24", "192.168.1.1", ("192.168.1.1", "9.9.9.9"))
    text = render_networkd("eth0", static)
    assert "Name=eth0" in text and "Address=192.168.1.50/24" in text and "DHCP=no" in text
    assert parse_networkd(text) == static
    assert parse_networkd(render_networkd("eth0", NetSettings("dhcp"))) == NetSettings("dhcp")
    # what the image ships (and a factory reset puts back) is what edge writes for DHCP
    assert FACTORY_NETWORK.read_text() == render_networkd("eth0", NetSettings("dhcp"))


async def test_networkd_backend_writes_reloads_and_reads_addresses(tmp_path):
    addr = {"dhcp": "192.168.1.77/24", "static": "192.168.1.50/24"}
    mode = ["dhcp"]  # what networkd has applied
    reloads = []

    async def reload() -> None:  # what networkd does on `networkctl reload`
        reloads.append(1)
        mode[0] = parse_networkd((tmp_path / "net" / "10-edge.network").read_text()).mode

    backend = Networkd("eth0", tmp_path / "net", reload=reload, addresses=lambda itf: ((addr[mode[0]],), True),
                       sys_net=tmp_path / "sys")
    st = await backend.status()
    assert st.settings == NetSettings("dhcp") and st.ip == "192.168.1.77" and st.connected
    target = NetSettings("static", "192.168.1.50/24", "192.168.1.1", ("192.168.1.1",))
    outcome = await change(backend, target, rollback_s=2, poll_s=0.05)
    assert outcome.ok, outcome
    assert reloads and (tmp_path / "net" / "10-edge.network").read_text() == render_networkd("eth0", target)
    assert (await backend.status()).settings == target


def test_kernel_addresses_of_loopback_and_a_missing_interface():
    assert ipv4_of("lo") == (("127.0.0.1/8",), True)
    with pytest.raises(NetworkError):
        ipv4_of("no-such-if0")


async def test_privileged_request_waits_for_root_and_times_out(tmp_path):
    priv = Privileged(tmp_path / "ctl", timeout_s=1.0, poll_s=0.02)

    async def root_takes_it() -> None:
        while not (tmp_path / "ctl" / "network-reload").exists():
            await asyncio.sleep(0.01)
        (tmp_path / "ctl" / "network-reload").unlink()

    await asyncio.gather(priv.request("network-reload"), root_takes_it())
    with pytest.raises(PrivilegeError, match="edge-ctl"):
        await priv.request("network-reload")  # nobody takes it
    with pytest.raises(ValueError):
        await priv.request("rm -rf /")
    # reboot and reset do not wait: root stops edge on the way
    system = RealSystem(tmp_path / "data", None, Privileged(tmp_path / "ctl2"))
    await system.reboot()
    assert (tmp_path / "ctl2" / "reboot").exists()
    await system.factory_reset()
    assert (tmp_path / "ctl2" / "factory-reset").exists()


def run_edge_ctl(tmp_path: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "EDGE_CTL_DIR": str(tmp_path / "ctl"),
        "EDGE_DATA_DIR": str(tmp_path / "data"),
        "EDGE_CONFIG": str(tmp_path / "etc" / "edge.toml"),
        "EDGE_NETWORK_FILE": str(tmp_path / "etc" / "network" / "10-edge.network"),
        "EDGE_NETWORK_FACTORY": str(FACTORY_NETWORK),
        "EDGE_NETWORKD_FILE": str(tmp_path / "networkd" / "10-edge.network"),
        "EDGE_BROKER_DIR": str(tmp_path / "mosquitto"),
    }
    return subprocess.run(["sh", str(EDGE_CTL)], env=env, capture_output=True, text=True, timeout=30)


def test_edge_ctl_reloads_reboots_and_factory_resets(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("systemctl", "networkctl"):
        stand_in(bin_dir, tool)
    ctl = tmp_path / "ctl"
    ctl.mkdir()
    (tmp_path / "networkd").mkdir()
    # nothing usable written by edge: root installs nothing, reloads nothing
    (ctl / "network-reload").write_text("1")
    res = run_edge_ctl(tmp_path, bin_dir)
    assert res.returncode == 0, res.stderr
    assert calls(bin_dir) == [] and not (ctl / "network-reload").exists()
    # edge's file: installed for networkd (which cannot read /etc/edge), then reloaded
    static = render_networkd("eth0", NetSettings("static", "10.0.2.15/24", "10.0.2.2", ("10.0.2.3",)))
    (tmp_path / "etc" / "network").mkdir(parents=True)
    (tmp_path / "etc" / "network" / "10-edge.network").write_text(static)
    (ctl / "network-reload").write_text("1")
    run_edge_ctl(tmp_path, bin_dir)
    assert calls(bin_dir) == ["networkctl reload"] and not (ctl / "network-reload").exists()
    installed = tmp_path / "networkd" / "10-edge.network"
    assert installed.read_text() == static and installed.stat().st_mode & 0o777 == 0o644

    (ctl / "reboot").write_text("1")
    run_edge_ctl(tmp_path, bin_dir)
    assert calls(bin_dir)[-1] == "systemctl reboot" and not (ctl / "reboot").exists()

    # factory reset: data wiped, config and network settings back to the shipped ones, reboot
    data, etc = tmp_path / "data", tmp_path / "etc"
    (data / "tls").mkdir(parents=True)
    (data / "credentials.json").write_text("{}")
    (data / "tls" / "key.pem").write_text("k")
    (etc / "edge.toml").write_text("changed on the box\n")
    (etc / "edge.toml.factory").write_text("shipped\n")
    (etc / "network" / "10-edge.network").write_text("[Network]\nAddress=10.9.9.9/24\n")
    (tmp_path / "mosquitto").mkdir()
    (tmp_path / "mosquitto" / "passwd").write_text("edge:x\n")
    (tmp_path / "mosquitto" / "acl").write_text("user edge\n")
    (ctl / "factory-reset").write_text("1")
    res = run_edge_ctl(tmp_path, bin_dir)
    assert res.returncode == 0, res.stderr
    assert calls(bin_dir)[-2:] == ["systemctl stop edge.service", "systemctl reboot"]
    assert data.is_dir() and not any(data.iterdir())
    assert (etc / "edge.toml").read_text() == "shipped\n" and not (etc / "edge.toml.factory").exists()
    assert (etc / "network" / "10-edge.network").read_text() == FACTORY_NETWORK.read_text()
    assert (tmp_path / "networkd" / "10-edge.network").read_text() == FACTORY_NETWORK.read_text()
    assert not (tmp_path / "mosquitto" / "passwd").exists() and (tmp_path / "mosquitto" / "acl").exists()
    assert not (ctl / "factory-reset").exists()
    # nothing asked: nothing done
    n = len(calls(bin_dir))
    run_edge_ctl(tmp_path, bin_dir)
    assert len(calls(bin_dir)) == n


def test_networkd_falls_back_to_the_wired_interface_present(tmp_path):
    sys_net = tmp_path / "sys"
    for name in ("lo", "wlan0", "end0"):
        (sys_net / name).mkdir(parents=True)
    assert Networkd("eth0", tmp_path, sys_net=sys_net).interface == "end0"
    assert Networkd("wlan0", tmp_path, sys_net=sys_net).interface == "wlan0"
    assert "Name=end0" in render_networkd(Networkd("eth0", tmp_path, sys_net=sys_net).interface, NetSettings("dhcp"))


def test_platform_picks_networkd_and_the_privileged_system_when_asked(tmp_path):
    p = Platform()
    backend = p.network("networkd", "eth0", "", NetSettings("dhcp"))
    assert isinstance(backend, Networkd)
    system = Platform().system(tmp_path, None, driver="systemd")
    assert isinstance(system, RealSystem)
