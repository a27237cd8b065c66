"""The front panel in the real service: a fake SMBus decoding the HD44780 protocol (what a
person reads) and gpiozero MockFactory buttons (what a finger does)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from hw.platform import SimulatedPlatform
from edge import credentials as credentials_mod
from edge.bus import Alarm, SensorChanged

from .fake_smbus import FakeLcdBus
from .peers import digest_session, run_service_from_toml

PANEL_TOML = """
# the installer's comment survives a write-back
[lcd]
driver = "pcf8574"
address = 0x27
backlight_timeout_s = 0
home_cycle_s = 60

[buttons]
bounce_ms = 5
hold_s = 0.5

[network]
driver = "simulated"
rollback_s = 0.6  # short for the test
"""


class Clock:
    """A controllable monotonic clock for the menu (hold times, timeouts)."""

    def __init__(self) -> None:
        self.t = time.monotonic()

    def __call__(self) -> float:
        return self.t

    def advance(self, s: float) -> None:
        self.t += s


class Panel:
    def __init__(self, svc, bus: FakeLcdBus):
        self.svc = svc
        self.bus = bus
        self.comp = svc.component("setup")
        self.clock = Clock()
        self.comp.clock = self.clock
        self.comp.lcd.clock = self.clock

    def text(self) -> str:
        return self.bus.screen()

    async def wait_text(self, needle: str, timeout: float = 5.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            s = self.text()
            if needle in s:
                return s
            await asyncio.sleep(0.02)
        raise AssertionError(f"{needle!r} never on the LCD; it shows:\n{self.text()}")

    async def press(self, *names: str) -> None:
        for name in names:
            await self.comp.buttons.press(name)
            await asyncio.sleep(0.03)

    async def goto_menu(self, entry: str) -> None:
        """From home, SELECT into the main menu and DOWN until ``entry``, then SELECT."""
        await self.press("select")
        await self.wait_text("Menu")
        for _ in range(7):
            if f"> {entry}" in self.text():
                break
            await self.press("down")
            await asyncio.sleep(0.1)
        assert f"> {entry}" in await self.wait_text(f"> {entry}")
        await self.press("select")

    async def to_page(self, title: str) -> None:
        for _ in range(8):
            if self.text().startswith(title):
                return
            await self.press("down")
            await asyncio.sleep(0.1)
        raise AssertionError(f"no page {title!r}; LCD shows:\n{self.text()}")


@pytest.fixture
def fake_bus():
    return FakeLcdBus(0x27, 16, 2)


@pytest.fixture
def service_factory(tmp_path, fake_bus):
    """The service on a simulated platform whose I2C bus is the fake LCD bus."""

    def factory(toml_text: str = "", data_dir: Path | None = None, **kw):
        kw.setdefault("platform", SimulatedPlatform(i2c=lambda n: fake_bus))
        return run_service_from_toml(toml_text, data_dir or tmp_path / "data", **kw)

    return factory


async def _acknowledge(p: Panel) -> None:
    await p.press("select")
    await p.wait_text("IP address")


async def test_first_boot_shows_the_generated_password_until_noted(service_factory, fake_bus, tmp_path):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        creds = credentials_mod.load(svc.ctx.data_dir)
        assert creds is not None and not creds.acknowledged
        screen = await p.wait_text(creds.password)
        assert screen.splitlines()[1].strip() == creds.password
        assert "admin" in screen or "SELECT" in screen
        # buttons other than SELECT do not dismiss it
        await p.press("down", "back")
        assert creds.password in p.text()
        await p.press("select")
        await p.wait_text("IP address")
        assert credentials_mod.load(svc.ctx.data_dir).acknowledged
        assert creds.password not in p.text()
    path = credentials_mod.path_for(svc.ctx.data_dir)
    assert path.stat().st_mode & 0o777 == 0o600
    # another first boot: another password
    async with service_factory(PANEL_TOML, data_dir=tmp_path / "second-box") as svc2:
        again = credentials_mod.load(svc2.ctx.data_dir)
        assert again.password != creds.password
        await Panel(svc2, fake_bus).wait_text(again.password)


async def test_alarm_interrupts_the_open_menu(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        svc.ctx.bus.publish(SensorChanged("front_door", {"contact": True}, ("contact",)))
        await p.goto_menu("Sensors")
        await p.wait_text("front_door")
        assert "closed" in p.text()
        svc.ctx.bus.publish(Alarm("front_door:open", "front_door", True, "contact", "Door open"))
        screen = await p.wait_text("ALARM front_door")
        assert "Door open" in screen
        await p.press("select")  # acknowledge: back where the installer was
        await p.wait_text("front_door")
        assert "ALARM" not in p.text()
        assert svc.component("setup").data.alarms["front_door:open"].acked
        await svc.ctx.store.flush()  # the acknowledgement is on record
        from edge.store import query_events

        acks = query_events(svc.ctx.store.path, kind="alarm_ack")
        assert [(e.source, e.payload) for e in acks] == [("front-panel", {"alarm": "front_door:open"})]
        # the Alarms screen lists it as acknowledged
        await p.press("back")
        await p.wait_text("> Sensors")
        await p.press("down")
        await p.wait_text("> Alarms")
        await p.press("select")
        screen = await p.wait_text("Door open")
        assert screen.startswith("ACK front_door")


async def _set_static(p: Panel, last_octet_up: int) -> None:
    await p.goto_menu("Network")
    await p.wait_text("Network now")
    await p.to_page("Static address")
    await p.press("select")
    await p.wait_text("IP part 1/4")
    assert "192.168.1.50" in p.text()
    await p.press("select", "select", "select")
    await p.wait_text("IP part 4/4")
    for _ in range(last_octet_up):
        await p.press("up")
    await p.press("select")  # -> prefix
    await p.wait_text("prefix")
    await p.press("select")  # -> gateway editor
    await p.wait_text("Gw part 1/4")
    assert "192.168.1.1" in p.text()
    await p.press("select", "select", "select", "select")
    await p.wait_text("SEL=yes")


async def test_static_address_that_does_not_come_up_is_rolled_back(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        net = p.comp.network
        net.comes_up = lambda s: s.mode != "static"  # e.g. a cable into the wrong subnet
        await _set_static(p, 2)
        assert "192.168.1.52" in p.text()
        await p.press("select")
        screen = await p.wait_text("Rolled back", timeout=10)
        assert "DHCP" in screen
        assert [s.mode for s in net.applied] == ["static", "dhcp"]
        assert net.applied[0].address == "192.168.1.52/24"
        assert net.settings.mode == "dhcp"
        cfg_text = (svc.ctx.data_dir / "edge.toml").read_text()
        assert "192.168.1.52" not in cfg_text  # nothing written back


async def test_static_address_that_comes_up_is_written_back_keeping_comments(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        await _set_static(p, 1)
        await p.press("select")
        await p.wait_text("Network OK", timeout=10)
        cfg_path = svc.ctx.data_dir / "edge.toml"
        text = cfg_path.read_text()
        assert "# the installer's comment survives a write-back" in text
        assert "rollback_s = 0.6  # short for the test" in text
        from edge import config as config_mod

        cfg = config_mod.load(cfg_path)
        assert (cfg.network.mode, cfg.network.address, cfg.network.gateway) == ("static", "192.168.1.51/24", "192.168.1.1")
        assert p.comp.network.settings.address == "192.168.1.51/24"


async def test_factory_reset_needs_ten_second_hold_and_confirmation(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        data_dir = svc.ctx.data_dir
        old = credentials_mod.load(data_dir)
        await _acknowledge(p)
        (data_dir / "edge.db").write_bytes(b"events")
        cfg_path = data_dir / "edge.toml"
        shipped = cfg_path.read_text()
        # a change made on the box, to be wiped
        from hw.system import keep_factory_copy
        from edge import config as config_mod

        keep_factory_copy(cfg_path)
        config_mod.write_value(cfg_path, "lcd.home_cycle_s", 30.0)

        await p.goto_menu("System")
        await p.to_page("Factory reset")
        await p.wait_text("hold SEL 10s")
        sel = p.comp.buttons.pin("select")

        # a short hold (9 s) is not enough
        sel.drive_low()
        await p.wait_text("keep holding 10s")
        p.clock.advance(9.0)
        await p.wait_text("keep holding 1s")
        sel.drive_high()
        await p.wait_text("hold SEL 10s")
        assert p.comp.system.factory_resets == 0

        # the full 10 s: then a confirmation, which BACK refuses
        sel.drive_low()
        await p.wait_text("keep holding")
        p.clock.advance(10.1)
        await p.wait_text("Wipe all+reboot?")
        sel.drive_high()  # letting go is not a yes
        await asyncio.sleep(0.3)
        assert "Wipe all+reboot?" in p.text()
        await p.press("back")
        await p.wait_text("Factory reset")
        assert p.comp.system.factory_resets == 0 and (data_dir / "edge.db").exists()

        # again, and SELECT confirms
        sel.drive_low()
        await p.wait_text("keep holding")
        p.clock.advance(10.1)
        await p.wait_text("Wipe all+reboot?")
        sel.drive_high()
        await asyncio.sleep(0.05)
        await p.press("select")
        new = None
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            new = credentials_mod.load(data_dir)
            if new is not None and new.password != old.password:
                break
            await asyncio.sleep(0.05)
        assert new is not None and new.password != old.password
        assert not (data_dir / "edge.db").exists()
        assert cfg_path.read_text() == shipped
        assert p.comp.system.reboots == 1
        # rebooted into first boot: the new password on the screen
        await p.wait_text(new.password)


async def test_credentials_rotated_by_cli_switch_http_and_show_on_lcd(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        old = svc.password
        out = subprocess.run([sys.executable, "-m", "edge", "credentials", "--data-dir", str(svc.ctx.data_dir), "rotate"],
                             capture_output=True, text=True, check=True).stdout
        new = out.split("password: ")[1].strip()
        assert new != old
        await p.wait_text(new, timeout=5)  # shown until the installer notes it
        async with aiohttp.ClientSession() as http:
            async with digest_session(svc.user, old) as dig, dig.get(svc.base_url + "/api/lcd") as r:
                assert r.status == 401
            async with digest_session(svc.user, new) as dig, dig.get(svc.base_url + "/api/lcd") as r:
                assert r.status == 200
                assert new in "\n".join((await r.json())["lines"])


async def test_rotation_from_the_menu_switches_every_listener(service_factory, fake_bus):
    async with service_factory(PANEL_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        seen = []
        svc.ctx.credentials.listeners.append(lambda c: seen.append(c.password))
        old = svc.password
        await p.goto_menu("Credentials")
        await p.wait_text("User")
        await p.to_page("Password")
        assert old in p.text()
        await p.to_page("New password")
        await p.press("select")
        await p.wait_text("New password?")
        await p.press("select")
        deadline = time.monotonic() + 5
        while not seen and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert seen and seen[0] != old
        await p.wait_text(seen[0])
        async with aiohttp.ClientSession() as http:
            async with digest_session(svc.user, old) as dig, dig.get(svc.base_url + "/api/lcd") as r:
                assert r.status == 401
            async with digest_session(svc.user, seen[0]) as dig, dig.get(svc.base_url + "/api/lcd") as r:
                assert r.status == 200


async def test_http_panel_refuses_without_credentials_and_checks_input(service_factory, fake_bus):
    toml = PANEL_TOML.replace('driver = "pcf8574"', 'driver = "simulated"')
    async with service_factory(toml) as svc:
        for method, path in (("GET", "/api/lcd"), ("POST", "/api/buttons/select"), ("GET", "/panel")):
            async with aiohttp.ClientSession() as anon, anon.request(method, svc.base_url + path, json={}) as r:
                assert r.status == 401, path
            async with digest_session(svc.user, "not-it") as bad, bad.request(method, svc.base_url + path, json={}) as r:
                assert r.status == 401, path
        async with digest_session(svc.user, svc.password) as http:
            async with http.post(svc.base_url + "/api/buttons/enter", json={}) as r:
                assert r.status == 404
                assert "up, down, select, back" in (await r.json())["error"]
            async with http.post(svc.base_url + "/api/buttons/select", json={"hold_s": "forever"}) as r:
                assert r.status == 400
                assert "hold_s" in (await r.json())["error"]
            async with http.post(svc.base_url + "/api/buttons/select?hold_s=1", json={}) as r:
                assert r.status == 400 and "query string" in (await r.json())["error"]
            async with http.get(svc.base_url + "/api/lcd") as r:
                assert svc.password in (await r.json())["lines"][1]
            async with http.post(svc.base_url + "/api/buttons/select", json={}) as r:
                assert r.status == 200
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline:
                async with http.get(svc.base_url + "/api/lcd") as r:
                    lines = (await r.json())["lines"]
                if lines[0].startswith("IP address"):
                    break
                await asyncio.sleep(0.05)
            assert lines[0].startswith("IP address"), lines
            async with http.get(svc.base_url + "/panel") as r:
                assert r.status == 200 and "/api/buttons/" in await r.text()


RELAYS_TOML = """
[relays.boards.main]
type = "simulated"
profile = "waveshare-8"
port = 0

