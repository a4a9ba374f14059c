"""Property tests: whatever a client sends to the JSON API or the run WebSocket, never a 5xx.

Hypothesis generates bodies, parameters, actions, query strings and frames — mostly near
the valid shapes (real slugs and parameter names with hostile values), some entirely
random, some hostile by construction (deep nesting, huge numbers, other content types).
Every answer must be below 500; every 4xx must be JSON ``{"errors": {...}}`` of bounded
size; every WebSocket close must be one of the protocol's codes (never 1011).

Starting runs is not what is under test: one slow real run holds the only live slot
(``FLOWS_MAX_LIVE_RUNS = 1``), so a valid ``POST /api/runs/`` answers 429, and actions are
sent to that live run. It is cancelled and waited for at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections import Counter
from urllib.parse import urlencode

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dashboard.asgi import application
from flows import registry
from flows.models import Run
from flows.runner import NotLive, get_runner, wait_until_finished

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = "http://127.0.0.1:8000"
WS_HEADERS = [(b"origin", ORIGIN.encode()), (b"host", b"127.0.0.1:8000")]
SLOW = {"persons": 50, "repeat": 20, "delay_ms": 0, "error_rate": 0.0, "rate": 2}
MAX_ERROR_BODY = 8192
FUZZ = settings(max_examples=500, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
# What the fuzzing tried and how it was answered, reported at the end of the module.
TALLY: Counter = Counter()

# -- strategies --------------------------------------------------------------------------

edge_numbers = st.sampled_from([
    0, -1, 1, 2**31, 2**53, 2**63, -(2**63), 10**30, int("9" * 401), -int("9" * 401),
    1e308, -1e308, 1e-320, math.inf, -math.inf, math.nan, 0.5, -0.0,
])
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), edge_numbers, st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40), st.sampled_from(["", "1", "-5", "1e999", "nan", "true", "[1]", "{}", "9" * 400]),
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
def nested(depth_and_kind: tuple[int, str]) -> str:
    depth, kind = depth_and_kind
    return "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth


depths = st.sampled_from([2, 33, 100, 1000, 5000, 30_000]) | st.integers(1, 40_000)
deep_text = st.tuples(depths, st.sampled_from(["list", "object"])).map(nested)


def params_for(slug: str) -> st.SearchStrategy:
    names = sorted(registry.get(slug).params)
    keys = st.sampled_from(names) | st.text(max_size=12)
    return st.dictionaries(keys, json_values | deep_text, max_size=len(names) + 2)


run_bodies = st.one_of(
    st.sampled_from(sorted(registry.WORKFLOWS)).flatmap(
        lambda slug: st.fixed_dictionaries({"workflow": st.just(slug)}, optional={"params": params_for(slug) | json_values})
    ),
    st.fixed_dictionaries({"workflow": json_values}, optional={"params": json_values, "extra": json_values}),
    json_values,
)
action_bodies = st.one_of(
    st.fixed_dictionaries({"action": st.text(max_size=30).filter(lambda a: a != "cancel") | json_values},
                          optional={"target": json_values, "params": json_values}),
    json_values,
)


def encoded(values: st.SearchStrategy) -> st.SearchStrategy:
    """Bytes of a body: the JSON of ``values``, or hostile text, or any bytes."""
    return st.one_of(
        values.map(lambda v: json.dumps(v).encode()),
        values.map(lambda v: json.dumps(v).encode()),  # twice as likely as the others
        deep_text.map(str.encode),
        st.binary(max_size=200),
        st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    )


content_types = st.sampled_from([
    "application/json", "application/json", "application/json; charset=utf-8", "application/problem+json",
    "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "",
])
query_values = st.one_of(st.text(max_size=30), st.integers().map(str), edge_numbers.map(str))
query_strings = st.dictionaries(st.sampled_from(["after", "limit"]) | st.text(max_size=8), query_values, max_size=3)

# -- checks ------------------------------------------------------------------------------


@pytest.fixture(scope="module", autouse=True)
def report_tally():
    """Print what the fuzzing tried (``pytest -s`` shows it)."""
    yield
    print(f"\nfuzz tally: {dict(TALLY)}")


def check_http(kind: str, response) -> None:  # Django's test response
    TALLY[f"{kind} → {response.status_code}"] += 1
    assert response.status_code < 500, (response.status_code, response.content[:300])
    if response.status_code >= 400:
        assert response["Content-Type"] == "application/json", response.content[:200]
        assert len(response.content) <= MAX_ERROR_BODY, len(response.content)
        errors = response.json()["errors"]
        assert isinstance(errors, dict) and errors and all(isinstance(v, str) and v for v in errors.values())


@pytest.fixture
def live_run(settings):  # pytest-django's settings fixture
    """One real, slow run holding the only live slot; cancelled and waited for afterwards."""
    settings.FLOWS_MAX_LIVE_RUNS = 1
    settings.FLOWS_ALLOWED_ORIGINS = [ORIGIN]
    run = get_runner().start("http-crud", SLOW)
    yield run
    with contextlib.suppress(NotLive):
        get_runner().act(run.pk, "cancel")
    wait_until_finished(run.pk, 30)
    assert not Run.objects.filter(state__in=Run.LIVE_STATES).exists(), "the fuzzing left runs live"


@pytest.fixture
def browser_like() -> tuple[Client, str]:
    """A client that passes Django's CSRF check as a page does (so form bodies get read)."""
    client = Client(enforce_csrf_checks=True)
    return client, client.get("/api/workflows/").cookies["csrftoken"].value


