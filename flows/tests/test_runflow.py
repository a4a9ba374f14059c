"""``manage.py runflow``: headless runs print the summary and exit 0 only on success."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

pytestmark = pytest.mark.django_db(transaction=True)


def test_json_summary():
    out = StringIO()
    call_command("runflow", "http-crud", "--param", "rate=0", "--param", "delay_ms=0", "--param", "repeat=2",
                 "--json", stdout=out)
    summary = json.loads(out.getvalue())
    assert summary["state"] == "succeeded"
    assert summary["params"]["repeat"] == 2
    assert summary["result"]["put"]["idempotent"] is True
    assert summary["counts"]["published"] == summary["expected"]


def test_bad_input_is_a_clear_error():
    with pytest.raises(CommandError, match="unknown workflow"):
        call_command("runflow", "nope")
    with pytest.raises(CommandError, match="persons: must be at most 50"):
        call_command("runflow", "http-crud", "--param", "persons=51")
    with pytest.raises(CommandError, match="NAME=VALUE"):
        call_command("runflow", "http-crud", "--param", "persons")


def test_exit_status_is_nonzero_when_the_run_fails(tmp_path):
    db = tmp_path / "cli.sqlite3"
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{db}", "DJANGO_SETTINGS_MODULE": "dashboard.settings"}
    manage = [sys.executable, str(settings.BASE_DIR / "manage.py")]
    subprocess.run([*manage, "migrate", "-v0"], check=True, env=env, cwd=settings.BASE_DIR)
    ok = subprocess.run([*manage, "runflow", "http-crud", "--param", "rate=0", "--param", "delay_ms=0"],
                        env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "succeeded" in ok.stdout and "perceived latency ms" in ok.stdout
    failed = subprocess.run([*manage, "runflow", "http-crud", "--param", "rate=1", "--timeout", "0.5"],
                            env=env, cwd=settings.BASE_DIR, capture_output=True, text=True, timeout=120)
    assert failed.returncode == 1
    assert "timed out after 0.5 s" in failed.stderr
