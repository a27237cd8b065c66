"""Reading a busy MQTT connection in batches.

As aiomqtt drives paho, every readable event on the socket reads one MQTT packet, and paho
reads a packet with at least three ``recv`` calls (the command byte, each byte of the
remaining length, the rest). At 2,000 readings a second that was ~6,000 system calls and
2,000 turns of the event loop, about two thirds of the loop's time per reading here (the
decoding, rules and store records took the other third).

``read_in_batches`` gives one paho client a receive buffer: one ``recv`` of up to ``CHUNK``
bytes, whole packets then taken from memory, up to ``max_packets`` in one readable event.
What is left in the buffer is read in the next turn of the loop (``call_soon``), so another
connection's socket (the state sensors' lane) is read in between: a door message waits for
at most one batch. paho keeps a packet that is only partly in the buffer and asks again,
so packets split across reads are whole when handled, as before.

It sets paho's ``_sock_recv`` and ``loop_read`` on the instance (paho-mqtt 2.x; aiomqtt
2.5 calls ``loop_read`` from its socket callback, and hands a failure to its
``_disconnected`` future, which this does too for the reads it schedules itself).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiomqtt

log = logging.getLogger("edge.mqtt")

CHUNK = 65536
MQTT_ERR_SUCCESS = 0


def read_in_batches(client: aiomqtt.Client, max_packets: int = 32) -> None:
    """Call before connecting (a new paho client per connection: the buffer goes with it)."""
    paho = client._client  # noqa: SLF001 - see the module's note
    sock_recv = paho._sock_recv  # noqa: SLF001 - the bound original: SSL "want read" -> BlockingIOError
    loop_read = paho.loop_read
    buf = bytearray()
    scheduled = False

    def buffered_recv(bufsize: int) -> bytes:
        if not buf:
            data = sock_recv(CHUNK)  # BlockingIOError when there is nothing: paho's "again"
            if not data:
                return data  # the broker closed the connection
            buf.extend(data)
        out = bytes(buf[:bufsize])
        del buf[:bufsize]  # O(1) at the front of a bytearray
        return out

    def batched_read(max_packets_: int = 1) -> Any:
        rc = loop_read()
        n = 1
        while rc == MQTT_ERR_SUCCESS and buf and n < max_packets:
            rc = loop_read()
            n += 1
        if rc == MQTT_ERR_SUCCESS and buf:
            _later()
        return rc

    def _later() -> None:
        nonlocal scheduled
        if not scheduled:
            scheduled = True
            client._loop.call_soon(_continue)  # noqa: SLF001

    def _continue() -> None:
        nonlocal scheduled
        scheduled = False
        if paho._sock is None:  # noqa: SLF001 - disconnected meanwhile
            buf.clear()
            return
        try:
            batched_read()
        except Exception as exc:  # noqa: BLE001 - as aiomqtt's own socket callback does
            disconnected = client._disconnected  # noqa: SLF001
            if not disconnected.done():
                disconnected.set_exception(exc)

    paho._sock_recv = buffered_recv  # noqa: SLF001
    paho.loop_read = batched_read
