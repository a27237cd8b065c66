"""SQLite store: events, current state, relay audit, outbox.

Contract used by the rest of edge (the implementation lives in this package):

    store = Store(path, retention_days=30, aggregate_retention_days=3650, batch_ms=50)
    await store.start()                  # starts the writer thread: it opens, runs migrations
    fut = store.record_event(kind, source, payload: dict, ts=None)   # never blocks the loop
    await fut                            # -> event id, resolved once its batch committed
    store.set_state(sensor, state: dict, ts=None)                    # current state upsert
    store.audit_relay(relay, command, outcome, latency_ms, detail="", ts=None) -> Future[int]
    store.outbox_put(topic, payload: bytes, qos=1, retain=False, *, queue="", seq=None, urgent=False) -> Future[int]
    await store.outbox_peek(limit, queue="") -> list[OutboxMessage]  # oldest first, one queue
    await store.outbox_ack(ids)                                     # remove acknowledged
    store.meta_set(key, value) -> Future[None]; await store.meta_get(key)   # small kept values
    await store.flush()                  # everything queued so far committed
    await store.close()                  # flush and stop the writer
    store.stats -> StoreStats(events_persisted, batches, queue_len)

Readers (CLI, tests) use ``open_reader(path)`` / ``query_events(path, since, limit)``.

Additions (this implementation):

- Call the store from the event loop thread that ran ``start()``. A resolved future means the
  row is on disk (WAL, ``synchronous=FULL``): it survives a crash or a power cut.
- ``Store(..., prune_batch_rows=500, prune_interval_s=1.0, aggregate_kinds={"sensor"},
  aggregate_flush_s=60, on_batch=callback(StoreStats))``; ``await store.prune_step()`` runs
  one retention step now; ``await store.checkpoint()``; ``store.ok`` (running and the last batch committed);
  ``store.dead`` resolves if the writer thread ever dies, and ``await store.start()`` then
  starts a new writer on the same object (the component does this, so keep using ctx.store).
- Retention (edge/store/retention.py): raw events and unacknowledged outbox messages
  ``retention_days``; hourly aggregates and the relay audit ``aggregate_retention_days``.
- Events of kind ``"sensor"`` (``source`` = sensor id) feed hourly aggregates (sensor, field,
  hour, count, sum, min, max) from their numeric top-level payload fields (bools are not
  numbers here). They are written in bulk every 60 s (``aggregate_flush_s``), on ``flush()``
  and on close, and rebuilt from the raw events after a crash (edge/store/aggregates.py).
- Bad input (payload not a JSON-able dict, NaN, qos not 0/1/2), a closed store, or a writer
  200,000 ops behind give a future that fails with a clear error (ValueError / StoreClosed /
  StoreOverloaded); nothing raises into the caller. Every failure is logged by the store.
- The disk: a ``Store`` takes ops from the moment it is built; they wait in memory until the
  writer has the database open. ``await store.start()`` returns True once open, False when
  the first attempt failed (read-only or missing directory, corrupt file, schema too new):
  the writer keeps trying with backoff. A batch the disk refuses (I/O error, full, locked)
  is kept and tried again until it commits; only an op's own error (a constraint) fails
  that op. ``store.durable`` is False (``store.problem`` says why) while it cannot open,
  writes fail, or one write has run longer than ``stalled_after_s``; ``store.busy_for()``
  is how long the running write has taken (the watchdog's bound); ``add_listener(cb)``
  calls ``cb()`` after every batch and when ``durable`` changes.
- Order and groups: ops commit in the order they were queued; ``store.submitted`` is the
  seq of the last op queued, ``store.committed`` the seq of the last one settled.
  ``begin_group()`` ... ``end_group(seen)`` makes the ops queued in between one op (one
  transaction; the shortest commit window of its members) and returns its seq: what one
  MQTT message produced, acknowledged once ``committed`` reaches it. ``seen`` (lane, packet
  id, digest) is written with it; ``await store.seen_keys(lane, limit)`` reads them back.
  ``commit_soon()`` commits what is queued without waiting for its window.
- ``set_state`` returns a Future[None] too; fire-and-forget is fine.
- The outbox holds ordered queues: the uplink's (``queue=""``, the default) and one per alarm
  receiver (``"receiver:<name>"``, rows carrying their DC-09 sequence number ``seq``).
  ``urgent=True`` commits at once (alarm reports) instead of within ``batch_ms``.
- More readers in ``edge.store.readers``: ``last_events``, ``tail(path, n, follow)``,
  ``get_state``, ``query_audit``, ``query_hourly``, ``outbox_count``.
"""

from .readers import open_reader, query_events
from .store import AGGREGATE_KINDS, OutboxMessage, Store, StoreClosed, StoreOverloaded, StoreStats

__all__ = ["Store", "StoreStats", "StoreClosed", "StoreOverloaded", "OutboxMessage", "AGGREGATE_KINDS",
           "open_reader", "query_events"]
