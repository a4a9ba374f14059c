"""The run page's parameters, re-run and export links, and the Runs page's filters, as served."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from dashboard.params_display import param_views, run_param_views, short_text
from flows import registry
from flows.models import Run

pytestmark = pytest.mark.django_db


def contract(slug: str) -> dict:
    return registry.get(slug).contract()


def stored_run(slug: str, given: dict | None = None, **fields) -> Run:
    """A finished run as the server stores it: parameters completed by the workflow's validation."""
    params, errors = registry.get(slug).validate(given or {})
    assert not errors
    return Run.objects.create(workflow=slug, params=params, state=fields.pop("state", "succeeded"), **fields)


def test_params_read_with_the_form_labels_and_bindings_as_rows():
    run = stored_run("amqp-routing", {"exchange_type": "direct", "bindings": [
        {"queue": "billing", "key": "paid"}, {"queue": "audit", "key": ""}]})
    views = {v.name: v for v in param_views(run.params, contract("amqp-routing")["params"])}
    assert views["bindings"].label == "Bindings"
    assert views["bindings"].rows == ("billing ← paid", 'audit ← ""')
    assert views["exchange_type"].text == "direct" and not views["exchange_type"].is_default
    assert views["messages"].text == "12" and views["messages"].is_default
    assert views["consumers_by_queue"].text == "none"


def test_the_example_a_workflow_fills_in_counts_as_default():
    declared = contract("amqp-routing")["params"]
    example = {v.name: v for v in run_param_views("amqp-routing", stored_run("amqp-routing").params, declared)}
    assert example["bindings"].rows and example["bindings"].is_default and example["keys"].is_default
    own = stored_run("amqp-routing", {"bindings": [{"queue": "q", "key": "order.#"}]})
    views = {v.name: v for v in run_param_views("amqp-routing", own.params, declared)}
    assert not views["bindings"].is_default and views["keys"].is_default
    assert views["work_ms"].label == "Work ms"  # no label declared: the form's own rule


def test_mqtt_runs_with_qos_2_and_0_read_differently():
    declared = contract("mqtt-qos")["params"]
    two = param_views(stored_run("mqtt-qos", {"qos": 2}).params, declared)
    zero = param_views(stored_run("mqtt-qos", {"qos": 0}).params, declared)
    assert [v.text for v in two if v.name == "qos"] == ["2"]
    assert [v.text for v in zero if v.name == "qos"] == ["0"]
    subscribers = next(v for v in zero if v.name == "subscribers")
    assert subscribers.rows[0].startswith("s1: filter=home/+/temp qos=1")
    assert next(v for v in zero if v.name == "retain").text == "on"


def test_short_text_names_every_parameter_and_clips_long_values():
    run = stored_run("amqp-routing")
    text = short_text("amqp-routing", run.params, contract("amqp-routing")["params"])
    assert text.startswith("exchange_type=topic · bindings=4 rows · keys=")
    assert "…" in text and "work_ms=40" in text


def test_run_page_shows_params_run_again_and_exports():
    run = stored_run("amqp-routing", {"exchange_type": "direct", "bindings": [{"queue": "billing", "key": "paid"}]})
    html = Client().get(f"/runs/{run.pk}/").content.decode()
    assert re.search(r'data-run-param="exchange_type".*?<dt>Exchange type</dt>\s*<dd>direct</dd>', html, re.S)
    assert "<li>billing ← paid</li>" in html
    assert 'id="run-again"' in html
    assert f'href="/workflows/amqp-routing/?from={run.pk}"' in html
    for path in ("events.ndjson", "events.csv", "summary.json"):
        assert f'href="/api/runs/{run.pk}/{path}" download' in html


def test_runs_page_filters_like_the_api_and_says_what_it_refused():
    client = Client()
    plain = stored_run("http-crud", summary={"counts": {"duplicates": 0, "lost": 0, "published": 3}})
    dup = stored_run("amqp-redelivery", summary={"counts": {"duplicates": 2, "lost": 0, "published": 10}})

    def shown(query: str) -> list[int]:
        return [int(n) for n in re.findall(r'<tr data-run="(\d+)"', client.get(f"/runs/{query}").content.decode())]

    assert shown("") == [dup.pk, plain.pk]
    assert shown("?duplicates=1") == [dup.pk]
    assert shown("?workflow=http-crud") == [plain.pk]
    assert shown("?lost=1") == []
    assert "No run matches this filter" in client.get("/runs/?lost=1").content.decode()
    refused = client.get("/runs/?state=bogus").content.decode()
    assert "unknown state" in refused and shown("?state=bogus") == [dup.pk, plain.pk]
    page = client.get("/runs/?workflow=amqp-redelivery").content.decode()
    assert '<option value="amqp-redelivery" selected>' in page
    assert "crash_at=3" in page  # the parameters, short
