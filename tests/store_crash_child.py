"""Child of the store crash test: records events as fast as it can until it is killed.

Prints "ready" once the store is open, then one line "<id> <round> <worker> <seq>" per event
whose commit future resolved (written straight to the pipe, so a printed line was committed).
"""

from __future__ import annotations

import asyncio
import os
import sys

from edge.store import Store

WORKERS = 64


async def main(path: str, round_no: int) -> None:
    store = Store(path, batch_ms=5, aggregate_flush_s=0.05)
    await store.start()
    os.write(1, b"ready\n")

    async def worker(w: int) -> None:
        seq = 0
        while True:
            eid = await store.record_event("sensor", f"r{round_no}w{w}", {"round": round_no, "w": w, "seq": seq})
            os.write(1, f"{eid} {round_no} {w} {seq}\n".encode())
            seq += 1

    await asyncio.gather(*(worker(w) for w in range(WORKERS)))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
