"""Giving freed memory back to the system after a big run is dropped.

glibc keeps freed heap blocks for reuse: after a reset that dropped a cloud of 100,000 starts (frames
of tens of MB), the process would otherwise keep hundreds of MB it no longer uses, and the user reading
the system monitor sees a leak. ``malloc_trim`` hands them back; elsewhere this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

_libc = None
if sys.platform.startswith("linux"):
    try:
        _libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _libc.malloc_trim  # noqa: B018 - only glibc has it (musl does not)
    except (OSError, AttributeError):
        _libc = None


def release_freed_memory() -> None:
    gc.collect()
    if _libc is not None:
        _libc.malloc_trim(0)
