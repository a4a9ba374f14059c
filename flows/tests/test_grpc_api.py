"""``grpc-person`` through the HTTP API: its contract is listed, bad parameters are 400s."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from flows.models import Run
from flows.workflows.grpc_person import proto_text

pytestmark = pytest.mark.django_db(transaction=True)


def start(client: Client, params):
    return client.post("/api/runs/", data=json.dumps({"workflow": "grpc-person", "params": params}),
                       content_type="application/json")


def test_catalog_lists_the_contract_and_parameters():
    listed = {w["slug"]: w for w in Client().get("/api/workflows/").json()}
    workflow = listed["grpc-person"]
    assert workflow["protocol"] == "grpc" and workflow["pattern"] == "sync" and workflow["broker"] is None
    assert workflow["proto"] == proto_text()
    assert "service PersonService" in workflow["proto"]
    assert {"calls", "concurrency", "delay_ms", "deadline_ms", "error_rate"} <= set(workflow["params"])


@pytest.mark.parametrize(
    "params, field",
    [
        ({"calls": 0}, "calls"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": "many"}, "concurrency"),
        ({"delay_ms": -1}, "delay_ms"),
        ({"deadline_ms": 0}, "deadline_ms"),
        ({"error_rate": 1.5}, "error_rate"),
        ({"methods": "DeletePerson"}, "methods"),
        ({"timeout": 3}, "timeout"),
    ],
)
def test_bad_parameters_are_400_naming_the_field(params, field):
    before = Run.objects.count()
    response = start(Client(), params)
    assert response.status_code == 400
    assert field in response.json()["errors"]
    assert Run.objects.count() == before
