"""The process keeps to FLOWS_MALLOC_ARENA_MAX malloc arenas however many threads allocate.

Without the cap glibc gives concurrent threads arenas of their own (up to 8 a core), and a
soak of repeated runs showed RSS growing megabytes a run from free memory stranded in them.
"""

from __future__ import annotations

import os
import threading

import pytest
from django.conf import settings

from flows.malloc_arenas import arena_count

THREADS = 8


@pytest.mark.skipif(arena_count() is None, reason="needs glibc's malloc_info")
@pytest.mark.skipif("MALLOC_ARENA_MAX" in os.environ, reason="the environment sets the cap instead")
def test_concurrent_threads_share_the_capped_arenas() -> None:
    all_allocated = threading.Barrier(THREADS + 1)
    counted = threading.Event()
    held: list[bytearray] = []

    def allocate() -> None:
        # Above pymalloc's 512 B, below the mmap threshold: served by the thread's malloc arena.
        held.append(bytearray(16_384))
        all_allocated.wait()
        counted.wait()  # alive until counted: an exited thread's arena would be handed on

    threads = [threading.Thread(target=allocate) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    all_allocated.wait()
    try:
        arenas = arena_count()
    finally:
        counted.set()
        for thread in threads:
            thread.join()
    assert arenas is not None and arenas <= settings.FLOWS_MALLOC_ARENA_MAX