@pytest.mark.stack
def test_post_runs_never_5xx(live_run, browser_like):
    client, token = browser_like

    @FUZZ
    @given(body=encoded(run_bodies), content_type=content_types)
    def post_run(body: bytes, content_type: str) -> None:
        response = client.post("/api/runs/", body, content_type=content_type, HTTP_X_CSRFTOKEN=token)
        check_http("POST /api/runs/", response)
        assert response.status_code != 201, "no run may start: the only slot is taken"

    post_run()


@pytest.mark.stack
def test_post_actions_never_5xx(live_run, browser_like):
    client, token = browser_like
    finished = Run.objects.create(workflow="http-crud", state="succeeded")

    @FUZZ
    @given(body=encoded(action_bodies), content_type=content_types,
           run_id=st.sampled_from([live_run.pk, finished.pk, 10**30, 0]))
    def post_action(body: bytes, content_type: str, run_id: int) -> None:
        response = client.post(f"/api/runs/{run_id}/actions/", body, content_type=content_type,
                               HTTP_X_CSRFTOKEN=token)
        check_http("POST /api/runs/<id>/actions/", response)

    post_action()
    assert Run.objects.get(pk=live_run.pk).state == "running", "no generated action may cancel the run"


@pytest.mark.stack
def test_get_events_and_runs_never_5xx(live_run):
    client = Client()

    @FUZZ
    @given(query=query_strings, run_id=st.sampled_from([live_run.pk, 10**30, 0]), path=st.sampled_from(["events", "list"]))
    def get_page(query: dict, run_id: int, path: str) -> None:
        url = f"/api/runs/{run_id}/events/" if path == "events" else "/api/runs/"
        response = client.get(f"{url}?{urlencode(query)}")
        check_http(f"GET {url.replace(str(run_id), '<id>')}", response)

    get_page()


# -- the WebSocket -------------------------------------------------------------------------

frames = st.one_of(
    st.fixed_dictionaries({"type": st.just("ack"), "seq": json_values | st.integers()}).map(json.dumps),
    json_values.map(json.dumps),
    deep_text,
    st.text(max_size=100),
).map(lambda text: {"text": text}) | st.binary(max_size=100).map(lambda data: {"bytes": data})
ALLOWED_CLOSE = {4400, 4404}


async def socket_session(path: str, frame: dict) -> list[dict]:
    """Connect, send ``frame`` and then a sentinel bad frame; return what the server sent.

    Frames are handled in order, so the server's answer to the sentinel (an error and a
    4400 close) marks the end of what ``frame`` caused.
    """
    communicator = WebsocketCommunicator(application, path, headers=WS_HEADERS)
    connected, _ = await communicator.connect(timeout=10)
    if not connected:
        return [{"type": "refused"}]
    received: list[dict] = []
    try:
        # send_input, not send_to: an empty text frame is a frame too.
        await communicator.send_input({"type": "websocket.receive", **frame})
        await communicator.send_input({"type": "websocket.receive", "text": "[]"})
        while True:
            output = await communicator.receive_output(timeout=10)
            received.append(output)
            if output["type"] == "websocket.close":
                return received
    finally:
        await communicator.disconnect()


# Not in the stack run: every example runs on an event loop of its own, and channels-redis
# keeps connections per loop; closing hundreds of loops under it once hung the loop's
# shutdown (a test-harness artefact, not the consumer). The consumer's answers to bad
# frames do not depend on the layer, and test_websocket's bad-frame tests run on Redis.
def test_websocket_frames_and_queries_never_1011(live_run):
    @FUZZ
    @given(query=query_strings, frame=frames, run_id=st.sampled_from([str(live_run.pk), "999999", "abc", str(10**30)]))
    def session(query: dict, frame: dict, run_id: str) -> None:
        path = f"/ws/runs/{run_id}/?{urlencode(query)}"
        received = asyncio.run(socket_session(path, frame))
        TALLY[f"ws → {received[-1].get('code', received[-1]['type'])}"] += 1
        if received == [{"type": "refused"}]:
            assert not run_id.isdigit(), f"{path} refused"
            return
        closes = [m for m in received if m["type"] == "websocket.close"]
        assert len(closes) == 1 and closes[0].get("code") in ALLOWED_CLOSE, received[-3:]
        errors = [json.loads(m["text"]) for m in received if m.get("text", "").startswith('{"type": "error"')]
        assert errors and all(e["error"] for e in errors)

    session()
