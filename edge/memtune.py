"""How the service's process uses memory: glibc malloc settings, set once at start.

The dashboard camera allocates a few large, short-lived buffers per frame (a 1280x720 RGB
picture is 3.7 MB in Pillow, its I420 copy 1.4 MB). glibc serves large requests with mmap
at first, but raises that threshold each time such a block is freed (up to 32 MB), so from
the second frame on the pictures come from the heap, and a heap keeps its high-water mark:
~10 MB more resident here, for nothing. Every thread that allocates (GStreamer's streaming
threads, x264's, the store writer, the producer) also gets an arena of its own, up to 8 per
core. Measured on the service at 720p with video (PSS): 117 MB as glibc starts, 103 MB
with both settings below (``bench/video.py``).

- ``M_MMAP_THRESHOLD`` fixed at 256 KB: large buffers always come from mmap and go back to
  the kernel when freed (fixing it also stops the dynamic raise). A frame then costs its
  page faults (~1 ms for a 720p picture here, at 1 frame a second; an alarm's frame a few).
- ``M_ARENA_MAX`` 2: threads share two arenas.

Environment variables the C library reads (``MALLOC_ARENA_MAX``, ``MALLOC_MMAP_THRESHOLD_``)
win: the setting here is skipped when one is set. Not glibc (musl): nothing to do.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("edge.memtune")

M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 256 * 1024
ARENA_MAX = 2


def release_free_memory() -> bool:
    """Give the heap's free pages back to the kernel (``malloc_trim``): once, after start-up,
    whose temporary objects (config parsing, model and template building) leave holes in
    the heap that nothing reuses (~1 MB here). False where there is no glibc."""
    try:
        trim = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return False
    trim.argtypes = (ctypes.c_size_t,)
    trim(0)
    return True


def tune_process() -> dict[str, int]:
    """Apply the settings above; returns what was set (empty when nothing could be)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    done: dict[str, int] = {}
    for env, param, value in (("MALLOC_MMAP_THRESHOLD_", M_MMAP_THRESHOLD, MMAP_THRESHOLD),
                              ("MALLOC_ARENA_MAX", M_ARENA_MAX, ARENA_MAX)):
        if env in os.environ:
            continue
        if mallopt(param, value) == 1:
            done[env] = value
        else:
            log.warning("mallopt(%d, %d) refused", param, value)
    return done
