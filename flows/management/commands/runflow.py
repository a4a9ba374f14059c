"""``manage.py runflow SLUG [--param NAME=VALUE ...] [--json]``: run a workflow headless."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows import registry
from flows.runner import get_runner, wait_until_finished
from flows.transports import reset


class Command(BaseCommand):
    help = "Run a workflow without the browser and print its summary; exit 0 if it succeeded."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug", help=f"one of: {', '.join(registry.WORKFLOWS)}")
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                            help="a workflow parameter (repeatable); see GET /api/workflows/")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON")
        parser.add_argument("--timeout", type=float, default=None, help="seconds before the run is failed")

    def handle(self, *args, slug: str, param: list[str], json: bool, timeout: float | None, **options) -> None:
        if slug not in registry.WORKFLOWS:
            raise CommandError(f"unknown workflow {slug!r}; known: {', '.join(registry.WORKFLOWS)}")
        given = {}
        for item in param:
            name, sep, value = item.partition("=")
            if not sep:
                raise CommandError(f"--param takes NAME=VALUE, got {item!r}")
            given[name.strip()] = value
        params, errors = registry.get(slug).validate(given)
        if errors:
            raise CommandError("; ".join(f"{k}: {v}" for k, v in errors.items()))
        runner = get_runner()
        try:
            run = runner.start(slug, params, timeout_s=timeout)
            run = wait_until_finished(run.pk, (timeout or 300) + 60)
            summary = runner.summary(run.pk)
        finally:
            reset()
        if json:
            self.stdout.write(_dumps(summary))
        else:
            self._print(summary)
        if summary["state"] != "succeeded":
            raise CommandError(f"run {summary['id']} {summary['state']}: {summary['error']}", returncode=1)

    def _print(self, s: dict) -> None:
        c, lat = s["counts"], s["latency_ms"]
        self.stdout.write(f"run {s['id']} {s['workflow']}: {s['state']}" + (f" ({s['error']})" if s["error"] else ""))
        self.stdout.write("counts: " + ", ".join(f"{k}={v}" for k, v in c.items()))
        for name in ("perceived", "end_to_end"):
            stats = lat[name]
            if stats["count"]:
                figures = " ".join(f"{k}={stats[k]}" for k in ("p50", "p95", "p99", "max"))
                self.stdout.write(f"{name} latency ms: {figures}")


def _dumps(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True)
