"""``python -m bench [NAME ...]``: run every ``bench/bench_*.py`` (or the named ones).

Each module exposes ``run(report: bench.report.Report) -> None`` and prints figures
through ``report.add``. Benchmarks talk to the real services of the machine.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
import time
import traceback

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from .report import Report


def main(argv: list[str]) -> int:
    import bench

    names = sorted(m.name for m in pkgutil.iter_modules(bench.__path__) if m.name.startswith("bench_"))
    wanted = [n if n.startswith("bench_") else f"bench_{n}" for n in argv]
    report = Report()
    failed = 0
    for name in wanted or names:
        print(f"\n== {name} ==", flush=True)
        started = time.perf_counter()
        try:
            importlib.import_module(f"bench.{name}").run(report)
        except Exception:  # noqa: BLE001 - one broken benchmark must not hide the others
            failed += 1
            traceback.print_exc()
        print(f"({name} took {time.perf_counter() - started:.1f} s)", flush=True)
    print("\n== summary ==")
    for figure in report.figures:
        print(figure.line())
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
