"""What the writer thread is asked to do: the ops, and how each runs against the database.

An ``Op`` is queued by the event loop (``Store``) and run by the writer thread (``Writer``)
inside a batch's transaction. ``seq`` numbers the ops in the order they were queued; the
writer takes them in that order, so "everything up to seq N is committed" is one number
(``Store.committed``). A ``GROUP`` op holds the ops one MQTT message produced (its reading,
state change, alarm...) and the key that recognises the message if the broker delivers it
again: they commit in one transaction, so a message is either wholly recorded or not at all.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

# op codes
(EVENT, STATE, AUDIT, OUTBOX_PUT, OUTBOX_PEEK, OUTBOX_ACK, FLUSH, PRUNE, CHECKPOINT, CLOSE, GROUP, SEEN_KEYS, META_SET,
 META_GET) = range(14)
URGENT = frozenset({FLUSH, CLOSE, CHECKPOINT, PRUNE, SEEN_KEYS})


@dataclass(slots=True)
class Op:
    code: int
    args: tuple[Any, ...]
    fut: asyncio.Future[Any] | None
    t: float = field(default_factory=time.monotonic)
    window: float | None = None  # this op's own commit window (telemetry waits longer)
    seq: int = 0  # order of queueing (Store.submitted); 0 inside a group


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    queue: str = ""
    seq: int | None = None


SQL_EVENT = "INSERT INTO events (ts, kind, source, payload) VALUES (?, ?, ?, ?)"
SQL_STATE = (
    "INSERT INTO state (sensor, state, ts) VALUES (?, ?, ?) ON CONFLICT (sensor) DO UPDATE "
    "SET state = excluded.state, ts = excluded.ts WHERE excluded.ts >= state.ts"
)
SQL_AUDIT = "INSERT INTO relay_audit (ts, relay, command, outcome, latency_ms, detail) VALUES (?, ?, ?, ?, ?, ?)"
SQL_OUTBOX = "INSERT INTO outbox (ts, topic, payload, qos, retain, queue, seq) VALUES (?, ?, ?, ?, ?, ?, ?)"
SQL_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"
SQL_SEEN = (
    "INSERT INTO ingest_seen (lane, mid, digest, ts) VALUES (?, ?, ?, ?) ON CONFLICT (lane, mid) DO UPDATE "
    "SET digest = excluded.digest, ts = excluded.ts"
)


# a GROUP op's args: (members, seen); a member is (code, args, future), seen is None or
# (lane, packet id, digest)
Member = tuple[int, tuple[Any, ...], "asyncio.Future[Any] | None"]


def execute(conn: sqlite3.Connection, code: int, a: tuple[Any, ...]) -> Any:
    """Run one op (not a GROUP: the writer runs a group's members itself). Returns its value."""
    if code == EVENT:
        return conn.execute(SQL_EVENT, a[:4]).lastrowid
    if code == STATE:
        conn.execute(SQL_STATE, a)
        return None
    if code == AUDIT:
        return conn.execute(SQL_AUDIT, a).lastrowid
    if code == OUTBOX_PUT:
        return conn.execute(SQL_OUTBOX, a).lastrowid
    if code == OUTBOX_PEEK:
        rows = conn.execute("SELECT id, topic, payload, qos, retain, queue, seq FROM outbox WHERE queue = ? "
                            "ORDER BY id LIMIT ?", a).fetchall()
        return [OutboxMessage(i, t, bytes(p), q, bool(r), qu, sq) for i, t, p, q, r, qu, sq in rows]
    if code == META_SET:
        conn.execute(SQL_META, a)
        return None
    if code == META_GET:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", a).fetchone()
        return None if row is None else row[0]
    if code == OUTBOX_ACK:
        (ids,) = a
        n = 0
        for chunk in range(0, len(ids), 500):
            part = ids[chunk:chunk + 500]
            n += conn.execute(f"DELETE FROM outbox WHERE id IN ({','.join('?' * len(part))})", part).rowcount
        return n
    if code == SEEN_KEYS:
        lane, limit = a
        rows = conn.execute("SELECT mid, digest FROM ingest_seen WHERE lane = ? ORDER BY ts DESC LIMIT ?",
                            (lane, limit)).fetchall()
        return {mid: digest for mid, digest in reversed(rows)}
    if code in (FLUSH, CHECKPOINT, PRUNE, CLOSE):  # CHECKPOINT, PRUNE: after the commit (the writer's _post)
        return None
    raise ValueError(f"unknown store op {code}")


def write_seen(conn: sqlite3.Connection, seen: tuple[str, int, int]) -> None:
    """The key of a message whose group this is (lane, packet id, digest), with the time."""
    lane, mid, digest = seen
    conn.execute(SQL_SEEN, (lane, mid, digest, time.time()))


def describe(code: int, args: tuple[Any, ...]) -> str:
    names = {EVENT: "record_event", STATE: "set_state", AUDIT: "audit_relay", OUTBOX_PUT: "outbox_put",
             OUTBOX_PEEK: "outbox_peek", OUTBOX_ACK: "outbox_ack", GROUP: "message group", SEEN_KEYS: "seen_keys",
             META_SET: "meta_set", META_GET: "meta_get"}
    name = names.get(code, f"op {code}")
    if code == EVENT:
        return f"{name}({args[1]!r}, {args[2]!r})"
    if code == STATE:
        return f"{name}({args[0]!r})"
    if code == AUDIT:
        return f"{name}({args[1]!r})"
    return name
