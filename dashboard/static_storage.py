"""Where collected static files go: hashed names, pre-compressed copies, plotly's one file.

Hashed names (``run-page.3f2a….js``) let the server tell browsers to keep a file forever;
a changed file gets a new name. The front end is native ES modules, so the relative
``import … from "./api.js"`` lines are rewritten to the hashed names too, or a page would
load a hashed entry module that then imports stale unhashed ones.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from django.contrib.staticfiles.finders import BaseFinder
from django.core.files.storage import FileSystemStorage
from whitenoise.storage import CompressedManifestStaticFilesStorage

PLOTLY_FILE = "plotly.min.js"
PLOTLY_PREFIX = "vendor/plotly"


class HashedCompressedStorage(CompressedManifestStaticFilesStorage):
    support_js_module_import_aggregation = True

    def compress_files(self, paths: list[str]) -> Iterator[tuple[str, str]]:
        # Pages only ever name the hashed copies; the unhashed ones stay for old links and
        # are served uncompressed. A hashed name fixes the content, so an existing
        # compressed copy is current: collectstatic re-saves every script (its imports may
        # have changed) and would otherwise brotli the 4.6 MB plotly bundle on every run.
        hashed = set(self.hashed_files.values())
        return super().compress_files([path for path in paths if path in hashed and not self._compressed(path)])

    def _compressed(self, path: str) -> bool:
        return os.path.exists(self.path(path) + ".gz")


class PlotlyFinder(BaseFinder):
    """plotly.min.js from the installed plotly package, under vendor/plotly/, offline.

    Only that file: the package directory also holds a 4.8 MB widget bundle and datasets
    the dashboard never loads.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__()
        import plotly

        self.directory = Path(plotly.__file__).parent / "package_data"
        self.storage = FileSystemStorage(location=str(self.directory))
        self.storage.prefix = PLOTLY_PREFIX

    def find(self, path: str, find_all: bool = False, **kwargs: object) -> str | list[str]:
        if path != f"{PLOTLY_PREFIX}/{PLOTLY_FILE}":
            return [] if find_all else ""
        found = str(self.directory / PLOTLY_FILE)
        return [found] if find_all else found

    def list(self, ignore_patterns: list[str] | None) -> Iterator[tuple[str, FileSystemStorage]]:
        if os.path.exists(self.directory / PLOTLY_FILE):
            yield PLOTLY_FILE, self.storage
