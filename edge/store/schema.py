"""Schema of the store and its migrations.

The schema version is ``PRAGMA user_version``; ``MIGRATIONS[i]`` takes a database from version
``i`` to ``i + 1``. Each step runs in its own transaction together with the version bump, so a
crash in the middle of a migration leaves the previous version intact. Append new steps at the
end; never edit a step that has shipped.
"""

from __future__ import annotations

import sqlite3

# Small pages: every commit rewrites whole pages into the WAL, and at low event rates each
# event is its own commit. Only takes effect when the database file is created.
PAGE_SIZE = 1024
# how long a write waits for a lock held by another process (e.g. a maintenance tool)
BUSY_TIMEOUT_MS = 5000

MIGRATIONS: list[tuple[str, ...]] = [
    # 1: the first schema
    (
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            kind TEXT NOT NULL,
            source TEXT NOT NULL,
            payload TEXT NOT NULL CHECK (json_valid(payload))
        )""",
        "CREATE INDEX events_ts ON events (ts)",
        """CREATE TABLE state (
            sensor TEXT PRIMARY KEY,
            state TEXT NOT NULL CHECK (json_valid(state)),
            ts REAL NOT NULL
        ) WITHOUT ROWID""",
        """CREATE TABLE relay_audit (
            id INTEGER PRIMARY KEY,
            ts REAL NOT NULL,
            relay TEXT NOT NULL,
            command TEXT NOT NULL,
            outcome TEXT NOT NULL,
            latency_ms REAL,
            detail TEXT NOT NULL DEFAULT ''
        )""",
        "CREATE INDEX relay_audit_ts ON relay_audit (ts)",
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            ts REAL NOT NULL,
            topic TEXT NOT NULL,
            payload BLOB NOT NULL,
            qos INTEGER NOT NULL CHECK (qos IN (0, 1, 2)),
            retain INTEGER NOT NULL CHECK (retain IN (0, 1))
        )""",
        # hour = unix time of the start of the hour (UTC); ordered by hour first so the rows of
        # the current hour sit together (few pages touched per commit, cheap pruning)
        """CREATE TABLE hourly (
            hour INTEGER NOT NULL,
            sensor TEXT NOT NULL,
            field TEXT NOT NULL,
            count INTEGER NOT NULL,
            sum REAL NOT NULL,
            min REAL NOT NULL,
            max REAL NOT NULL,
            PRIMARY KEY (hour, sensor, field)
        ) WITHOUT ROWID""",
    ),
    # 2: hourly aggregates are written in bulk, not per event (see aggregates.py); ``meta``
    # holds the id of the last event folded into them. Version 1 updated them with every
    # event, so everything up to now is in already.
    (
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID",
        "INSERT INTO meta (key, value) SELECT 'hourly_upto_event', coalesce(max(id), 0) FROM events",
    ),
    # 3: the outbox holds several ordered queues: the uplink's ('') and one per alarm receiver
    # ('receiver:<name>'). A report keeps the sequence number it was given when queued, so a
    # resend after a restart carries the same number (the receiver drops the duplicate).
    (
        "ALTER TABLE outbox ADD COLUMN queue TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE outbox ADD COLUMN seq INTEGER",
        "CREATE INDEX outbox_queue ON outbox (queue, id)",
    ),
    # 4: the key of each MQTT message recorded (per ingest connection and packet id, the last
    # one only): a message the broker delivers again after a crash is recognised and recorded
    # once (edge/sensors/acks.py)
    (
        """CREATE TABLE ingest_seen (
            lane TEXT NOT NULL,
            mid INTEGER NOT NULL,
            digest INTEGER NOT NULL,
            ts REAL NOT NULL,
            PRIMARY KEY (lane, mid)
        ) WITHOUT ROWID""",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


class SchemaTooNew(RuntimeError):
    pass


def configure(conn: sqlite3.Connection) -> None:
    """Pragmas of the writer connection: WAL, and a commit is on disk when it returns."""
    if conn.execute("PRAGMA page_count").fetchone()[0] == 0:
        conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise RuntimeError(f"cannot put the database in WAL mode (journal_mode is {mode})")
    conn.execute("PRAGMA synchronous = FULL")
    # the WAL is reused from its start after each checkpoint; after a burst, give the space back
    conn.execute("PRAGMA journal_size_limit = 4194304")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")


def version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Bring the database to SCHEMA_VERSION; return the versions applied (empty when current).

    ``conn`` must be in autocommit mode (isolation_level=None).
    """
    current = version(conn)
    if current > SCHEMA_VERSION:
        raise SchemaTooNew(
            f"database schema version {current} is newer than this edge knows ({SCHEMA_VERSION}): a newer edge "
            "wrote it and this one refuses to touch it (software downgraded?). Install that newer edge again "
            "(`edge update install`), or move the database aside to start with an empty one"
        )
    applied = []
    for target in range(current + 1, SCHEMA_VERSION + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in MIGRATIONS[target - 1]:
                conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {target}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(target)
    return applied
