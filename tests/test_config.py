"""Config errors a person can act on: one message naming the key path and the line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge import config as config_mod

GOOD = """\
# site settings
[site]
name = "Warehouse"   # shown on the dashboard

[web]
port = 8080
"""


def problems(text: str) -> list[str]:
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.loads(text, source="edge.toml")
    return e.value.problems


def test_good_config_loads():
    cfg = config_mod.loads(GOOD)
    assert cfg.site.name == "Warehouse"
    assert cfg.web.port == 8080
    assert cfg.store.retention_days == 30


def test_typo_is_an_error_with_key_and_line():
    (p,) = problems("[site]\nname = 'x'\n\n[web]\nprot = 8080\n")
    assert p.startswith("edge.toml:5: web.prot:")
    assert "unknown key" in p


def test_wrong_type_names_key_line_and_what_was_expected():
    (p,) = problems("[web]\nhost = '0.0.0.0'\nport = 'eighty'\n")
    assert p.startswith("edge.toml:3: web.port:")
    assert "integer" in p and "'eighty'" in p


def test_out_of_range_value():
    (p,) = problems("[store]\nretention_days = 0\n")
    assert p.startswith("edge.toml:2: store.retention_days:")
    assert "greater than or equal to 1" in p


def test_broken_toml_line():
    (p,) = problems("[site]\nname = 'a'\nlocation = \n")
    assert p.startswith("edge.toml:3: invalid TOML")


def test_key_lines_follow_arrays_of_tables():
    text = "[[a]]\nx = 1\n[[a]]\nx = 2\n[a.b]\ny = 3\n"
    lines = config_mod.key_lines(text)
    assert lines[("a", 0, "x")] == 2
    assert lines[("a", 1, "x")] == 4
    assert lines[("a", 1, "b", "y")] == 6


def test_write_value_keeps_comments(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text(GOOD)
    config_mod.write_value(p, "site.name", "Depot")
    text = p.read_text()
    assert "# site settings" in text and "# shown on the dashboard" in text
    assert config_mod.load(p).site.name == "Depot"


def test_write_value_refuses_invalid(tmp_path):
    p = tmp_path / "edge.toml"
    p.write_text(GOOD)
    with pytest.raises(config_mod.ConfigError):
        config_mod.write_value(p, "web.port", 70000)
    assert p.read_text() == GOOD


def test_check_config_cli_exit_codes(tmp_path):
    good, bad = tmp_path / "good.toml", tmp_path / "bad.toml"
    good.write_text(GOOD)
    bad.write_text("[web]\nport = -1\n")
    ok = subprocess.run([sys.executable, "-m", "edge", "check-config", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0 and "ok" in ok.stdout
    ko = subprocess.run([sys.executable, "-m", "edge", "check-config", str(bad)], capture_output=True, text=True)
    assert ko.returncode != 0
    assert f"{bad}:2: web.port:" in ko.stderr


def test_demo_config_is_valid():
    from edge.paths import DEMO_CONFIG

    config_mod.load(DEMO_CONFIG)


PIN_CLASH = """\
[relays.boards.pi]
type = "gpio"

[relays.channels.buzzer]
board = "pi"
pin = 17

