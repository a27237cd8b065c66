"""`edge events tail|query`: read the event log (read-only; works while the service runs)."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from datetime import datetime, timezone
from pathlib import Path

import click

from .. import paths
from .component import DB_NAME
from .readers import EventRow, NoDatabase, open_reader, query_events, tail

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)?\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(text: str, now: float | None = None) -> float:
    """'10m', '2h', '1d', '30s', '90' (seconds) ago, or an ISO 8601 time (local time when no zone)."""
    now = time.time() if now is None else now
    if m := _DURATION.match(text):
        return now - float(m.group(1)) * _UNITS[m.group(2) or "s"]
    try:
        dt = datetime.fromisoformat(text.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r}: expected a duration like 10m, 2h, 1d or an ISO time like "
                                 "2026-01-31T08:00 or 2026-01-31T08:00:00+00:00") from None
    if dt.tzinfo is None:
        dt = dt.astimezone()  # naive = local time
    return dt.timestamp()


def _fmt_ts(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _echo(ev: EventRow, as_json: bool) -> None:
    if as_json:
        d = ev.as_dict()
        d["time"] = _fmt_ts(ev.ts)
        click.echo(json.dumps(d, ensure_ascii=False, separators=(",", ":")))
    else:
        payload = json.dumps(ev.payload, ensure_ascii=False, separators=(",", ":"))
        click.echo(f"{_fmt_ts(ev.ts)}  {ev.id:>8}  {ev.kind:<10} {ev.source:<16} {payload}")


def _db(data_dir: Path | None, db: Path | None) -> Path:
    return db if db is not None else paths.data_dir(data_dir) / DB_NAME


def _open(path: Path) -> sqlite3.Connection:
    try:
        return open_reader(path)
    except NoDatabase as exc:
        raise click.ClickException(str(exc)) from None
    except sqlite3.Error as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from None


_data_dir = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                         help="data directory (default: $EDGE_DATA_DIR, else /var/lib/edge)")
_db_opt = click.option("--db", type=click.Path(dir_okay=False, path_type=Path), default=None,
                       help="database file (default: <data dir>/edge.db)")
_kind = click.option("--kind", default=None, help="only events of this kind")
_json = click.option("--json", "as_json", is_flag=True, help="one JSON object per line")


@click.group()
def events() -> None:
    """Read the event log."""


@events.command("tail")
@_data_dir
@_db_opt
@click.option("-n", "--lines", "n", type=click.IntRange(0), default=20, show_default=True, help="newest events to show")
@click.option("-f", "--follow", is_flag=True, help="keep printing new events as they are committed")
@_kind
@_json
def events_tail(data_dir: Path | None, db: Path | None, n: int, follow: bool, kind: str | None, as_json: bool) -> None:
    """The newest events; with --follow, then every new one (Ctrl-C to stop)."""
    conn = _open(_db(data_dir, db))
    try:
        for ev in tail(conn, n, follow=follow, kind=kind):
            _echo(ev, as_json)
    except KeyboardInterrupt:
        pass
    except sqlite3.Error as exc:
        raise click.ClickException(f"reading events: {exc}") from None
    finally:
        conn.close()


@events.command("query")
@_data_dir
@_db_opt
@click.option("--since", required=True, help="10m, 2h, 1d ... ago, or an ISO time")
@click.option("--until", default=None, help="same forms as --since (default: now)")
@_kind
@click.option("--source", default=None, help="only events from this source (sensor id)")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True)
@_json
def events_query(data_dir: Path | None, db: Path | None, since: str, until: str | None, kind: str | None,
                 source: str | None, limit: int, as_json: bool) -> None:
    """Events since a time, oldest first."""
    t0 = parse_since(since)
    t1 = parse_since(until) if until else None
    conn = _open(_db(data_dir, db))
    try:
        rows = query_events(conn, since=t0, until=t1, limit=limit, kind=kind, source=source)
    except sqlite3.Error as exc:
        raise click.ClickException(f"reading events: {exc}") from None
    finally:
        conn.close()
    for ev in rows:
        _echo(ev, as_json)
