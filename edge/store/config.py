"""The ``[store]`` config section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ..section import Section


class StoreConfig(Section):
    path: Path | None = Field(None, description="database file; default <data dir>/edge.db")
    retention_days: int = Field(30, ge=1, le=3650, description="raw events kept this many days")
    aggregate_retention_days: int = Field(3650, ge=1, description="hourly aggregates kept")
    batch_ms: int = Field(50, ge=1, le=1000, description="group-commit window")
    telemetry_batch_ms: int = Field(10000, ge=1, le=60_000,
                                    description="routine readings that changed nothing may wait this long for a commit")
    prune_batch_rows: int = Field(500, ge=10, le=100_000, description="rows deleted per retention step")
    prune_interval_s: float = Field(1.0, gt=0, le=3600, description="pause between retention steps")
    outbox_max_messages: int = Field(100_000, ge=100, le=10_000_000,
                                     description="unsent uplink messages kept while the broker is away (oldest dropped first)")
    write_timeout_s: float = Field(20.0, gt=0, le=3600,
                                   description="a database write (or open) running longer than this is a hung "
                                               "writer: the systemd watchdog is no longer fed")
