"""[relays] config: boards and named channels, and the mistakes an installer makes, each
named by key and line. Board profiles are data files: adding a board is adding a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge import config as config_mod
from edge.relays.config import RelaysConfig
from hw.relays.profiles import BOARDS_DIR, load_profile_file, load_profiles

BOARD = """\
[relays.boards.main]
type = "modbus_rtu"
profile = "waveshare-8"
device = "/dev/ttyUSB0"

[relays.boards.pi]
type = "gpio"
"""


def problems(text: str) -> list[str]:
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.loads(text, source="edge.toml")
    return e.value.problems


def test_a_good_relay_config_loads():
    cfg = config_mod.loads(BOARD + """
[relays.channels.siren]
board = "main"
channel = 8
mode = "latch"

[relays.channels.buzzer]
board = "pi"
pin = 17
active_high = false
""")
    assert cfg.relays.channels["siren"].channel == 8
    assert cfg.relays.boards["main"].baudrate == 9600
    assert cfg.relays.channels["buzzer"].active_high is False
    assert config_mod.loads("").relays == RelaysConfig()


def test_unknown_profile_names_key_and_line():
    (p,) = problems('[relays.boards.x]\ntype = "modbus_tcp"\nhost = "10.0.0.2"\nprofile = "acme-99"\n')
    assert p.startswith("edge.toml:4: relays.boards.x.profile:")
    assert "unknown board profile 'acme-99'" in p and "waveshare-8" in p


def test_channel_out_of_range():
    (p,) = problems(BOARD + '\n[relays.channels.zone9]\nboard = "main"\nchannel = 9\n')
    assert p.startswith("edge.toml:11: relays.channels.zone9.channel:")
    assert "9 is out of range" in p and "1..8" in p


def test_two_channels_on_one_relay_or_pin():
    ps = problems(BOARD + """
[relays.channels.siren]
board = "main"
channel = 3

[relays.channels.zone3]
board = "main"
channel = 3

[relays.channels.a]
board = "pi"
pin = 17

[relays.channels.b]
board = "pi"
pin = 17
""")
    assert ps[0].startswith("edge.toml:15: relays.channels.zone3.channel:")
    assert "relay 3 on board 'main' is already used by channel 'siren'" in ps[0]
    assert ps[1].startswith("edge.toml:23: relays.channels.b.pin:") and "'a'" in ps[1]


def test_wiring_mistakes_are_named():
    ps = problems(BOARD + """
[relays.boards.eth]
type = "modbus_tcp"
profile = "waveshare-8"
device = "/dev/ttyUSB1"

[relays.channels.ghost]
board = "nowhere"
channel = 1

[relays.channels.nopin]
board = "pi"
channel = 2
""")
    text = "\n".join(ps)
    assert "relays.boards.eth.host: required for a modbus_tcp board" in text
    assert "relays.boards.eth.device: not used by a modbus_tcp board" in text
    ps = problems(BOARD + '\n[relays.channels.ghost]\nboard = "nowhere"\nchannel = 1\n'
                          '\n[relays.channels.nopin]\nboard = "pi"\nchannel = 2\n')
    assert any(p.startswith("edge.toml:10: relays.channels.ghost.board: unknown board 'nowhere'") for p in ps)
    assert any("relays.channels.nopin.pin: required" in p for p in ps)
    (p,) = problems(BOARD + '\n[relays.channels.s]\nboard = "main"\nchannel = 1\nmode = "toggle"\n')
    assert p.startswith("edge.toml:12: relays.channels.s.mode:")
    (p,) = problems(BOARD + '\n[relays.channels.s]\nboard = "main"\nchannel = 1\npulse_ms = 0\n')
    assert p.startswith("edge.toml:12: relays.channels.s.pulse_ms:")


def test_every_shipped_profile_loads_and_says_how_to_pulse():
    profiles = load_profiles()
    assert {"waveshare-8", "waveshare-16", "waveshare-32", "eletechsup-r4d3b16", "generic-coils"} <= set(profiles)
    assert profiles["waveshare-32"].channels == 32
    ws = profiles["waveshare-8"].pulse
    assert ws is not None and ws.units_for(2000) == 20 and ws.units_for(250) is None
    el = profiles["eletechsup-r4d3b16"].pulse
    assert el is not None and el.units_for(3000) == 3 and el.units_for(1500) is None
    assert profiles["generic-coils"].pulse is None


def test_adding_a_board_is_adding_a_file(tmp_path: Path):
    text = (BOARDS_DIR / "generic-coils.toml").read_text().replace("channels = 8", "channels = 4")
    p = tmp_path / "acme-4.toml"
    p.write_text(text)
    prof = load_profile_file(p)
    assert prof.name == "acme-4" and prof.channels == 4
    p.write_text(text + "\nbogus = 1\n")
    with pytest.raises(Exception, match="bogus"):
        load_profile_file(p)


def test_boards_sharing_a_line_must_agree():
    ps = problems(BOARD + """
[relays.boards.second]
type = "modbus_rtu"
profile = "eletechsup-r4d3b16"
device = "/dev/ttyUSB0"
baudrate = 19200
device_id = 1
""")
    text = "\n".join(ps)
    assert "edge.toml:13: relays.boards.second.baudrate: board 'main' on the same line has baudrate = 9600" in text
    assert "edge.toml:14: relays.boards.second.device_id: board 'main' on the same line already answers" in text
