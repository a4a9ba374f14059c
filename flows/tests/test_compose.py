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
# What docker-compose.yml demands from whoever deploys it.
DEPLOYMENT_SECRETS = {"SECRET_KEY": "a-key-of-the-deployment", "FLOWS_CLASSROOM_TOKEN": "a-token-of-the-deployment"}


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
    env = {**os.environ, **DEPLOYMENT_SECRETS}
    result = subprocess.run([*argv, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=Path(BASE_DIR),
                            env=env)
    assert result.returncode == 0, f"{label} rejects docker-compose.yml:\n{result.stderr}"


def test_a_broken_file_is_rejected(tmp_path, require_tool):
    """The validation above can fail: a service with an unknown key is refused."""
    label, argv, available = compose_commands()[0]
    require_tool(label, available)
    broken = tmp_path / "docker-compose.yml"
    broken.write_text(COMPOSE.read_text().replace("services:", "services:\n  bogus:\n    imagez: nothing\n", 1))
    env = {**os.environ, **DEPLOYMENT_SECRETS}
    result = subprocess.run([*argv, "-f", str(broken), "config", "-q"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert result.returncode != 0


def test_the_published_stack_needs_its_own_secret_key(compose, require_tool):
    """web listens on every interface, so the start-up checks apply; compose demands a key."""
    env = compose["services"]["web"]["environment"]
    assert env["FLOWS_LISTEN_HOST"] == "0.0.0.0"
    assert env["SECRET_KEY"].startswith("${SECRET_KEY:?"), "no published default key"
    label, argv, available = compose_commands()[0]
    require_tool(label, available)
    without = {**{k: v for k, v in os.environ.items() if k != "SECRET_KEY"}, "FLOWS_CLASSROOM_TOKEN": "a-token"}
    result = subprocess.run([*argv, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=Path(BASE_DIR),
                            env=without)
    assert result.returncode != 0 and "SECRET_KEY" in result.stderr


def test_two_web_processes_behind_a_proxy_that_passes_websockets(compose):
    services = compose["services"]
    webs = [name for name, spec in services.items() if "dashboard.asgi:application" in str(spec.get("command", ""))]
    assert len(webs) >= 2, "the web tier runs as two processes"
    for name in webs:
        assert "ports" not in services[name], f"{name} is reached through the proxy only"
        assert services[name]["environment"]["REDIS_URL"].startswith("redis://"), "a channel layer both share"
        assert "migrate" not in services[name]["command"], "one migrate service, not a race between web processes"
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    proxy = services["proxy"]
    assert proxy["ports"] == ["8000:8000"]
    source = proxy["volumes"][0].split(":")[0]
    config = (BASE_DIR / source).read_text()
    upstream = config[config.index("upstream"):config.index("}")]
    assert {line.split()[1].rstrip(";") for line in upstream.splitlines() if line.strip().startswith("server ")} == {
        f"{name}:8000" for name in webs}
    assert "proxy_set_header Upgrade $http_upgrade" in config and "proxy_http_version 1.1" in config
    assert "proxy_set_header Host $http_host" in config, "the app checks Host and Origin against what the browser sent"
