"""SQLite store: events, current state, relay audit, outbox.

Contract used by the rest of edge (the implementation lives in this package):

    store = Store(path, retention_days=30, aggregate_retention_days=3650, batch_ms=50)
    await store.start()                  # opens, runs migrations, starts the writer thread
    fut = store.record_event(kind, source, payload: dict, ts=None)   # never blocks the loop
    await fut                            # -> event id, resolved once its batch committed
    store.set_state(sensor, state: dict, ts=None)                    # current state upsert
    store.audit_relay(relay, command, outcome, latency_ms, detail="", ts=None) -> Future[int]
    store.outbox_put(topic, payload: bytes, qos=1, retain=False) -> Future[int]
    await store.outbox_peek(limit) -> list[OutboxMessage]          # oldest first
    await store.outbox_ack(ids)                                     # remove acknowledged
    await store.flush()                  # everything queued so far committed
    await store.close()                  # flush and stop the writer
    store.stats -> StoreStats(events_persisted, batches, queue_len)

Readers (CLI, tests) use ``open_reader(path)`` / ``query_events(path, since, limit)``.
"""
