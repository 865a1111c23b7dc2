"""Handing freed memory back to the system: the process's two C allocators keep what they free.

A long-running app server frees most of what an import or a page view allocated, but two
allocators below Python keep the freed pages for reuse instead of returning them, so its resident
memory only ever rose:

* glibc's malloc (Python's objects, numpy, pandas): ``malloc_trim`` returns its free pages. By
  default glibc also raises its mmap threshold each time a large block is freed (up to 32 MB), so
  after an import's big buffers later large blocks come from its heaps, where they fragment
  them: its free-but-held memory rose 23 -> 89 MB over 10 refreshes. A fixed threshold
  (:func:`configure`) keeps large blocks in mappings of their own, returned whole when freed
  (free-but-held 6-10 MB; the server's growth over 10 refreshes 1.22-1.25 x -> 1.16-1.18 x).
* DuckDB's own jemalloc, linked into the duckdb module (table data, query intermediates): after a
  monthly refresh it held some 50 MB of freed pages (its ``stats.resident`` 95-104 MB against
  42 MB allocated). Purging its arenas is what DuckDB itself does when its thread pool is resized
  (``Allocator::FlushAll``); the module exports jemalloc's ``mallctl`` for it.

Both are found at run time and skipped where absent (another C library, a DuckDB build without
jemalloc), so this is a no-op rather than an error off Linux.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import glob
import os
from functools import lru_cache

_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)
_MMAP_THRESHOLD = 128 * 1024  # glibc's own starting value, kept fixed
_ALL_ARENAS = 4096  # jemalloc's MALLCTL_ARENAS_ALL: "arena.4096.purge" purges every arena
_STATS = ("allocated", "active", "resident", "mapped", "retained")


@lru_cache(maxsize=1)
def _libc():
    name = ctypes.util.find_library("c")
    return ctypes.CDLL(name) if name else None


@lru_cache(maxsize=1)
def _mallctl():
    """jemalloc's mallctl inside the duckdb module, or None."""
    import duckdb

    folder = os.path.dirname(os.path.dirname(duckdb.__file__))
    for path in glob.glob(os.path.join(folder, "_duckdb*.so")):
        function = getattr(ctypes.CDLL(path), "duckdb_je_mallctl", None)
        if function is not None:
            function.argtypes = [ctypes.c_char_p, ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t),
                                 ctypes.c_void_p, ctypes.c_size_t]
            function.restype = ctypes.c_int
            return function
    return None


def configure() -> None:
    """Fix glibc's mmap threshold (once per server, at the start of its housekeeping)."""
    mallopt = getattr(_libc(), "mallopt", None)  # glibc only
    if mallopt is not None:
        mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)


def release() -> None:
    """Return both allocators' free pages to the system (the app's housekeeping, after collecting)."""
    libc = _libc()
    trim = getattr(libc, "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)
    mallctl = _mallctl()
    if mallctl is not None:
        mallctl(f"arena.{_ALL_ARENAS}.purge".encode(), None, None, None, 0)


def jemalloc_stats() -> dict[str, int] | None:
    """DuckDB's jemalloc in MB (allocated, active, resident, mapped, retained), for the memory
    report of the benchmarks; None without it."""
    mallctl = _mallctl()
    if mallctl is None:
        return None
    epoch = ctypes.c_uint64(1)
    mallctl(b"epoch", None, None, ctypes.byref(epoch), ctypes.sizeof(epoch))  # refresh the statistics
    out = {}
    for name in _STATS:
        value, size = ctypes.c_size_t(), ctypes.c_size_t(ctypes.sizeof(ctypes.c_size_t))
        if mallctl(f"stats.{name}".encode(), ctypes.byref(value), ctypes.byref(size), None, 0) == 0:
            out[name] = value.value >> 20
    return out
