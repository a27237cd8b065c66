"""GPIO dry-contact inputs (gpiozero mock pins: NO/NC, debounce) and Modbus inputs polled
from a real pymodbus TCP server (discrete inputs, registers with scaling)."""

from __future__ import annotations

import asyncio
import logging

from edge.bus import SensorChanged

from .peers import free_port
from .sensor_helpers import wait_for

GPIO_TOML = """
[mqtt]
enabled = false

[[sensors]]
id = "gate"
kind = "contact"
source = "gpio"
gpio = { pin = 22, normally = "closed", debounce_ms = 40 }

[[sensors]]
id = "panic"
kind = "tamper"
source = "gpio"
gpio = { pin = 23, normally = "open", debounce_ms = 0 }
"""


async def test_gpio_inputs_nc_no_and_debounce(service_factory):
    async with service_factory(GPIO_TOML) as svc:
        sensors = svc.component("sensors")
        sub = svc.ctx.bus.subscribe(SensorChanged, name="test")
        changes: list[SensorChanged] = []

        async def collect() -> None:
            async for ev in sub:
                changes.append(ev)

        task = asyncio.create_task(collect())
        gate = sensors.gpio.pin("gate")
        panic = sensors.gpio.pin("panic")
        # at start, pulled up and nothing closing the circuit: the NC gate reads open, the NO panic input normal
        await wait_for(lambda: sensors.state("gate") and sensors.state("panic"), what="initial states")
        assert sensors.state("gate") == {"contact": False}
        assert sensors.state("panic") == {"tamper": False}
        # the NC gate contact closes the circuit (pin to ground): the gate is closed
        gate.drive_low()
        await wait_for(lambda: sensors.state("gate") == {"contact": True}, what="gate closed")
        n = len(changes)
        # contact chatter shorter than the 40 ms window: nothing reported
        for _ in range(5):
            gate.drive_high()
            gate.drive_low()
        await asyncio.sleep(0.2)
        assert len(changes) == n and sensors.state("gate") == {"contact": True}
        # a real opening, with bounce: one change, to open
        for _ in range(3):
            gate.drive_high()
            gate.drive_low()
        gate.drive_high()
        await wait_for(lambda: sensors.state("gate") == {"contact": False}, what="gate open")
        await asyncio.sleep(0.1)
        assert [c.state["contact"] for c in changes if c.sensor == "gate"][-2:] == [True, False]
        # NO panic button pressed: tamper (no debounce: at once)
        panic.drive_low()
        await wait_for(lambda: sensors.state("panic") == {"tamper": True}, what="panic")
        task.cancel()
        sub.close()


def _modbus_server(port: int):
    """A real pymodbus TCP server, device 3: discrete input 5 on, input register 2 = -125."""
    from pymodbus.server import ModbusTcpServer
    from pymodbus.simulator import DataType, SimData, SimDevice

    dev = SimDevice(3, simdata=([SimData(0, values=[False] * 16, datatype=DataType.BITS)],
                                [SimData(0, values=[False] * 5 + [True] + [False] * 10, datatype=DataType.BITS)],
                                [SimData(0, values=[0] * 32, datatype=DataType.REGISTERS)],
                                [SimData(0, values=[0, 0, 0x10000 - 125] + [0] * 29, datatype=DataType.REGISTERS)]))
    return ModbusTcpServer(dev, address=("127.0.0.1", port))


async def _write(port: int, fn) -> None:
    from pymodbus.client import AsyncModbusTcpClient

    c = AsyncModbusTcpClient("127.0.0.1", port=port)
    await c.connect()
    try:
        await fn(c)
    finally:
        c.close()


async def test_modbus_inputs_polled_and_scaled(service_factory):
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    toml = f"""
[mqtt]
enabled = false

[[sensors]]
id = "pump_run"
kind = "generic"
source = "modbus"
field = "running"
modbus = {{ url = "{url}", device_id = 3, table = "discrete", address = 5, poll_ms = 50 }}

[[sensors]]
id = "boiler"
kind = "temperature"
source = "modbus"
modbus = {{ url = "{url}", device_id = 3, table = "input", address = 2, scale = 0.1, signed = true, poll_ms = 50 }}

[[sensors]]
id = "valve"
kind = "contact"
source = "modbus"
modbus = {{ url = "{url}", device_id = 3, table = "coil", address = 4, invert = true, poll_ms = 50 }}

[[sensors]]
id = "tank"
kind = "generic"
source = "modbus"
field = "level"
modbus = {{ url = "{url}", device_id = 3, table = "holding", address = 7, scale = 0.5, offset = -10, poll_ms = 50 }}
"""
    server = _modbus_server(port)
    srv_task = asyncio.create_task(server.serve_forever())
    try:
        async with service_factory(toml, simulated=False) as svc:
            sensors = svc.component("sensors")
            await wait_for(lambda: all(sensors.state(s) for s in ("pump_run", "boiler", "valve", "tank")), what="first poll")
            assert sensors.state("pump_run") == {"running": True}
            assert sensors.state("boiler") == {"temperature": -12.5}
            assert sensors.state("valve") == {"contact": True}  # coil off, inverted
            assert sensors.state("tank") == {"level": -10.0}
            # another Modbus master changes the coil and the holding register
            await _write(port, lambda c: c.write_coil(4, True, device_id=3))
            await _write(port, lambda c: c.write_register(7, 150, device_id=3))
            await wait_for(lambda: sensors.state("valve") == {"contact": False}, what="coil")
            await wait_for(lambda: sensors.state("tank") == {"level": 65.0}, what="scaled register")
            readings = sensors.tracker.readings
            await asyncio.sleep(0.3)  # polls keep going; unchanged values are not readings
            assert sensors.tracker.readings == readings
            # the board goes away: the sensor keeps its last state, the health says why, polling resumes after
            await server.shutdown()
            await wait_for(lambda: not sensors.health().ok, timeout=10, what="health reports the board")
            assert f"127.0.0.1:{port}" in sensors.health().detail
            assert sensors.state("tank") == {"level": 65.0}
            server = _modbus_server(port)
            srv_task = asyncio.create_task(server.serve_forever())
            await wait_for(lambda: sensors.health().ok, timeout=15, what="board back")
            await wait_for(lambda: sensors.state("tank") == {"level": -10.0}, what="polled again after recovery")
    finally:
        await server.shutdown()
        srv_task.cancel()
