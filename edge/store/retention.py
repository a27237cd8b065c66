"""Retention: delete what is past its keep-by date, a few hundred rows at a time.

Runs on the writer thread between batches (it is the only connection that writes). Each step
is one short transaction deleting at most ``batch_rows`` rows; while there is a backlog the
steps are ``interval_s`` apart, so an SD card never sees one huge delete, and recording events
never waits behind a long prune.

What is kept how long:
- events (raw): ``retention_days``; the newest event is always kept so event ids are never
  reused (a ``tail --follow`` reader goes by id).
- outbox messages nobody acknowledged: ``retention_days``, and at most ``outbox_max_messages``
  (the oldest go first, with a warning): a broker that never comes back, or a flood of state
  changes while it is away, must not fill the card.
- hourly aggregates and the relay audit: ``aggregate_retention_days``.
"""

from __future__ import annotations

import logging
import sqlite3
import time

log = logging.getLogger("edge.store.retention")

DAY = 86400.0


class Pruner:
    def __init__(self, retention_days: float, aggregate_retention_days: float, batch_rows: int = 500,
                 interval_s: float = 1.0, idle_s: float = 600.0, first_delay_s: float = 5.0):
        self.retention_s = retention_days * DAY
        self.aggregate_retention_s = aggregate_retention_days * DAY
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.idle_s = idle_s
        self.next_due = time.monotonic() + first_delay_s
        self.rows_deleted = 0
        self.steps = 0
        self.outbox_max_messages = 100_000
        self.outbox_dropped = 0  # unsent outbox messages removed by the cap

    def seconds_until_due(self) -> float:
        return max(0.0, self.next_due - time.monotonic())

    def due(self) -> bool:
        return time.monotonic() >= self.next_due

    def _plan(self, now: float) -> list[tuple[str, str, tuple[float, ...]]]:
        keep_raw = now - self.retention_s
        keep_agg = now - self.aggregate_retention_s
        return [
            ("events",
             "DELETE FROM events WHERE id IN (SELECT id FROM events WHERE ts < ? "
             "AND id < (SELECT max(id) FROM events) ORDER BY ts LIMIT ?)", (keep_raw,)),
            ("outbox",
             "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE ts < ? ORDER BY id LIMIT ?)", (keep_raw,)),
            # ids only grow and acks take the oldest: keeping ids above max(id) - cap keeps at most cap rows
            ("outbox over its cap",
             "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id <= "
             "(SELECT max(id) FROM outbox) - ? ORDER BY id LIMIT ?)", (self.outbox_max_messages,)),
            ("relay_audit",
             "DELETE FROM relay_audit WHERE id IN (SELECT id FROM relay_audit WHERE ts < ? ORDER BY ts LIMIT ?)",
             (keep_agg,)),
            ("hourly",
             "DELETE FROM hourly WHERE (hour, sensor, field) IN "
             "(SELECT hour, sensor, field FROM hourly WHERE hour < ? ORDER BY hour LIMIT ?)",
             (keep_agg - 3600,)),
        ]

    def step(self, conn: sqlite3.Connection, now: float | None = None) -> int:
        """Delete at most ``batch_rows`` expired rows in one transaction; schedule the next step."""
        now = time.time() if now is None else now
        budget = self.batch_rows
        deleted: dict[str, int] = {}
        conn.execute("BEGIN IMMEDIATE")
        try:
            for table, sql, args in self._plan(now):
                if budget <= 0:
                    break
                n = conn.execute(sql, (*args, budget)).rowcount
                if n:
                    deleted[table] = n
                    budget -= n
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            self.next_due = time.monotonic() + self.interval_s * 10
            raise
        total = sum(deleted.values())
        self.steps += 1
        self.rows_deleted += total
        # a full step means there is more: come back soon; otherwise all caught up
        self.next_due = time.monotonic() + (self.interval_s if budget <= 0 else self.idle_s)
        if total:
            log.debug("pruned %s", ", ".join(f"{n} {t}" for t, n in deleted.items()))
        over = deleted.get("outbox over its cap", 0)
        if over:
            self.outbox_dropped += over
            log.warning("outbox over %d messages (the broker has been away): dropped the %d oldest unsent",
                        self.outbox_max_messages, over)
        return total
