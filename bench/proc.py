"""The machine's processes as /proc shows them, for the benchmarks that watch their children."""

from __future__ import annotations

import os


def stat_fields() -> dict[int, list[str]]:
    """Every process's /proc/<pid>/stat fields after its command name (fields[1] is the
    parent's pid, fields[11] and [12] its user and system CPU ticks), by pid."""
    found: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                found[int(entry)] = stat.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
    return found