[[sensors]]
id = "gate"
source = "gpio"
gpio = { pin = "GPIO17" }
"""


def test_a_pin_claimed_twice_names_both_keys_and_lines(tmp_path):
    """On a Pi the second claim fails at start (GPIOPinInUse); check-config says so first."""
    (p,) = problems(PIN_CLASH)
    assert p.startswith("edge.toml:11: sensors[0].gpio.pin:"), p
    assert "GPIO 17" in p and "relays.channels.buzzer.pin (edge.toml:6)" in p
    bad = tmp_path / "clash.toml"
    bad.write_text(PIN_CLASH)
    r = subprocess.run([sys.executable, "-m", "edge", "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode != 0
    assert r.stderr.strip().count("\n") == 0 and "sensors[0].gpio.pin" in r.stderr and "relays.channels.buzzer.pin" in r.stderr


def test_lcd_i2c_pins_and_the_gpio_uart_are_claimed_too():
    (p,) = problems("[lcd]\ni2c_bus = 1\n\n[buttons]\nup = 3\ndown = 6\nselect = 13\nback = 19\n")
    assert p.startswith("edge.toml:5: buttons.up:") and "GPIO 3" in p and "lcd.i2c_bus (edge.toml:2)" in p
    uart = ('[relays.boards.rs485]\ntype = "modbus_rtu"\nprofile = "waveshare-8"\ndevice = "/dev/ttyAMA0"\n\n'
            '[[sensors]]\nid = "door"\nsource = "gpio"\ngpio = { pin = "BOARD8" }\n')  # header pin 8 = GPIO 14 (TXD)
    (p,) = problems(uart)
    assert "sensors[0].gpio.pin" in p and "GPIO 14" in p and "relays.boards.rs485.device (edge.toml:4)" in p


def test_one_serial_line_with_two_settings_is_an_error():
    text = ('[relays.boards.rs485]\ntype = "modbus_rtu"\nprofile = "waveshare-8"\ndevice = "/dev/ttyUSB0"\n\n'
            '[[sensors]]\nid = "t1"\nkind = "temperature"\nsource = "modbus"\n'
            'modbus = { url = "rtu:///dev/ttyUSB0?baudrate=19200", table = "input" }\n')
    (p,) = problems(text)
    assert p.startswith("edge.toml:10: sensors[0].modbus.url:") and "/dev/ttyUSB0" in p and "relays.boards.rs485.device" in p
    same = text.replace("?baudrate=19200", "?baudrate=9600")
    config_mod.loads(same)  # the same line with the same settings is shared, as the relay board's line


def test_rule_naming_an_unknown_relay_or_sensor():
    text = ('[[sensors]]\nid = "door"\nkind = "contact"\ntopic = "z/door"\n\n'
            '[[rules]]\nsensor = "door"\nactions = [{ pulse = "sirne", ms = 500 }]\n\n'
            '[[rules]]\nsensor = "dor"\nactions = [{ alarm = "x" }]\n')
    ps = problems(text)
    assert any(p.startswith("edge.toml:8: rules[0].actions[0].pulse:") and "unknown relay 'sirne'" in p for p in ps), ps
    assert any(p.startswith("edge.toml:11: rules[1].sensor:") and "'dor'" in p for p in ps), ps


def test_shipped_appliance_config_is_valid():
    config_mod.load(Path(__file__).resolve().parent.parent / "image-build" / "edge.toml")


def test_rule_pulse_lengths_the_relay_service_refuses_and_ms_where_it_means_nothing():
    relays = '[relays.boards.pi]\ntype = "gpio"\n\n[relays.channels.strike]\nboard = "pi"\npin = 17\npulse_ms = 3000\n\n'
    sensor = '[[sensors]]\nid = "door"\nkind = "contact"\ntopic = "z/door"\n\n'
    cfg = config_mod.loads(relays + sensor + '[[rules]]\nsensor = "door"\nactions = [{ pulse = "strike" }]\n')
    assert cfg.rules[0].actions[0].ms is None, "no length: the relay's own pulse_ms"
    ps = problems(relays + sensor + '[[rules]]\nsensor = "door"\nactions = [{ pulse = "strike", ms = 900000 }]\n')
    assert any(p.startswith("edge.toml:16: rules[0].actions[0].ms:") and "600000 ms at most" in p for p in ps), ps
    ps = problems(relays + sensor + '[[rules]]\nsensor = "door"\nactions = [{ follow = "strike", ms = 500 }]\n')
    assert any(p.startswith("edge.toml:16: rules[0].actions[0]") and "a follow action has none" in p for p in ps), ps
