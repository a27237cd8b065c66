"""Hourly aggregates (sensor, field, hour: count, sum, min, max) of numeric sensor readings.

Updating the ``hourly`` table with every event would rewrite one more page into the WAL with
every commit (at low rates every event is its own commit). Instead the writer folds committed
events into memory and writes the aggregates in one small transaction every ``flush_s``
(and on ``flush()``/close), together with ``hourly_upto_event``: the id of the last event
folded into the table. After a crash the events past that id (raw events are durable) are
folded again at start, so the table always equals the fold of the events up to its watermark:
nothing is counted twice or lost. Readers see aggregates at most ``flush_s`` late.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import time
from typing import Any, Iterable

log = logging.getLogger("edge.store.aggregates")

FLUSH_S = 60.0
META_KEY = "hourly_upto_event"

_SQL_UPSERT = (
    "INSERT INTO hourly (hour, sensor, field, count, sum, min, max) VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (hour, sensor, field) DO UPDATE SET count = count + excluded.count, "
    "sum = sum + excluded.sum, min = min(min, excluded.min), max = max(max, excluded.max)"
)
_SQL_META = "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value"

Numeric = list[tuple[str, float]]


def numeric_fields(payload: dict[str, Any]) -> Numeric | None:
    """The top-level fields that are numbers (bools are not), finite; fields whose name
    starts with ``_`` are about the reading (``_age_s``), not readings."""
    out = [(k, float(v)) for k, v in payload.items()
           if type(v) in (int, float) and math.isfinite(v) and not k.startswith("_")]
    return out or None


class HourlyAggregates:
    def __init__(self, kinds: Iterable[str], flush_s: float = FLUSH_S):
        self.kinds = frozenset(kinds)
        self.flush_s = flush_s
        self.pending: dict[tuple[int, str, str], list[float]] = {}
        self.upto = 0  # last committed event id folded (into pending or the table)
        self.stored_upto = 0  # the table's watermark
        self._next_flush = time.monotonic() + flush_s

    def add(self, event_id: int, ts: float, source: str, numeric: Numeric | None) -> None:
        """Fold one committed event (call only after its commit)."""
        if event_id > self.upto:
            self.upto = event_id
        if not numeric:
            return
        hour = int(ts // 3600) * 3600
        pending = self.pending
        for field, v in numeric:
            key = (hour, source, field)
            a = pending.get(key)
            if a is None:
                pending[key] = [1, v, v, v]
            else:
                a[0] += 1
                a[1] += v
                if v < a[2]:
                    a[2] = v
                if v > a[3]:
                    a[3] = v

    def seconds_until_due(self) -> float:
        if self.upto <= self.stored_upto:
            return float("inf")
        return max(0.0, self._next_flush - time.monotonic())

    def due(self) -> bool:
        return self.upto > self.stored_upto and time.monotonic() >= self._next_flush

    def flush(self, conn: sqlite3.Connection) -> int:
        """Write what is pending and the watermark in one transaction; returns rows upserted."""
        self._next_flush = time.monotonic() + self.flush_s
        if self.upto <= self.stored_upto:
            return 0
        rows = [(h, s, f, int(c), sm, mn, mx) for (h, s, f), (c, sm, mn, mx) in self.pending.items()]
        conn.execute("BEGIN IMMEDIATE")
        try:
            if rows:
                conn.executemany(_SQL_UPSERT, rows)
            conn.execute(_SQL_META, (META_KEY, self.upto))
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.pending.clear()
        self.stored_upto = self.upto
        return len(rows)

    def recover(self, conn: sqlite3.Connection, chunk: int = 2000) -> int:
        """At start: fold the events committed after the table's watermark; returns how many."""
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (META_KEY,)).fetchone()
        self.stored_upto = self.upto = int(row[0]) if row else 0
        last = conn.execute("SELECT coalesce(max(id), 0) FROM events").fetchone()[0]
        if last <= self.upto:
            return 0
        n = 0
        after = self.upto
        kinds = sorted(self.kinds)
        marks = ",".join("?" * len(kinds)) or "NULL"
        while True:
            rows = conn.execute(f"SELECT id, ts, source, payload FROM events WHERE id > ? AND kind IN ({marks}) "
                                f"ORDER BY id LIMIT ?", (after, *kinds, chunk)).fetchall()
            for eid, ts, source, payload in rows:
                p = json.loads(payload)
                self.add(eid, ts, source, numeric_fields(p) if isinstance(p, dict) else None)
                n += 1
            if len(rows) < chunk:
                break
            after = rows[-1][0]
        self.upto = max(self.upto, last)
        self.flush(conn)
        if n:
            log.info("folded %d events committed after the last aggregate flush into the hourly table", n)
        return n
