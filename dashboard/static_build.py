"""Keeps STATIC_ROOT current: collectstatic when a source file is newer than the manifest.

Pages name the hashed files the manifest lists, so a server or a test session must not
start without it. Running this at start-up keeps "a fresh clone, then daphne" working with
no separate build step; it costs a directory scan when nothing changed. The first build
compresses plotly (about 20 s); the Dockerfile does it at image build time instead.
"""

from __future__ import annotations

import fcntl
import sys
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.staticfiles import finders
from django.core.management import call_command

MANIFEST = "staticfiles.json"


def newest_source_mtime() -> float:
    ignore = apps.get_app_config("staticfiles").ignore_patterns
    newest = 0.0
    for finder in finders.get_finders():
        for path, storage in finder.list(ignore):
            newest = max(newest, storage.get_modified_time(path).timestamp())
    return newest


def is_current(root: Path) -> bool:
    manifest = root / MANIFEST
    return manifest.exists() and manifest.stat().st_mtime >= newest_source_mtime()


def ensure_collected() -> None:
    root = Path(settings.STATIC_ROOT)
    if is_current(root):
        return
    root.mkdir(parents=True, exist_ok=True)
    # Two servers (or a server and a test session) starting together build it once.
    with open(root.parent / "static.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not is_current(root):
            print(f"collecting static files into {root} (the first time compresses plotly: about 20 s)",
                  file=sys.stderr, flush=True)
            call_command("collectstatic", interactive=False, verbosity=0)
