"""The Device service with the real client (onvif-zeep-async): identity, network, scopes,
users, and SystemReboot restarting the service."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

from onvif import ONVIFCamera

from edge.onvif import netinfo

from .peers import free_port

CONFIG = """
[site]
name = "North gate"
location = "Depot 7"
[onvif]
discovery = false
hardware = "pi4"
extra_scopes = ["onvif://www.onvif.org/location/country/norway"]
"""


async def test_device_service_reports_the_real_device(service_factory, tmp_path):
    port = free_port()
    data_dir = tmp_path / "data"
    toml = CONFIG + f'[web]\nhost = "127.0.0.1"\nport = {port}\n'
    async with service_factory(toml, data_dir=data_dir) as svc:
        creds = svc.ctx.credentials.get()
        cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
        try:
            await cam.update_xaddrs()
            assert cam.xaddrs["http://www.onvif.org/ver10/media/wsdl"] == f"http://127.0.0.1:{port}/onvif/media_service"
            assert cam.xaddrs["http://www.onvif.org/ver10/deviceIO/wsdl"] == f"http://127.0.0.1:{port}/onvif/deviceio_service"
            dm = await cam.create_devicemgmt_service()
            info = await dm.GetDeviceInformation()
            assert info.SerialNumber == creds.serial and info.HardwareId == "pi4"
            first_serial = info.SerialNumber

            itfs = await dm.GetNetworkInterfaces()
            real = {i.name: i for i in netinfo.interfaces() if not i.loopback}
            assert {i.token for i in itfs} == set(real)
            for i in itfs:
                mac = Path(f"/sys/class/net/{i.token}/address").read_text().strip()
                assert i.Info.HwAddress == mac
                assert i.IPv4.Config.Manual[0].Address == real[i.token].ipv4

            scopes = {s.ScopeItem: s.ScopeDef for s in await dm.GetScopes()}
            assert scopes["onvif://www.onvif.org/name/North%20gate"] == "Fixed"
            assert scopes["onvif://www.onvif.org/location/Depot%207"] == "Fixed"
            assert scopes["onvif://www.onvif.org/Profile/Streaming"] == "Fixed"
            assert scopes["onvif://www.onvif.org/location/country/norway"] == "Configurable"
            assert all(" " not in s for s in scopes)

            assert (await dm.GetHostname()).Name == socket.gethostname()
            dns = await dm.GetDNS()
            assert dns.FromDHCP is False
            ntp = await dm.GetNTP()
            assert ntp.FromDHCP is False
            assert await dm.GetDiscoveryMode() == "NonDiscoverable"
            users = await dm.GetUsers()
            assert [(u.Username, u.UserLevel, u.Password) for u in users] == [(creds.user, "Administrator", None)]
            caps = await dm.GetServiceCapabilities()
            assert caps.Security.UsernameToken is True and caps.Security.HttpDigest is True
            sdt = await dm.GetSystemDateAndTime()
            assert sdt.UTCDateTime.Date.Year >= 2024

            # SystemReboot: answered, then the service stops (systemd starts it again)
            msg = await dm.SystemReboot()
            assert "Restarting" in msg
            await asyncio.wait_for(svc.task, 10)
            assert svc.supervisor.exit_code == 75  # systemd's Restart=on-failure starts it again
        finally:
            await cam.close()
    # same data: same identity after the "reboot"
    async with service_factory(toml, data_dir=data_dir) as svc:
        cam = ONVIFCamera("127.0.0.1", port, svc.user, svc.password)
        try:
            await cam.update_xaddrs()
            dm = await cam.create_devicemgmt_service()
            assert (await dm.GetDeviceInformation()).SerialNumber == first_serial
        finally:
            await cam.close()
