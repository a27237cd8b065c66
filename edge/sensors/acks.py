"""Acknowledge after commit: what the MQTT ingest owes the broker, per connection ("lane").

A QoS 1 message is acknowledged (PUBACK) only once everything it produced (its reading, the
state change, an alarm: one store group, see ``Store.end_group``) is committed; a message
that produced nothing is acknowledged at once. Acknowledgements leave in the order the
messages arrived (MQTT 3.1.1 section 4.6), so one waiting message holds back the ones after
it, never the other way round. If edge dies before a message's commit, the broker still
holds it and delivers it again after the restart.

Telemetry waits up to ``store.telemetry_batch_ms`` for company before it commits; the
broker meanwhile stops sending once ``inflight_window`` messages wait for their PUBACK
(Mosquitto's ``max_inflight_messages``). So when half the window waits, the lane asks the
store to commit now: a trickle still costs one commit per telemetry window, a burst one
commit per half window, and the broker never stalls for lack of acknowledgements.

When the store is not writing (cannot open, writes fail, a write hangs), waiting for a commit
would stop the broker's flow and with it the door messages the relays act on: then messages
are acknowledged as soon as their records are queued in memory (where they wait for the
disk), and the health says so.

Duplicates: the broker delivers a message again (DUP flag set, same packet id) when edge did
not acknowledge it before a crash or a reconnect. Each lane keeps, per packet id, a digest
(CRC-32 of topic and payload) of the last message recorded with it, in memory and in the
store's ``ingest_seen`` table (committed in the same transaction as the message's records).
A message with DUP set whose packet id and digest match is recorded already: it is counted,
not recorded again, and acknowledged once the original's records are committed. A packet id
is only reused by the broker after the message that had it was acknowledged, so the match
cannot be an earlier, different message with the same id; only keys of the last
``seen_limit`` messages are loaded at start (far fewer than the 65,535 ids), so an old
message with the same id and content is not mistaken for it either.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from array import array
from collections import deque
from typing import Any, Callable

log = logging.getLogger("edge.mqtt")

MIDS = 65536
SEEN_LOAD_TIMEOUT_S = 2.0


def digest(topic: bytes, payload: bytes) -> int:
    return zlib.crc32(payload, zlib.crc32(topic))


class SeenKeys:
    """Per packet id: the digest of the last message recorded with it, and the seq of its
    store group (0: committed in an earlier run; -1: none)."""

    def __init__(self) -> None:
        self.digests = array("I", bytes(4 * MIDS))
        self.seqs = array("q", [-1]) * MIDS

    def load(self, keys: dict[int, int]) -> None:
        for mid, d in keys.items():
            if 0 < mid < MIDS:
                self.digests[mid] = d & 0xFFFFFFFF
                self.seqs[mid] = 0

    def match(self, mid: int, d: int) -> int:
        """The seq of the original's group when this message is recorded already, else -1."""
        if 0 < mid < MIDS and self.seqs[mid] >= 0 and self.digests[mid] == d:
            return self.seqs[mid]
        return -1

    def remember(self, mid: int, d: int, seq: int) -> None:
        if 0 < mid < MIDS:
            self.digests[mid] = d
            self.seqs[mid] = seq


