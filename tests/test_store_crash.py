"""SIGKILL the store at random moments: what was reported committed is always there.

A child process records events as fast as it can and prints the id of every event whose
commit future resolved. It is killed with SIGKILL 20 times at random moments (some during
start-up and migrations, most mid-write) and restarted; after every kill the database passes
``PRAGMA integrity_check`` and holds every event the child reported, with its payload, and
once the store reopens, the hourly aggregates equal exactly the fold of the raw events.
"""

from __future__ import annotations

import asyncio
import json
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from edge.store import Store

CHILD = Path(__file__).with_name("store_crash_child.py")
KILLS = 20


class Child:
    def __init__(self, db: Path, round_no: int):
        self.proc = subprocess.Popen([sys.executable, str(CHILD), str(db), str(round_no)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.ready = threading.Event()
        self.committed: list[tuple[int, int, int, int]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:  # only complete lines: a line cut by the kill has no newline
            if not raw.endswith(b"\n"):
                break
            if raw == b"ready\n":
                self.ready.set()
                continue
            eid, rnd, w, seq = map(int, raw.split())
            self.committed.append((eid, rnd, w, seq))

    def kill(self) -> str:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.reader.join(10)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode(errors="replace")


def test_sigkill_never_loses_a_committed_event(tmp_path: Path):
    db = tmp_path / "edge.db"
    rng = random.Random()
    seen: dict[int, tuple[int, int, int]] = {}
    kills_mid_write = 0
    t0 = time.monotonic()
    for round_no in range(KILLS):
        child = Child(db, round_no)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.4))  # may land during start-up / migrations
        else:
            assert child.ready.wait(20), "child did not open the store"
            time.sleep(rng.uniform(0.02, 0.4))
        rc_before = child.proc.poll()
        stderr = child.kill()
        assert rc_before is None, f"child exited by itself ({rc_before}): {stderr}"
        kills_mid_write += bool(child.committed)

        with sqlite3.connect(db) as conn:  # a normal connection: recovers the WAL like a restart
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            for eid, rnd, w, seq in child.committed:
                assert seen.setdefault(eid, (rnd, w, seq)) == (rnd, w, seq), f"event id {eid} reused"
            ids = [c[0] for c in child.committed]
            rows = {}
            for i in range(0, len(ids), 500):
                chunk = ids[i:i + 500]
                rows.update(conn.execute(
                    f"SELECT id, payload FROM events WHERE id IN ({','.join('?' * len(chunk))})", chunk).fetchall())
            missing = [i for i in ids if i not in rows]
            assert not missing, f"round {round_no}: {len(missing)} committed events lost, e.g. {missing[:5]}"
            for eid, rnd, w, seq in child.committed:
                assert json.loads(rows[eid]) == {"round": rnd, "w": w, "seq": seq}
        conn.close()
        if round_no % 4 == 3:
            _check_aggregates_after_reopen(db)
    assert kills_mid_write >= KILLS // 2, "too few kills landed while events were being written"
    assert len(seen) > 1000, f"only {len(seen)} events committed in {KILLS} rounds"
    assert time.monotonic() - t0 < 90


def _check_aggregates_after_reopen(db: Path) -> None:
    async def reopen() -> None:
        s = Store(db)
        await s.start()
        await s.close()

    asyncio.run(reopen())
    with sqlite3.connect(db) as conn:
        raw = conn.execute("SELECT count(*), sum(json_extract(payload, '$.seq')) FROM events WHERE kind = 'sensor'").fetchone()
        agg = conn.execute("SELECT sum(count), sum(sum) FROM hourly WHERE field = 'seq'").fetchone()
        assert agg == (raw[0], float(raw[1])) if raw[0] else agg == (None, None), \
            f"hourly aggregates {agg} != fold of the raw events {raw}"
    conn.close()
