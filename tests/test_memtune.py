"""The process's malloc settings (edge.memtune, applied by `edge run` and `edge demo`): a
frame-sized buffer goes back to the kernel when freed instead of staying in the heap."""

from __future__ import annotations

import json
import os
import subprocess
import sys

PROBE = r"""
import json, sys
tune = sys.argv[1] == "1"
if tune:
    from edge.memtune import tune_process
    done = tune_process()
else:
    done = {}
def rss_kb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
before = rss_kb()
# what a 720p frame does: a picture (3.7 MB) made and dropped, again and again
for size in (4_000_000, 3_900_000, 3_800_000, 3_700_000):
    b = bytearray(size); b[::4096] = b"x" * len(b[::4096]); del b
print(json.dumps({"done": done, "kept_kb": rss_kb() - before}))
"""


def probe(tune: bool, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, "1" if tune else "0"], capture_output=True, text=True, check=True,
                         env={**os.environ, **env}, timeout=30)
    return json.loads(out.stdout)


def test_frame_sized_buffers_go_back_to_the_kernel():
    if not os.path.exists("/proc/self/status"):
        return
    tuned = probe(True)
    assert tuned["done"] == {"MALLOC_MMAP_THRESHOLD_": 256 * 1024, "MALLOC_ARENA_MAX": 2}
    untuned = probe(False)
    # glibc's own threshold grows past a freed 4 MB block: the next ones stay in the heap
    assert untuned["kept_kb"] > 3000, untuned
    assert tuned["kept_kb"] < 500, tuned


def test_an_environment_setting_wins():
    tuned = probe(True, MALLOC_ARENA_MAX="4")
    assert tuned["done"] == {"MALLOC_MMAP_THRESHOLD_": 256 * 1024}