class AckQueue:
    """The PUBACKs one connection owes, in arrival order, each waiting for a store seq."""

    def __init__(self, store: Callable[[], Any], window: int):
        self._store = store
        self.flush_at = max(1, window // 2)
        self.pending: deque[tuple[int, int, int]] = deque()  # (seq, mid, qos)
        self.send: Callable[[int, int], object] | None = None  # paho's ack(mid, qos) of the live connection
        self._flush_seq = 0  # the commit asked for and not yet done
        self.acked = 0
        self.early = 0  # acknowledged before their commit (store not writing)
        self._said_early = False

    def connected(self, send: Callable[[int, int], object]) -> None:
        self.send = send

    def disconnected(self) -> None:
        """The connection is gone: what it owed is owed no more (the broker delivers those
        messages again, DUP set, on the next connection)."""
        self.send = None
        self.pending.clear()
        self._flush_seq = 0

    def add(self, mid: int, qos: int, seq: int) -> None:
        """Message ``mid`` produced store group ``seq`` (0: nothing to wait for)."""
        store = self._store()
        if not self.pending and (seq <= 0 or store is None or seq <= store.committed):
            self._ack(mid, qos)
            return
        self.pending.append((seq, mid, qos))
        if store is None or not store.durable:
            self.release()
            return
        if len(self.pending) >= self.flush_at and self._flush_seq <= store.committed:
            store.commit_soon()  # the broker's window is filling up: do not wait for telemetry
            self._flush_seq = store.submitted

    def release(self) -> None:
        """After a commit (or a change of the store's health): acknowledge what may go."""
        pending = self.pending
        if not pending:
            return
        store = self._store()
        if store is None or not store.durable:
            if store is not None and not self._said_early:
                self._said_early = True
                log.warning("mqtt in: the store is not writing (%s): messages are acknowledged as they are "
                            "queued in memory until it writes again", store.problem)
            while pending:
                _, mid, qos = pending.popleft()
                self.early += 1
                self._ack(mid, qos)
            return
        self._said_early = False
        committed = store.committed
        while pending and pending[0][0] <= committed:
            _, mid, qos = pending.popleft()
            self._ack(mid, qos)

    def _ack(self, mid: int, qos: int) -> None:
        if qos and self.send is not None:
            self.send(mid, qos)
            self.acked += 1


class Deliveries:
    """One subscription's deliveries (a lane, a YoLink source): each QoS 1 message is
    recorded as one store group, remembered by its key, and its PUBACK owed to the
    connection's ``AckQueue``; a message delivered again and recorded already is counted."""

    def __init__(self, identifier: str, store: Callable[[], Any], window: int):
        self.identifier = identifier
        self._store = store
        self.seen = SeenKeys()
        self.seen_limit = min(32768, max(4096, 4 * window))
        self.duplicates = 0  # delivered again by the broker and recorded already: not recorded twice
        self._burst = 0  # duplicates in a row, not yet logged
        self.loaded = False

    def deliver(self, msg: Any, acks: AckQueue, handle: Callable[[bytes, bytes], None]) -> None:
        """One paho message, on the loop: ``handle(topic, payload)`` decodes it; what that
        queues in the store is one group, and the message's PUBACK waits for its commit."""
        mid, qos, raw_topic, payload = msg.mid, msg.qos, msg._topic, msg.payload  # noqa: SLF001 - bytes as sent
        if not qos:
            handle(raw_topic, payload)
            return
        d = digest(raw_topic, payload)
        if msg.dup:
            original = self.seen.match(mid, d)
            if original >= 0:  # recorded already: acknowledged once that record is committed
                self.duplicates += 1
                self._burst += 1
                acks.add(mid, qos, original)
                return
        if self._burst:
            self.said_duplicates()
        store = self._store()
        if store is None:
            handle(raw_topic, payload)
            acks.add(mid, qos, 0)
            return
        store.begin_group()
        try:
            handle(raw_topic, payload)
        finally:
            seq = store.end_group((self.identifier, mid, d))
        if seq < 0 and store.durable:
            return  # refused while the store is behind: left with the broker (delivered again)
        if seq > 0:
            self.seen.remember(mid, d, seq)
        acks.add(mid, qos, max(seq, 0))

    def said_duplicates(self) -> None:
        if self._burst:
            log.info("mqtt in %s: %d messages delivered again were recorded already: not recorded twice (%d in all)",
                     self.identifier, self._burst, self.duplicates)
            self._burst = 0

    async def load_seen(self) -> None:
        """The keys of the messages recorded last, before the first connection (the broker
        sends what was not acknowledged right after it). Without a writing store: none."""
        if self.loaded:
            return
        self.loaded = True
        store = self._store()
        if store is None:
            return
        try:
            keys = await asyncio.wait_for(store.seen_keys(self.identifier, self.seen_limit), SEEN_LOAD_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - duplicates may then be recorded twice, nothing is lost
            log.warning("mqtt in %s: keys of the messages recorded last not loaded (%s); a message the broker "
                        "delivers again may be recorded twice", self.identifier, exc or type(exc).__name__)
            return
        self.seen.load(keys)
