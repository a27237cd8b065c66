"""DeviceIO service (http://www.onvif.org/ver10/deviceIO/wsdl) and the relay outputs shared
with the Device service (both use tds:GetRelayOutputs / tds:SetRelayOutputState).

SetRelayOutputState drives the real relay service (``interfaces.RELAYS``), which audits
every command: Monostable + DelayTime -> ``pulse(name, ms)``; Bistable -> ``set(name, on)``;
``inactive`` always switches off. Relays idle open (their safe state). SetRelayOutputSettings
is kept across restarts (edge/onvif/kept.py).
"""

from __future__ import annotations

import asyncio
import logging

from . import ns as nsmod
from .core import Core, RelaySettings
from .ns import E
from .soap import Dispatcher, SoapFault, SoapRequest, receiver, sender

log = logging.getLogger("edge.onvif.deviceio")

TMD = nsmod.NS["tmd"]
MIN_DELAY_S = 0.1
MAX_DELAY_S = 3600.0


class DeviceIOService:
    def __init__(self, core: Core):
        self.core = core

    def register(self, d: Dispatcher) -> None:
        for name in ("GetServiceCapabilities", "GetRelayOutputOptions", "SetRelayOutputSettings", "GetDigitalInputs",
                     "GetVideoOutputs", "GetSerialPorts"):
            d.register(TMD, name, getattr(self, name))

    def capabilities_element(self):
        core = self.core
        return E("tmd:Capabilities", VideoSources=1, VideoOutputs=0, AudioSources=0, AudioOutputs=0,
                 RelayOutputs=len(core.relay_names()), SerialPorts=0, DigitalInputs=len(core.sensors()))

    # ---- shared with the Device service -----------------------------------------------
    def relay_elements(self, tag: str):
        out = []
        infos = {getattr(i, "name", None): i for i in self.core.relay_info()}
        for name in self.core.relay_names():
            s = self.core.settings_for(name, infos.get(name))
            out.append(E(tag, E("tt:Properties", E("tt:Mode", s.mode), E("tt:DelayTime", nsmod.xs_duration(s.delay_s)),
                                E("tt:IdleState", s.idle)), token=name))
        return out

    def _relay_token(self, token: str | None) -> str:
        if not token:
            raise sender("RelayOutputToken is required", "ter:InvalidArgVal", "ter:RelayToken")
        if token not in self.core.relay_names():
            raise sender(f"no relay output {token!r}", "ter:InvalidArgVal", "ter:RelayToken")
        return token

    async def set_state(self, req: SoapRequest) -> None:
        relays = self.core.relays
        name = self._relay_token(req.param("RelayOutputToken"))
        state = (req.param("LogicalState") or "").strip()
        if state not in ("active", "inactive"):
            raise sender(f"LogicalState must be active or inactive, got {state[:20]!r}", "ter:InvalidArgVal")
        infos = {getattr(i, "name", None): i for i in self.core.relay_info()}
        s = self.core.settings_for(name, infos.get(name))
        source = f"onvif:{req.http.remote or '?'}"
        if state == "active" and s.mode == "Monostable":
            # no DelayTime set by a client: the relay's own pulse_ms
            ms = int(round(s.delay_s * 1000)) if name in self.core.relay_settings else None
            result = await relays.pulse(name, ms, source=source)
        else:
            result = await relays.set(name, state == "active", source=source)
        if not getattr(result, "ok", False):
            raise receiver(f"relay {name} did not switch: {getattr(result, 'error', '') or 'unknown error'}",
                           "ter:Action", "ter:RelayFailed")
        log.info("relay %s %s via ONVIF from %s (%s)", name, state, req.http.remote, s.mode)

    async def set_settings(self, req: SoapRequest, token: str | None = None, props=None) -> None:
        name = self._relay_token(token if token is not None else req.param("RelayOutputToken"))
        props = props if props is not None else req.param_el("Properties")
        if props is None:
            raise sender("Properties are required", "ter:InvalidArgVal")
        mode = nsmod.text_anyns(props, "Mode") or ""
        delay_text = nsmod.text_anyns(props, "DelayTime") or "PT0S"
        idle = nsmod.text_anyns(props, "IdleState") or "open"
        if mode not in ("Monostable", "Bistable"):
            raise sender(f"relay Mode must be Monostable or Bistable, got {mode[:20]!r}", "ter:InvalidArgVal",
                         "ter:RelayMode")
        try:
            delay = nsmod.parse_duration(delay_text)
        except ValueError:
            raise sender(f"DelayTime {delay_text[:40]!r} is not an xs:duration", "ter:InvalidArgVal") from None
        if mode == "Monostable" and not MIN_DELAY_S <= delay <= MAX_DELAY_S:
            raise sender(f"DelayTime must be {MIN_DELAY_S}-{MAX_DELAY_S:.0f} s for a Monostable relay",
                         "ter:InvalidArgVal", "ter:DelayTimeNotSupported")
        if idle != "open":
            raise SoapFault("Sender", ("ter:InvalidArgVal", "ter:IdleStateNotSupported"),
                            "relays idle open (their safe state); IdleState closed is not supported")
        self.core.relay_settings[name] = RelaySettings(mode, delay, idle)
        await asyncio.to_thread(self.core.save_relay_settings)
        log.info("relay %s settings via ONVIF: %s %.3f s (kept)", name, mode, delay)

    # ---- DeviceIO operations ----------------------------------------------------------
    async def GetServiceCapabilities(self, req: SoapRequest):
        return E("tmd:GetServiceCapabilitiesResponse", self.capabilities_element())

    async def GetRelayOutputOptions(self, req: SoapRequest):
        token = req.param("RelayOutputToken")
        names = [self._relay_token(token)] if token else self.core.relay_names()
        return E("tmd:GetRelayOutputOptionsResponse", [
            E("tmd:RelayOutputOptions", E("tmd:Mode", "Monostable"), E("tmd:Mode", "Bistable"),
              E("tmd:DelayTimes", f"{MIN_DELAY_S:g} {MAX_DELAY_S:g}"), E("tmd:Discrete", False), token=n)
            for n in names
        ])

    async def SetRelayOutputSettings(self, req: SoapRequest):
        relay = req.param_el("RelayOutput")
        if relay is None:
            raise sender("RelayOutput is required", "ter:InvalidArgVal")
        await self.set_settings(req, token=relay.get("token") or "", props=nsmod.find_anyns(relay, "Properties"))
        return E("tmd:SetRelayOutputSettingsResponse")

    async def GetDigitalInputs(self, req: SoapRequest):
        return E("tmd:GetDigitalInputsResponse",
                 [E("tmd:DigitalInputs", token=getattr(s, "id", "")) for s in self.core.sensors() if getattr(s, "id", "")])

    async def GetVideoOutputs(self, req: SoapRequest):
        return E("tmd:GetVideoOutputsResponse")

    async def GetSerialPorts(self, req: SoapRequest):
        return E("tmd:GetSerialPortsResponse")
