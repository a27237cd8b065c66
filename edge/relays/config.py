"""The ``[relays]`` config section: boards, and named channels on them.

    [relays.boards.main]              # a Waveshare 8-channel board on RS485
    type = "modbus_rtu"
    profile = "waveshare-8"           # a file in hw/boards/
    device = "/dev/ttyUSB0"
    baudrate = 9600
    device_id = 1

    [relays.boards.eth]               # its Ethernet variant: RTU framing over TCP
    type = "modbus_tcp"
    profile = "waveshare-8"
    host = "192.168.1.200"
    port = 4196
    framing = "rtu"

    [relays.boards.pi]                # relays on the Pi's own pins
    type = "gpio"

    [relays.channels.door_strike]
    board = "main"
    channel = 1                       # as printed on the board, from 1
    mode = "pulse"                    # pulse | follow | latch
    pulse_ms = 3000

    [relays.channels.buzzer]
    board = "pi"
    pin = 17                          # BCM number
    active_high = false

Checked here: an unknown board or profile, a channel out of the board's range, two channels
on one relay, serial settings on a TCP board and the like; each error names the key and line.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from hw.relays.profiles import ProfileError, get_profile

from ..section import KeyProblem, Section

NAME = r"^[A-Za-z][A-Za-z0-9_\-]{0,31}$"
MAX_PULSE_MS = 600_000


class BoardConfig(Section):
    type: Literal["modbus_rtu", "modbus_tcp", "gpio", "simulated"] = Field(
        description="modbus_rtu: RS485 serial; modbus_tcp: Ethernet; gpio: the Pi's pins; "
                    "simulated: a simulated Modbus TCP board served by this service (demo)")
    profile: str | None = Field(None, description="board profile (a file name in hw/boards/ without .toml)")
    channels: int | None = Field(None, ge=1, le=256, description="only for profiles that allow it (generic-coils)")
    device_id: int = Field(1, ge=1, le=247, description="Modbus device (slave) id")
    # modbus_rtu
    device: str | None = Field(None, description="serial port, e.g. /dev/ttyUSB0")
    baudrate: int = Field(9600, ge=1200, le=921600)
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    # modbus_tcp / simulated
    host: str | None = None
    port: int | None = Field(None, ge=0, le=65535, description="TCP port (502; Waveshare ETH: 4196); simulated: 0 = any free")
    framing: Literal["tcp", "rtu"] = Field("tcp", description="modbus_tcp: 'rtu' for RTU framing over TCP")
    # health
    timeout_ms: int = Field(300, ge=10, le=10_000, description="per request")
    poll_ms: int = Field(500, ge=50, le=60_000, description="health poll period")
    fail_polls: int = Field(3, ge=1, le=100, description="failed polls before the board is reported unreachable")

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                get_profile(v)
            except ProfileError as exc:
                raise ValueError(str(exc)) from None
        return v

    @model_validator(mode="after")
    def _per_type(self) -> "BoardConfig":
        problems: list[tuple[tuple[str, ...], str]] = []
        t = self.type
        if t == "gpio":
            for key in ("profile", "device", "host", "port", "channels"):
                if getattr(self, key) is not None:
                    problems.append(((key,), f"not used by a gpio board (channels give their own `pin`)"))
        else:
            if self.profile is None:
                problems.append((("profile",), f"required for a {t} board (e.g. \"waveshare-8\")"))
            elif self.channels is not None and not get_profile(self.profile).channels_configurable:
                problems.append((("channels",), f"profile {self.profile!r} has a fixed number of channels "
                                                f"({get_profile(self.profile).channels})"))
        if t == "modbus_rtu":
            if not self.device:
                problems.append((("device",), "required for a modbus_rtu board (the serial port, e.g. /dev/ttyUSB0)"))
            for key in ("host", "port"):
                if getattr(self, key) is not None:
                    problems.append(((key,), "not used by a modbus_rtu board (use `device`)"))
        if t == "modbus_tcp":
            if not self.host:
                problems.append((("host",), "required for a modbus_tcp board"))
            if self.device is not None:
                problems.append((("device",), "not used by a modbus_tcp board (use `host` and `port`)"))
        if t == "simulated" and self.device is not None:
            problems.append((("device",), "not used by a simulated board"))
        if problems:
            raise KeyProblem(problems)
        return self

    @property
    def channel_count(self) -> int | None:
        if self.type == "gpio":
            return None
        assert self.profile is not None
        return self.channels or get_profile(self.profile).channels


class ChannelConfig(Section):
    board: str
    channel: int | None = Field(None, ge=1, description="relay number on a Modbus board, from 1")
    pin: int | None = Field(None, ge=0, le=53, description="BCM pin on a gpio board")
    active_high: bool = Field(True, description="gpio: false when the relay module switches on a low pin")
    mode: Literal["pulse", "follow", "latch"] = "pulse"
    pulse_ms: int = Field(500, ge=1, le=MAX_PULSE_MS, description="default pulse length")
    safe_state: Literal["off", "on"] = Field(
        "off", description="at start, at stop: 'on' for fail-secure maglocks. On a gpio board it holds only while edge "
                           "runs: at stop and after a crash the pin is released and the relay module's own default "
                           "(normally off) takes over")
    label: str = Field("", max_length=64, description="what it drives, for people")


class RelaysConfig(Section):
    boards: dict[str, BoardConfig] = Field(default_factory=dict)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _channels_fit_boards(self) -> "RelaysConfig":
        import re

        problems: list[tuple[tuple[str, ...], str]] = []
        for kind, names in (("boards", self.boards), ("channels", self.channels)):
            for name in names:
                if not re.match(NAME, name):
                    problems.append(((kind, name), "name must start with a letter and hold only letters, digits, _ "
                                                   "and - (at most 32)"))
        # boards sharing a line: same settings, different device ids
        lines: dict[tuple[object, ...], tuple[str, BoardConfig]] = {}
        for name, b in self.boards.items():
            if b.type == "modbus_rtu":
                key: tuple[object, ...] = ("rtu", b.device)
            elif b.type == "modbus_tcp":
                key = ("tcp", b.host, b.port or (4196 if b.framing == "rtu" else 502))
            else:
                continue
            first = lines.get(key)
            if first is None:
                lines[key] = (name, b)
                continue
            other, ob = first
            for setting in ("baudrate", "parity", "stopbits", "framing", "timeout_ms"):
                if getattr(b, setting) != getattr(ob, setting):
                    problems.append((("boards", name, setting), f"board {other!r} on the same line has "
                                                                 f"{setting} = {getattr(ob, setting)!r}; one line, one setting"))
            if b.device_id == ob.device_id:
                problems.append((("boards", name, "device_id"), f"board {other!r} on the same line already "
                                                                 f"answers to device id {b.device_id}"))
        used: dict[tuple[str, int], str] = {}  # (board, relay), or ("gpio", pin): pins are the Pi's
        for name, ch in self.channels.items():
            loc = ("channels", name)
            board = self.boards.get(ch.board)
            if board is None:
                known = ", ".join(self.boards) or "none configured"
                problems.append((loc + ("board",), f"unknown board {ch.board!r} (boards: {known})"))
                continue
            if board.type == "gpio":
                if ch.pin is None:
                    problems.append((loc + ("pin",), f"required: board {ch.board!r} is a gpio board"))
                    continue
                if ch.channel is not None:
                    problems.append((loc + ("channel",), f"board {ch.board!r} is a gpio board: use `pin`"))
                slot, what = ch.pin, f"pin {ch.pin}"
            else:
                if ch.channel is None:
                    problems.append((loc + ("channel",), f"required: the relay number on board {ch.board!r}"))
                    continue
                if ch.pin is not None or not ch.active_high:
                    key = "pin" if ch.pin is not None else "active_high"
                    problems.append((loc + (key,), f"only for gpio boards; {ch.board!r} is {board.type}"))
                n = board.channel_count or 0
                if ch.channel > n:
                    problems.append((loc + ("channel",), f"{ch.channel} is out of range: board {ch.board!r} "
                                                         f"({board.profile}) has channels 1..{n}"))
                    continue
                slot, what = ch.channel, f"relay {ch.channel}"
            slot_key = ("gpio", slot) if board.type == "gpio" else (ch.board, slot)
            other = used.get(slot_key)
            key = "pin" if board.type == "gpio" else "channel"
            if other is not None:
                problems.append((loc + (key,), f"{what} on board {ch.board!r} is already used by channel {other!r}"))
            else:
                used[slot_key] = name
        if problems:
            raise KeyProblem(problems)
        return self
