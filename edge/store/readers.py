"""Read-only queries on their own connection (the CLI, tests, status pages).

They never take the write lock, so they work while the service runs. Each query is its own
short read transaction: a reader that stays open (``follow``) does not pin the WAL.
These are blocking calls: from the event loop, run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from . import schema


@dataclass(frozen=True, slots=True)
class EventRow:
    id: int
    ts: float
    kind: str
    source: str
    payload: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "ts": self.ts, "kind": self.kind, "source": self.source, "payload": self.payload}


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    ts: float
    relay: str
    command: str
    outcome: str
    latency_ms: float | None
    detail: str


@dataclass(frozen=True, slots=True)
class HourlyRow:
    hour: int
    sensor: str
    field: str
    count: int
    sum: float
    min: float
    max: float

    @property
    def mean(self) -> float:
        return self.sum / self.count


class NoDatabase(FileNotFoundError):
    pass


def open_reader(path: str | Path) -> sqlite3.Connection:
    """A read-only connection; raises NoDatabase with a clear message when there is none."""
    p = Path(path)
    if not p.exists():
        raise NoDatabase(f"no database at {p} (has the service run with this data dir?)")
    conn = sqlite3.connect(f"{p.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA busy_timeout = 5000")
    have = schema.version(conn)
    if have == 0:
        conn.close()
        raise NoDatabase(f"{p} has no edge schema yet")
    return conn


def _conn(src: str | Path | sqlite3.Connection) -> tuple[sqlite3.Connection, bool]:
    if isinstance(src, sqlite3.Connection):
        return src, False
    return open_reader(src), True


def _event(row: tuple[Any, ...]) -> EventRow:
    i, ts, kind, source, payload = row
    return EventRow(i, ts, kind, source, json.loads(payload))


_COLS = "id, ts, kind, source, payload"


def query_events(src: str | Path | sqlite3.Connection, since: float | None = None, limit: int | None = 1000,
                 kind: str | None = None, source: str | None = None, until: float | None = None) -> list[EventRow]:
    """Events with ``ts >= since`` (and ``< until``), oldest first, at most ``limit``."""
    conn, own = _conn(src)
    try:
        where, args = ["1"], []
        for clause, value in (("ts >= ?", since), ("ts < ?", until), ("kind = ?", kind), ("source = ?", source)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_COLS} FROM events WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?"
        return [_event(r) for r in conn.execute(sql, (*args, -1 if limit is None else int(limit)))]
    finally:
        if own:
            conn.close()


def last_events(src: str | Path | sqlite3.Connection, n: int = 20, kind: str | None = None) -> list[EventRow]:
    """The newest ``n`` events (by id), oldest first."""
    conn, own = _conn(src)
    try:
        if kind is None:
            rows = conn.execute(f"SELECT {_COLS} FROM events ORDER BY id DESC LIMIT ?", (n,)).fetchall()
        else:
            rows = conn.execute(f"SELECT {_COLS} FROM events WHERE kind = ? ORDER BY id DESC LIMIT ?", (kind, n)).fetchall()
        return [_event(r) for r in reversed(rows)]
    finally:
        if own:
            conn.close()


def events_after(conn: sqlite3.Connection, after_id: int, limit: int = 1000, kind: str | None = None) -> list[EventRow]:
    """Events with id > after_id, in id order (what a follower has not seen yet)."""
    if kind is None:
        rows = conn.execute(f"SELECT {_COLS} FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
    else:
        rows = conn.execute(f"SELECT {_COLS} FROM events WHERE id > ? AND kind = ? ORDER BY id LIMIT ?",
                            (after_id, kind, limit))
    return [_event(r) for r in rows]


def tail(src: str | Path | sqlite3.Connection, n: int = 20, follow: bool = False, poll_s: float = 0.5,
         kind: str | None = None, stop: Any = None) -> Iterator[EventRow]:
    """The last ``n`` events, then (``follow``) every new one as it commits.

    ``stop`` (e.g. a threading.Event) ends the follow loop when set.
    """
    conn, own = _conn(src)
    try:
        last = 0
        for ev in last_events(conn, n, kind):
            last = ev.id
            yield ev
        if not follow:
            return
        if last == 0:
            last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        while stop is None or not stop.is_set():
            batch = events_after(conn, last, kind=kind)
            for ev in batch:
                last = ev.id
                yield ev
            if not batch:
                time.sleep(poll_s)
    finally:
        if own:
            conn.close()


def get_state(src: str | Path | sqlite3.Connection, sensor: str | None = None) -> dict[str, tuple[dict[str, Any], float]]:
    """Current state per sensor: {sensor: (state, ts)} (one sensor when given)."""
    conn, own = _conn(src)
    try:
        if sensor is None:
            rows = conn.execute("SELECT sensor, state, ts FROM state ORDER BY sensor")
        else:
            rows = conn.execute("SELECT sensor, state, ts FROM state WHERE sensor = ?", (sensor,))
        return {s: (json.loads(st), ts) for s, st, ts in rows}
    finally:
        if own:
            conn.close()


def query_audit(src: str | Path | sqlite3.Connection, since: float | None = None, limit: int = 1000,
                relay: str | None = None) -> list[AuditRow]:
    """Relay audit rows with ts >= since, oldest first."""
    conn, own = _conn(src)
    try:
        where, args = ["1"], []
        if since is not None:
            where.append("ts >= ?")
            args.append(since)
        if relay is not None:
            where.append("relay = ?")
            args.append(relay)
        sql = (f"SELECT id, ts, relay, command, outcome, latency_ms, detail FROM relay_audit "
               f"WHERE {' AND '.join(where)} ORDER BY ts, id LIMIT ?")
        return [AuditRow(*r) for r in conn.execute(sql, (*args, limit))]
    finally:
        if own:
            conn.close()


def query_hourly(src: str | Path | sqlite3.Connection, sensor: str | None = None, field: str | None = None,
                 since: float | None = None) -> list[HourlyRow]:
    """Hourly aggregates, oldest hour first."""
    conn, own = _conn(src)
    try:
        where, args = ["1"], []
        for clause, value in (("hour >= ?", None if since is None else int(since // 3600) * 3600),
                              ("sensor = ?", sensor), ("field = ?", field)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT hour, sensor, field, count, sum, min, max FROM hourly WHERE {' AND '.join(where)} ORDER BY hour, sensor, field"
        return [HourlyRow(*r) for r in conn.execute(sql, args)]
    finally:
        if own:
            conn.close()


def outbox_count(src: str | Path | sqlite3.Connection, queue: str | None = None) -> int:
    """Messages waiting in the outbox (in one queue: "" the uplink's, "receiver:<name>")."""
    conn, own = _conn(src)
    try:
        if queue is None:
            return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
        return conn.execute("SELECT count(*) FROM outbox WHERE queue = ?", (queue,)).fetchone()[0]
    finally:
        if own:
            conn.close()


def page_events(src: str | Path | sqlite3.Connection, *, kind: str | None = None, source: str | None = None,
                since: float | None = None, until: float | None = None, before_id: int | None = None,
                limit: int = 50) -> list[EventRow]:
    """One page of events, newest first: the ``limit`` newest with ``id < before_id`` (the
    next page starts below the last id of this one)."""
    conn, own = _conn(src)
    try:
        where, args = ["1"], []
        for clause, value in (("ts >= ?", since), ("ts < ?", until), ("kind = ?", kind), ("source = ?", source),
                              ("id < ?", before_id)):
            if value is not None:
                where.append(clause)
                args.append(value)
        sql = f"SELECT {_COLS} FROM events WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?"
        return [_event(r) for r in conn.execute(sql, (*args, int(limit)))]
    finally:
        if own:
            conn.close()


def last_audit(src: str | Path | sqlite3.Connection, *, relay: str | None = None, limit: int = 50) -> list[AuditRow]:
    """The newest relay audit rows, newest first."""
    conn, own = _conn(src)
    try:
        where, args = "1", []
        if relay is not None:
            where, args = "relay = ?", [relay]
        sql = (f"SELECT id, ts, relay, command, outcome, latency_ms, detail FROM relay_audit WHERE {where} "
               f"ORDER BY id DESC LIMIT ?")
        return [AuditRow(*r) for r in conn.execute(sql, (*args, int(limit)))]
    finally:
        if own:
            conn.close()


def field_readings(src: str | Path | sqlite3.Connection, sensor: str, field: str, since: float,
                   limit: int = 20_000) -> list[tuple[float, float]]:
    """(ts, value) of one numeric field of a sensor's readings since ``since``, oldest first."""
    conn, own = _conn(src)
    try:
        sql = ("SELECT ts, json_extract(payload, '$.' || ?) FROM events WHERE kind = 'sensor' AND source = ? "
               "AND ts >= ? ORDER BY ts LIMIT ?")
        out = []
        for ts, v in conn.execute(sql, (field, sensor, since, limit)):
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out.append((ts, float(v)))
        return out
    finally:
        if own:
            conn.close()
