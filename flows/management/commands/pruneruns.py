"""``manage.py pruneruns [--keep N] [--days D] [--dry-run]``: delete old finished runs and their events."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from flows.retention import prune


class Command(BaseCommand):
    help = ("Delete finished runs beyond the newest N or older than D days, with their events and inbox entries "
            "(live runs are never deleted). Defaults: FLOWS_KEEP_RUNS and FLOWS_KEEP_DAYS; 0 turns a rule off.")

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--keep", type=int, default=None, metavar="N",
                            help=f"keep the newest N finished runs (default FLOWS_KEEP_RUNS={settings.FLOWS_KEEP_RUNS})")
        parser.add_argument("--days", type=float, default=None, metavar="D",
                            help=f"delete runs finished more than D days ago (default FLOWS_KEEP_DAYS="
                                 f"{settings.FLOWS_KEEP_DAYS:g})")
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted, delete nothing")

    def handle(self, *args, keep: int | None, days: float | None, dry_run: bool, **options) -> None:
        if keep is not None and keep < 0:
            raise CommandError("--keep must be 0 (no limit) or more")
        if days is not None and days < 0:
            raise CommandError("--days must be 0 (no limit) or more")
        report = prune(keep=keep, days=days, dry_run=dry_run)
        self.stdout.write(report.line())
