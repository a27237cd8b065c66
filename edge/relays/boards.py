"""Building relay boards from their config: one entry per board ``type`` in ``BOARD_TYPES``
(like the sensor adapters' table), each asking the platform for what it drives.

A ``Wiring`` is a board as built: its driver (a ``hw.relays`` ``RelayBoard``), the number
of each of its channels on it, and what it holds from the platform until ``detach``:

- ``gpio``: pins from ``platform.pin_factory`` (claimed at ``attach``: a pin in use fails the
  start, as on a Pi);
- ``modbus_rtu`` / ``modbus_tcp``: a line from ``platform.modbus`` (shared with the other
  boards and the Modbus inputs on it), published as ``interfaces.relay_board_line(name)`` so
  inputs on the board read through it;
- ``simulated``: a simulated board that is a real Modbus TCP server in this process (the demo),
  reached over a line like a ``modbus_tcp`` board once it listens (``attach``).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from hw.modbus import LineSpec, ModbusLine, ModbusLines
from hw.platform import Platform
from hw.relays.base import RelayBoard
from hw.relays.gpio import GpioBoard, GpioChannel
from hw.relays.profiles import get_profile

if TYPE_CHECKING:  # imported by the boards that use them (pymodbus: ~1.5 MB a GPIO-only config never loads)
    from hw.relays.sim import SimServer

from ..interfaces import relay_board_line
from .config import BoardConfig, ChannelConfig

log = logging.getLogger("edge.relays")


class Wiring:
    """Board ``name`` built from ``cfg`` with its ``channels`` (relay name -> config, in config
    order). ``driver`` and ``numbers`` (relay name -> channel number on the board) are set by
    the subclass for the board's type."""

    driver: RelayBoard
    numbers: dict[str, int]
    sim: SimServer | None = None  # the simulated board's server (tests reach its relays)

    def __init__(self, name: str, cfg: BoardConfig, channels: dict[str, ChannelConfig], platform: Platform):
        self.name = name
        self.cfg = cfg
        self.channels = channels
        self.platform = platform

    async def attach(self) -> None:
        """Claim what the board needs before its first read (may raise: start fails)."""

    async def detach(self) -> None:
        """Release it all (the stop's last step). Never raises."""
        await self.driver.close()


class GpioWiring(Wiring):
    """Relays on the Pi's pins. A pin holds its level only while this process has it: at
    detach (the stop's last step, after the safe state) gpiozero makes it an input without
    pull (``LGPIOPin.close`` claims it as an input), and when the process dies the kernel
    frees the line (Debian's kernel, the image's: the bcm2835 pin controller sets a freed
    line to input; Raspberry Pi OS kernels keep the last level unless
    ``pinctrl_bcm2835.persist_gpio_outputs=n``). Either way the relay module's own default
    (off on the usual modules) takes over, so a safe state "on" lasts while edge runs."""

    def __init__(self, name: str, cfg: BoardConfig, channels: dict[str, ChannelConfig], platform: Platform):
        super().__init__(name, cfg, channels, platform)
        for cname, c in channels.items():
            if c.safe_state == "on":
                log.warning("relay %s: safe_state \"on\" on gpio board %s holds only while edge runs; when it stops "
                            "the pin is released and the relay module falls to its own default (normally off). "
                            "For a lock that must stay powered, use the relay's NC contact with safe_state \"off\" "
                            "or a Modbus board", cname, name)
        spec = [GpioChannel(c.pin or 0, c.active_high, c.safe_state == "on") for c in channels.values()]
        self.driver = GpioBoard(name, spec, platform.pin_factory)
        self.numbers = {cname: i + 1 for i, cname in enumerate(channels)}

    async def attach(self) -> None:
        # gpio pins that cannot be claimed are a setup error: start() fails (READY withheld)
        await self.driver.open()


class ModbusWiring(Wiring):
    """A board on a Modbus line from the platform's registry of lines."""

    def __init__(self, name: str, cfg: BoardConfig, channels: dict[str, ChannelConfig], platform: Platform):
        from hw.relays.modbus import ModbusBoard

        super().__init__(name, cfg, channels, platform)
        assert cfg.profile is not None
        self.lines: ModbusLines = platform.modbus
        self.modbus = ModbusBoard(name, get_profile(cfg.profile), self._line(), cfg.device_id,  # type: ignore[arg-type]
                                  cfg.channel_count)
        self.driver = self.modbus
        self.numbers = {cname: c.channel or 0 for cname, c in channels.items()}

    @property
    def timeout_s(self) -> float:
        return self.cfg.timeout_ms / 1000

    def spec(self) -> LineSpec | None:
        raise NotImplementedError

    def _line(self) -> ModbusLine | None:
        spec = self.spec()
        if spec is None:
            return None
        line = self.lines.get(spec)
        self.lines.publish(relay_board_line(self.name), line, self.cfg.device_id)
        return line

    async def detach(self) -> None:
        await self.driver.close()
        if self.modbus.line is not None:
            self.lines.withdraw(relay_board_line(self.name))
            self.lines.release(self.modbus.line)
            self.modbus.line = None  # type: ignore[assignment]


class ModbusRtuWiring(ModbusWiring):
    def spec(self) -> LineSpec | None:
        c = self.cfg
        return LineSpec("serial", c.device or "", framing="rtu", baudrate=c.baudrate, parity=c.parity,
                        stopbits=c.stopbits, timeout_s=self.timeout_s)


class ModbusTcpWiring(ModbusWiring):
    def spec(self) -> LineSpec | None:
        c = self.cfg
        return LineSpec("tcp", c.host or "", c.port or (4196 if c.framing == "rtu" else 502), framing=c.framing,
                        timeout_s=self.timeout_s)


class SimulatedWiring(ModbusWiring):
    """The demo's board: its line is made once its server listens (the port may be 0: any)."""

    def __init__(self, name: str, cfg: BoardConfig, channels: dict[str, ChannelConfig], platform: Platform):
        from hw.relays.sim import SimBoard, SimServer

        assert cfg.profile is not None
        self.sim = SimServer({cfg.device_id: SimBoard(get_profile(cfg.profile), cfg.channel_count)},
                             host=cfg.host or "127.0.0.1", port=cfg.port or 0, framing=cfg.framing)
        super().__init__(name, cfg, channels, platform)

    def spec(self) -> LineSpec | None:
        if self.sim is None or self.sim.server is None:
            return None
        return LineSpec("tcp", self.sim.host, self.sim.port, framing=self.cfg.framing, timeout_s=self.timeout_s)

    async def attach(self) -> None:
        assert self.sim is not None
        if self.sim.server is not None:
            return
        await self.sim.start()  # a port in use fails the start; the next start tries again
        if self.modbus.line is None:
            self.modbus.line = self._line()  # type: ignore[assignment]
        log.info("simulated relay board %s (%s) listens on %s:%d", self.name, self.cfg.profile, self.sim.host,
                 self.sim.port)

    async def detach(self) -> None:
        await super().detach()
        if self.sim is not None:
            await self.sim.stop()


BOARD_TYPES: dict[str, type[Wiring]] = {
    "gpio": GpioWiring,
    "modbus_rtu": ModbusRtuWiring,
    "modbus_tcp": ModbusTcpWiring,
    "simulated": SimulatedWiring,
}


def build_board(name: str, cfg: BoardConfig, channels: dict[str, ChannelConfig], platform: Platform) -> Wiring:
    """Board ``name`` of the config with its channels (``[relays.channels.*]`` on it)."""
    return BOARD_TYPES[cfg.type](name, cfg, channels, platform)
