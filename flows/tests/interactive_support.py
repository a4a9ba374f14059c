"""Driving an interactive run through the API, as the browser does: start it, act, finish.

Shared by the per-protocol interactive tests so each reads as its lesson: publish, bind,
add, slow, crash — and what the broker did.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test import Client

from flows.runner import get_runner

from .polling import poll, wait_for_events


class HandsOn:
    """One live interactive run and the calls a user makes on it."""

    def __init__(self, client: Client, run_id: int) -> None:
        self.client, self.run_id = client, run_id

    def act(self, action: str, target: str = "", **params: Any) -> Any:
        """POST the action; the response (202 with ``result``, or the 4xx)."""
        body = {"action": action, "target": target, "params": params}
        return self.client.post(f"/api/runs/{self.run_id}/actions/", data=json.dumps(body),
                                content_type="application/json")

    def do(self, action: str, target: str = "", **params: Any) -> dict[str, Any]:
        """The action, which must be accepted: its 202 answer."""
        response = self.act(action, target, **params)
        assert response.status_code == 202, (action, params, response.json())
        return response.json()

    def menu(self) -> dict[str, Any]:
        response = self.client.get(f"/api/runs/{self.run_id}/actions/")
        assert response.status_code == 200, response.json()
        return response.json()["actions"]

    def events(self, predicate: Any, timeout: float, what: str) -> list[dict[str, Any]]:
        return wait_for_events(self.run_id, predicate, timeout, what)

    def finish(self, timeout: float = 60.0) -> dict[str, Any]:
        """Finish, wait for the final state; the frozen summary."""
        self.do("finish")
        poll(lambda: get_runner().wait(self.run_id, 0.2), timeout, f"run {self.run_id} to end after finish")
        return self.client.get(f"/api/runs/{self.run_id}/").json()


@contextmanager
def interactive_run(slug: str, **params: Any) -> Iterator[HandsOn]:
    """Start ``slug`` with ``interactive`` on; cancel it on the way out if a test left it live."""
    client = Client()
    response = client.post("/api/runs/", data=json.dumps({"workflow": slug, "params": {"interactive": True, **params}}),
                           content_type="application/json")
    assert response.status_code == 201, response.json()
    run = HandsOn(client, response.json()["id"])
    try:
        yield run
    finally:
        if get_runner().is_live(run.run_id):
            run.act("cancel")
            get_runner().wait(run.run_id, 30.0)
