"""Topic names of one device (see uplink/config.py for the layout)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Topics:
    prefix: str
    device: str

    @property
    def base(self) -> str:
        return f"{self.prefix}/{self.device}"

    @property
    def availability(self) -> str:
        return f"{self.base}/availability"

    def sensor(self, sensor_id: str) -> str:
        return f"{self.base}/sensor/{sensor_id}"

    def sensor_availability(self, sensor_id: str) -> str:
        return f"{self.base}/sensor/{sensor_id}/availability"

    def relay(self, name: str) -> str:
        return f"{self.base}/relay/{name}"

    def relay_set(self, name: str) -> str:
        return f"{self.base}/relay/{name}/set"

    def relay_pulse(self, name: str) -> str:
        return f"{self.base}/relay/{name}/pulse"

    @property
    def event(self) -> str:
        return f"{self.base}/event"

    @property
    def cmd(self) -> str:
        return f"{self.base}/cmd"

    @property
    def reply(self) -> str:
        return f"{self.base}/cmd/reply"
