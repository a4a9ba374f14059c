"""docker-compose.yml wires every service the app reads from its environment."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from dashboard.settings import BASE_DIR, database_from_url
from flows.transports import BROKERS

COMPOSE = BASE_DIR / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def url_settings() -> set[str]:
    return {setting for _, setting in BROKERS.values()} | {"DATABASE_URL"}


def test_every_service_is_there(compose):
    assert set(compose["services"]) >= {"rabbitmq", "kafka", "mosquitto", "redis", "postgres", "web", "worker"}
    kafka = compose["services"]["kafka"]
    assert kafka["image"].startswith("apache/kafka:4"), "Kafka 4 runs in KRaft mode"
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not any("zookeeper" in name for name in compose["services"])
    assert "management" in compose["services"]["rabbitmq"]["image"]


@pytest.mark.parametrize("service", ["web", "worker"])
def test_app_services_read_every_url_from_the_environment(compose, service):
    spec = compose["services"][service]
    env = spec["environment"]
    assert env["FLOWS_BROKERS"] == "external" and env["CHANNEL_LAYER"] == "redis"
    names = set(compose["services"])
    for setting in url_settings():
        assert setting in env, f"{service} lacks {setting}"
        url = env[setting] if "://" in env[setting] else f"tcp://{env[setting]}"
        host = urlparse(url).hostname
        assert host in names, f"{setting} points at {host}, which is not a compose service"
        if service == "web":
            assert host in spec["depends_on"], f"web does not wait for {host}"
    assert database_from_url(env["DATABASE_URL"])["ENGINE"] == "django.db.backends.postgresql"
    postgres = compose["services"]["postgres"]["environment"]
    parsed = urlparse(env["DATABASE_URL"])
    assert (parsed.username, parsed.password, parsed.path.lstrip("/")) == (
        postgres["POSTGRES_USER"], postgres["POSTGRES_PASSWORD"], postgres["POSTGRES_DB"])


def test_commands_name_real_modules(compose):
    web = compose["services"]["web"]["command"]
    assert "daphne" in web and "dashboard.asgi:application" in web
    worker = compose["services"]["worker"]["command"].split()
    app_module = worker[worker.index("-A") + 1]
    assert importlib.util.find_spec(app_module) is not None, f"celery app module {app_module} does not exist"
    for volume in compose["services"]["mosquitto"].get("volumes", []):
        source = volume.split(":")[0]
        assert (BASE_DIR / source).exists(), f"mounted file {source} is missing"
    assert (BASE_DIR / "Dockerfile").exists()


def compose_commands() -> list[tuple[str, list[str], bool]]:
    """(label, argv prefix, available) for each tool that can validate the file.

    ``docker-compose`` (Debian's package, installed by ``.ci/run``) must exist in CI;
    the Compose v2 plugin (``docker compose``) is checked too wherever it is installed.
    """
    v1 = shutil.which("docker-compose")
    docker = shutil.which("docker")
    v2 = bool(docker) and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    return [("docker-compose", [v1 or "docker-compose"], bool(v1)), ("docker compose", [docker or "docker", "compose"], v2)]


@pytest.mark.parametrize("label,argv,available", compose_commands(), ids=lambda v: v if isinstance(v, str) else "")
def test_compose_tool_accepts_the_file(label, argv, available, require_tool):
    require_tool(label, available, in_ci=label == "docker-compose")
    env = {**os.environ, "SECRET_KEY": "a-key-of-the-deployment"}
    result = subprocess.run([*argv, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=Path(BASE_DIR),
                            env=env)
    assert result.returncode == 0, f"{label} rejects docker-compose.yml:\n{result.stderr}"


def test_a_broken_file_is_rejected(tmp_path, require_tool):
    """The validation above can fail: a service with an unknown key is refused."""
    label, argv, available = compose_commands()[0]
    require_tool(label, available)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("services:", "services:\n  bogus:\n    imagez: nothing\n", 1))
    env = {**os.environ, "SECRET_KEY": "a-key-of-the-deployment"}
    result = subprocess.run([*argv, "-f", str(broken), "config", "-q"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode != 0


def test_the_published_stack_needs_its_own_secret_key(compose, require_tool):
    """web listens on every interface, so the start-up checks apply; compose demands a key."""
    env = compose["services"]["web"]["environment"]
    assert env["FLOWS_LISTEN_HOST"] == "0.0.0.0"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "no published default key"
    label, argv, available = compose_commands()[0]
    require_tool(label, available)
    without = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    result = subprocess.run([*argv, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=Path(BASE_DIR),
                            env=without)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr
