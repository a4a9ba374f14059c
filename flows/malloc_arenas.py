"""Capping glibc's malloc arenas, so a long-lived server's resident memory stays flat.

glibc gives threads malloc arenas of their own, up to 8 per core. Every run starts
short-lived threads (its run thread, its readers, librdkafka's and the AMQP/MQTT clients'),
each lands on one of those arenas, and what they free stays there as free but fragmented
memory that the next run, landing on another arena, does not reuse. Measured over repeated
soak runs (bench/bench_soak.py): the bytes malloc hands out stay flat while its free
bytes grow by megabytes a run across 16 arenas, and ``malloc_trim`` gives back only part of
it; with two arenas the server's RSS is flat. This is what ``MALLOC_ARENA_MAX=2`` does,
applied from inside the process so every way of starting it (server, ``runflow``, the
benchmarks, Celery) gets it. Where the variable is set, glibc already applied it and it wins.
"""

from __future__ import annotations

import ctypes
import os
import re
import tempfile

M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018 - only glibc (and musl, as a stub) has it
        libc.malloc_info  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def limit_arenas(limit: int) -> bool:
    """Cap the process at ``limit`` malloc arenas; True if glibc took it.

    Call before the process starts threads: arenas made before stay. Nothing happens for
    ``limit`` <= 0, when ``MALLOC_ARENA_MAX`` is set, or off glibc.
    """
    if limit <= 0 or "MALLOC_ARENA_MAX" in os.environ:
        return False
    libc = _libc()
    return bool(libc and libc.mallopt(M_ARENA_MAX, limit) == 1)


def arena_count() -> int | None:
    """How many malloc arenas the process has now (from ``malloc_info``); None off glibc."""
    libc = _libc()
    if libc is None:
        return None
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile(suffix=".xml") as out:
        stream = libc.fopen(out.name.encode(), b"w")
        if not stream:
            return None
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        return len(re.findall(rb"<heap nr=", out.read()))
