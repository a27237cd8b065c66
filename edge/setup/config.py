"""Config sections of the front panel: [lcd], [buttons] and [network]."""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..section import Section


class LcdConfig(Section):
    enabled: bool = Field(True, description="drive the front-panel LCD and buttons")
    driver: Literal["auto", "pcf8574", "simulated"] = Field(
        "auto", description="auto: the platform's (simulated in `edge demo`/--simulated, else the PCF8574 I2C backpack)")
    i2c_bus: int = Field(1, ge=0, le=31, description="/dev/i2c-N")
    address: int = Field(0x27, ge=0x03, le=0x77, description="I2C address of the backpack (0x27 or 0x3F usually)")
    cols: Literal[16, 20] = 16
    rows: Literal[2, 4] = 2
    backlight_timeout_s: float = Field(120.0, ge=0, description="backlight off after this long without a button; 0 = always on")
    home_cycle_s: float = Field(4.0, ge=0.5, le=60, description="home screen shows the next item after this long")
    menu_timeout_s: float = Field(300.0, ge=10, description="back to the home screen after this long without a button")
    relay_test_pulse_ms: int | None = Field(None, ge=50, le=10_000,
                                            description="pulse length of the Relays wiring check (default: each relay's pulse_ms)")


class ButtonsConfig(Section):
    # BCM numbers (or gpiozero pin names); I2C uses GPIO2/3, so these stay clear of it
    up: int | str = 5
    down: int | str = 6
    select: int | str = 13
    back: int | str = 19
    bounce_ms: int = Field(30, ge=1, le=500, description="a contact must settle this long")
    hold_s: float = Field(1.0, gt=0, le=10, description="held this long = a hold event (fast steps in editors)")

    @model_validator(mode="after")
    def _distinct(self) -> "ButtonsConfig":
        pins = [str(self.up), str(self.down), str(self.select), str(self.back)]
        if len(set(pins)) != 4:
            raise ValueError(f"each button needs its own pin, got up={self.up} down={self.down} select={self.select} back={self.back}")
        return self


class NetworkConfig(Section):
    """What the installer set on the LCD; systemd-networkd or NetworkManager is told and keeps it."""

    driver: Literal["auto", "networkd", "nmcli", "simulated"] = Field(
        "auto", description="auto: the platform's (simulated in the demo, else networkd when it runs the "
                            "network and NetworkManager does not, else nmcli)")
    interface: str = Field("eth0", min_length=1)
    connection: str = Field("", description="NetworkManager connection name; empty: the one active on the interface")
    mode: Literal["dhcp", "static"] = "dhcp"
    address: str = Field("", description="static address with prefix, e.g. 192.168.1.50/24")
    gateway: str = ""
    dns: list[str] = Field(default_factory=list)
    rollback_s: float = Field(30.0, gt=0, le=600, description="a new address that is not up within this is rolled back")

    @field_validator("address")
    @classmethod
    def _cidr(cls, v: str) -> str:
        if v:
            try:
                ipaddress.IPv4Interface(v)
            except ValueError as exc:
                raise ValueError(f"not an IPv4 address with prefix like 192.168.1.50/24: {exc}") from None
            if "/" not in v:
                raise ValueError("give the prefix too, like 192.168.1.50/24")
        return v

    @field_validator("gateway")
    @classmethod
    def _gw(cls, v: str) -> str:
        if v:
            ipaddress.IPv4Address(v)
        return v

    @field_validator("dns")
    @classmethod
    def _dns(cls, v: list[str]) -> list[str]:
        for a in v:
            ipaddress.ip_address(a)
        return v

    @model_validator(mode="after")
    def _static_needs_address(self) -> "NetworkConfig":
        if self.mode == "static" and not self.address:
            raise ValueError("mode = \"static\" needs address (like 192.168.1.50/24)")
        return self
