"""System checks of the broker settings: a URL nothing can use is an error at start-up.

Registered by ``FlowsConfig.ready``, so they run with ``manage.py check``, ``migrate``,
``runserver`` and ``runflow``. They read settings only: no broker is started or reached
(``GET /api/health/`` does that).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning

MODES = ("embedded", "external")


def check_brokers(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    from flows import transports

    messages: list[CheckMessage] = []
    if settings.FLOWS_BROKERS not in MODES:
        messages.append(Error(
            f"FLOWS_BROKERS={settings.FLOWS_BROKERS!r} is neither embedded nor external",
            hint="FLOWS_BROKERS=embedded (the default) or external; or set each broker's URL",
            id="flows.E001",
        ))
    defaults = getattr(settings, "BROKER_URL_DEFAULTS", {})
    for protocol, (_, setting) in transports.BROKERS.items():
        url = getattr(settings, setting, None)
        if not isinstance(url, str):
            problem = "is not set" if url is None else f"is a {type(url).__name__}, not a string"
        else:
            problem = transports.broker_class(protocol).url_problem(url)
        if problem:
            embedded, external = defaults.get(setting, ("embedded", "…"))
            messages.append(Error(
                f"{setting}={url!r} {problem}",
                hint=f"{setting}={embedded} for the embedded broker, or an address like {setting}={external}",
                id="flows.E002",
            ))
    legacy = getattr(settings, "FLOWS_BROKER_MODES", {}) or {}
    for protocol, mode in legacy.items():
        if protocol not in transports.BROKERS or mode not in MODES:
            messages.append(Error(
                f"FLOWS_BROKER_MODES has {protocol}={mode}: the protocol must be one of "
                f"{', '.join(transports.BROKERS)} and the mode embedded or external",
                hint="better: say the mode in the broker's URL (e.g. KAFKA_BOOTSTRAP_SERVERS=embedded)",
                id="flows.E003",
            ))
    if legacy:
        messages.append(Warning(
            "FLOWS_BROKER_MODES is deprecated: the broker's URL says its mode",
            hint="e.g. KAFKA_BOOTSTRAP_SERVERS=embedded, AMQP_URL=memory://, MQTT_URL=embedded, "
                 "or an external broker's address",
            id="flows.W001",
        ))
    return messages
