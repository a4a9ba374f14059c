"""The flows app's configuration: the one owner of the process-wide services.

Three things exist once per process, each built lazily by its module's accessor the first
time something needs it, and never at import time:

- the brokers (``flows.transports.get_broker``; ``transports.reset()`` stops them);
- the runner (``flows.runner.get_runner``), which owns the live runs;
- the event pipeline (``flows.pipeline.get_pipeline``), one thread for every run's events.

``ready()`` wires what must be wired before anything runs — the system checks of the
broker settings, and the cap on malloc arenas (flows/malloc_arenas.py), which only holds
for threads started after it — and starts nothing: a broker starts when a run or a health check asks
for it (reading a broker's properties never starts one). ``shutdown()`` stops what was
built (tests call it; in a server, the child-process brokers stop themselves at exit and
the threads are daemons).
"""

from __future__ import annotations

from django.apps import AppConfig


class FlowsConfig(AppConfig):
    name = "flows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings
        from django.core.checks import register

        from .checks import check_brokers
        from .malloc_arenas import limit_arenas

        register(check_brokers, "flows")
        limit_arenas(settings.FLOWS_MALLOC_ARENA_MAX)

    @staticmethod
    def shutdown() -> None:
        """Stop the event pipeline's thread and every broker this process started."""
        from . import pipeline, transports

        pipeline.stop_pipeline()
        transports.reset()