[relays.channels.gate]
board = "main"
channel = 3
mode = "pulse"
pulse_ms = 3000
label = "Gate"
"""


async def test_navigating_to_relays_and_select_pulses_the_channel(service_factory, fake_bus):
    # a wiring check with its own short pulse (default: each relay's pulse_ms, here 3 s)
    toml = PANEL_TOML.replace("[lcd]\n", "[lcd]\nrelay_test_pulse_ms = 500\n", 1)
    async with service_factory(toml + RELAYS_TOML) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        board = svc.component("relays").sim_servers["main"].board
        await p.goto_menu("Relays")
        await p.wait_text("gate")
        assert "off SEL=pulse" in p.text()
        assert not any(c == 3 for _, c, _ in board.history)
        await p.press("select")
        await p.wait_text("pulsed OK", timeout=5)
        await p.press("back")  # the result -> the relay page, which shows the relay on, then off
        await p.wait_text("off SEL=pulse", timeout=5)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(c == 3 and not on for _, c, on in board.history):
            await asyncio.sleep(0.02)
        ons = [t for t, c, on in board.history if c == 3 and on]
        offs = [t for t, c, on in board.history if c == 3 and not on]
        assert len(ons) == 1 and len(offs) == 1, board.history
        # the wiring check's short pulse ([lcd] relay_test_pulse_ms = 500), not the channel's 3 s
        assert 0.3 <= offs[0] - ons[0] <= 1.5
        assert {c for _, c, _ in board.history} == {3}


async def test_credentials_menu_shows_the_tls_fingerprint_and_the_gateway_account(service_factory, fake_bus):
    from edge import tls

    from .peers import free_port

    toml = PANEL_TOML + f'\n[web]\nhost = "127.0.0.1"\nport = {free_port()}\ntls = true\nhttps_port = {free_port()}\n'
    async with service_factory(toml) as svc:
        p = Panel(svc, fake_bus)
        await _acknowledge(p)
        cert = tls.load(svc.ctx.data_dir)
        creds = svc.ctx.credentials.get()
        await p.goto_menu("Credentials")
        await p.wait_text("User")
        await p.to_page("TLS SHA-256")
        await p.wait_text(cert.fingerprint[:16])  # the long line scrolls; it starts with the first bytes
        await p.to_page("MQTT gateway")
        assert creds.gateway_user in p.text()
        await p.to_page("Gateway passwd")
        assert creds.gateway_password in p.text()
        # /healthz shows the screen with the secrets masked
        assert creds.gateway_password not in svc.component("setup").health().detail
