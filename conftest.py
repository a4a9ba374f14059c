"""Shared test fixtures: real services, broker modes, and the rule that CI never skips.

In CI (``CI=true``) a service a test needs that is not running is a failure, never a skip.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


def pytest_configure(config: pytest.Config) -> None:
    from django.conf import settings

    (settings.BASE_DIR / "var").mkdir(exist_ok=True)

SERVICES = {
    "rabbitmq": ("127.0.0.1", 5672, "amqp://guest:guest@127.0.0.1:5672//"),
    "mosquitto": ("127.0.0.1", 1883, "mqtt://127.0.0.1:1883"),
    "redis": ("127.0.0.1", 6379, "redis://127.0.0.1:6379/0"),
    "postgres": ("127.0.0.1", 5432, "postgres://postgres@127.0.0.1:5432/test"),
}


def require_service(name: str) -> str:
    """The service's URL; skip (laptop) or fail (CI) when it is not listening."""
    host, port, url = SERVICES[name]
    try:
        with socket.create_connection((host, port), timeout=2):
            return url
    except OSError as exc:
        message = f"{name} is not reachable at {host}:{port} ({exc})"
        if IN_CI:
            pytest.fail(f"{message}; CI requires it")
        pytest.skip(message)


@pytest.fixture(scope="session")
def require_tool():  # returns the checker
    """``require_tool(label, available, in_ci=True)``: skip on a laptop, fail in CI when ``in_ci``."""

    def check(label: str, available: bool, in_ci: bool = True) -> None:
        if available:
            return
        if IN_CI and in_ci:
            pytest.fail(f"{label} is not installed; .ci/run installs it and CI requires it")
        pytest.skip(f"{label} is not installed here")

    return check


@pytest.fixture(scope="session", autouse=True)
def collected_static_files() -> None:
    """Pages name hashed static files from the manifest collectstatic writes (once per change)."""
    from dashboard.static_build import ensure_collected

    ensure_collected()


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):  # extends pytest-django's own
    """The pipeline thread stops (closing its connection) before the test database is dropped."""
    yield
    from flows.apps import FlowsConfig

    FlowsConfig.shutdown()


@pytest.fixture(scope="session", autouse=True)
def stop_services_at_the_end() -> Iterator[None]:
    """The process-wide pipeline thread and embedded brokers end with the session (flows/apps.py)."""
    yield
    from flows.apps import FlowsConfig

    FlowsConfig.shutdown()


@pytest.fixture(scope="session")
def rabbitmq_url() -> str:
    return require_service("rabbitmq")


@pytest.fixture(scope="session")
def mosquitto_url() -> str:
    return require_service("mosquitto")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return require_service("redis")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return require_service("postgres")


@pytest.fixture(scope="session")
def tansu() -> Iterator[object]:
    """One embedded Tansu broker for the whole session (start-up costs a second or two)."""
    from flows.transports.tansu import TansuBroker

    broker = TansuBroker()
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def broker_mode(settings):  # pytest-django's settings fixture
    """Point one protocol at a mode and URL for this test: ``broker_mode("amqp", "external", url)``.

    Sets the protocol's URL setting (``AMQP_URL=memory://`` for embedded, ``url`` for external).
    """
    from flows import transports

    def use(protocol: str, mode: str, url: str | None = None) -> transports.Broker:
        setting, value = transports.setting_for(protocol, mode, url)
        setattr(settings, setting, value)
        transports.reset()
        return transports.get_broker(protocol)

    yield use
    transports.reset()
