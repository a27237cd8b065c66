"""The hardware platform: what edge runs on, built once at start, real or simulated.

Like gpiozero's pin factory, this is the one seam between edge and the machine. Components
ask it for what they drive and never decide "real or simulated" themselves:

- ``pin_factory``: the gpiozero pin factory shared by relays, inputs and buttons (on a Pi the
  default lgpio factory; simulated, one ``MockFactory`` for all of them, so a pin claimed
  twice fails the same way it fails on a Pi: ``GPIOPinInUse``);
- ``i2c_bus(n)`` and ``char_display(...)``: the LCD's bus and display;
- ``modbus``: the registry of Modbus lines shared by relay boards and Modbus inputs;
- ``network(...)``: the wired interface's addressing backend;
- ``system(...)``: reboot and factory reset.

Tests build a ``SimulatedPlatform`` with their own fakes (an SMBus, a network that does not
come up, ...) and hand it to ``edge.service.build_service``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Awaitable, Callable

from .lcd import CharDisplay, Hd44780Pcf8574, SimulatedDisplay, SMBusLike
from .modbus import ModbusLines, SimulatedModbusLines
from .network import NetSettings, NetworkBackend, Networkd, Nmcli, SimulatedNetwork, default_driver
from .system import Privileged, RealSystem, SimulatedSystem, SystemControl

log = logging.getLogger("hw.platform")

DisplayFactory = Callable[[], CharDisplay]


def _smbus(bus_number: int) -> SMBusLike:
    import smbus2

    return smbus2.SMBus(bus_number)


class Platform:
    """The real machine (a Raspberry Pi). ``simulated`` platforms override the parts below."""

    simulated = False

    def __init__(self, *, i2c: Callable[[int], SMBusLike] | None = None, network: NetworkBackend | None = None,
                 system: SystemControl | None = None) -> None:
        self._i2c = i2c or _smbus
        self._network = network
        self._system = system
        self.modbus: ModbusLines = self._make_modbus()

    def _make_modbus(self) -> ModbusLines:
        return ModbusLines()

    # ---- GPIO ------------------------------------------------------------------------
    @property
    def pin_factory(self) -> Any:
        """gpiozero's pin factory for every GPIO user (None: gpiozero's default, lgpio on a Pi)."""
        return None

    # ---- I2C and the character LCD -----------------------------------------------------
    def i2c_bus(self, number: int) -> SMBusLike:
        return self._i2c(number)

    def char_display(self, driver: str, *, i2c_bus: int, address: int, cols: int,
                     rows: int) -> tuple[DisplayFactory, SimulatedDisplay | None]:
        """The LCD for ``driver`` ("auto", "pcf8574" or "simulated") as a factory the LCD's
        writer thread calls (again after an error); the simulated display is returned too so a
        status page can show it."""
        if driver == "auto":
            driver = self.default_display
        if driver == "simulated":
            sim = SimulatedDisplay(cols, rows)
            return (lambda: sim), sim
        if driver == "pcf8574":
            return (lambda: Hd44780Pcf8574(self.i2c_bus(i2c_bus), address, cols, rows)), None
        raise ValueError(f"unknown lcd driver {driver!r} (pcf8574 or simulated)")

    default_display = "pcf8574"

    # ---- network and system --------------------------------------------------------------
    def network(self, driver: str, interface: str, connection: str, configured: NetSettings) -> NetworkBackend:
        """The addressing backend for ``driver`` ("auto", "networkd", "nmcli" or "simulated")."""
        if self._network is None:
            if driver == "auto":
                self._network = self._make_network(interface, connection, configured)
            elif driver == "simulated":
                self._network = SimulatedNetwork(configured)
            elif driver == "nmcli":
                self._network = Nmcli(interface, connection)
            elif driver == "networkd":
                self._network = self._networkd(interface)
            else:
                raise ValueError(f"unknown network driver {driver!r} (networkd, nmcli or simulated)")
        return self._network

    def _networkd(self, interface: str) -> Networkd:
        priv = Privileged.installed()  # the appliance: networkctl reload through root's edge-ctl unit
        return Networkd(interface, reload=(lambda: priv.request("network-reload")) if priv is not None else None)

    def _make_network(self, interface: str, connection: str, configured: NetSettings) -> NetworkBackend:
        if default_driver() == "networkd":
            return self._networkd(interface)
        return Nmcli(interface, connection)

    def system(self, data_dir: Path, config_path: Path | None,
               on_reboot: Callable[[], Awaitable[None]] | None = None, driver: str = "auto") -> SystemControl:
        """Reboot and factory reset for ``driver`` ("auto": the platform's, "systemd" or
        "simulated")."""
        if self._system is None:
            if driver == "auto":
                self._system = self._make_system(data_dir, config_path, on_reboot)
            elif driver == "systemd":
                self._system = RealSystem(data_dir, config_path, Privileged.installed())
            elif driver == "simulated":
                self._system = SimulatedSystem(data_dir, config_path, on_reboot=on_reboot)
            else:
                raise ValueError(f"unknown system driver {driver!r} (systemd or simulated)")
        return self._system

    def _make_system(self, data_dir: Path, config_path: Path | None,
                     on_reboot: Callable[[], Awaitable[None]] | None) -> SystemControl:
        return RealSystem(data_dir, config_path, Privileged.installed())

    def close(self) -> None:
        """Release what the platform holds (Modbus lines)."""
        for line in list(self.modbus.lines.values()):
            line.close()


class SimulatedPlatform(Platform):
    """Simulated hardware: mock GPIO pins (one factory for everyone), a simulated LCD, Modbus
    inputs from an in-memory bank (relay boards still talk to real Modbus servers: the
    simulated board is one), network settings in memory, a reboot that only calls back."""

    simulated = True
    default_display = "simulated"

    def __init__(self, *, pin_factory: Any = None, i2c: Callable[[int], SMBusLike] | None = None,
                 network: NetworkBackend | None = None, system: SystemControl | None = None,
                 keep_on_reset: tuple[str, ...] = ()) -> None:
        super().__init__(i2c=i2c, network=network, system=system)
        self._pins = pin_factory
        self.keep_on_reset = keep_on_reset

    def _make_modbus(self) -> ModbusLines:
        return SimulatedModbusLines()

    @property
    def pin_factory(self) -> Any:
        if self._pins is None:
            from .relays.gpio import mock_factory

            self._pins = mock_factory()
        return self._pins

    def i2c_bus(self, number: int) -> SMBusLike:
        if self._i2c is _smbus:
            raise OSError(f"no I2C bus {number} in simulation (give SimulatedPlatform an i2c factory)")
        return self._i2c(number)

    def _make_network(self, interface: str, connection: str, configured: NetSettings) -> NetworkBackend:
        return SimulatedNetwork(configured)

    def _make_system(self, data_dir: Path, config_path: Path | None,
                     on_reboot: Callable[[], Awaitable[None]] | None) -> SystemControl:
        return SimulatedSystem(data_dir, config_path, on_reboot=on_reboot, keep=self.keep_on_reset)

    def close(self) -> None:
        super().close()
        if self._pins is not None:
            try:
                self._pins.close()
            except Exception:  # noqa: BLE001 - closing mock pins never matters more than the stop
                pass


def make_platform(simulated: bool, **kw: Any) -> Platform:
    return SimulatedPlatform(**kw) if simulated else Platform(**kw)
