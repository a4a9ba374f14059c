"""Classroom mode over HTTP: who may change state, the instructor link, rate limits."""

from __future__ import annotations

import io
import json

import pytest
from django.test import Client

from classroom import auth, ratelimit, startup
from classroom.tests.conftest import TOKEN
from flows.models import Run

pytestmark = pytest.mark.django_db

BEARER = {"HTTP_AUTHORIZATION": f"Bearer {TOKEN}"}
# An unknown workflow: a POST that passes every check answers 400 naming it, and no run starts.
NO_RUN = json.dumps({"workflow": "no-such-flow"})


def post(client: Client, path: str, body: str = "{}", **headers: str):
    return client.post(path, body, content_type="application/json", **headers)


def assert_refused(response) -> None:
    assert response.status_code == 403
    assert response["Content-Type"].startswith("application/json")
    assert "only the instructor may" in response.json()["errors"]["auth"]


def test_without_a_token_on_loopback_everyone_may_change_state(client, settings):
    settings.FLOWS_CLASSROOM_TOKEN = ""
    settings.FLOWS_LISTEN_HOST = "127.0.0.1"
    assert post(client, "/api/runs/", NO_RUN).status_code == 400  # reached the view
    assert post(client, "/api/rooms/").status_code == 201
    assert client.get("/").context["instructor"] is True


@pytest.mark.parametrize("path, body", [
    ("/api/runs/", NO_RUN),
    ("/api/runs/1/actions/", json.dumps({"action": "cancel"})),
    ("/api/rooms/", "{}"),
])
def test_with_a_token_anonymous_state_changes_are_refused_as_json(client, classroom_token, path, body):
    before = Run.objects.count()
    assert_refused(post(client, path, body))
    assert Run.objects.count() == before


def test_a_form_post_outside_the_api_is_refused_as_json_too(client, classroom_token):
    assert_refused(client.post("/runs/", {"anything": "1"}))


def test_a_wrong_bearer_token_is_refused(client, classroom_token):
    assert_refused(post(client, "/api/rooms/", HTTP_AUTHORIZATION="Bearer not-the-token"))
    assert_refused(post(client, "/api/rooms/", HTTP_AUTHORIZATION=f"Basic {TOKEN}"))
    assert_refused(post(client, "/api/rooms/", HTTP_AUTHORIZATION=f"Bearer {TOKEN}x"))


def test_the_bearer_token_may_change_state_without_a_csrf_token(classroom_token):
    client = Client(enforce_csrf_checks=True)  # a script: no cookie, no X-CSRFToken
    assert post(client, "/api/runs/", NO_RUN, **BEARER).status_code == 400  # passed auth and CSRF
    created = post(client, "/api/rooms/", **BEARER)
    assert created.status_code == 201
    assert set(created.json()) >= {"code", "join_url"}


def test_the_instructor_link_sets_a_session_and_drops_the_token_from_the_url(classroom_token):
    client = Client(enforce_csrf_checks=True)
    landing = client.get(f"/classroom/?token={TOKEN}")
    assert landing.status_code == 302 and landing["Location"] == "/"
    page = client.get("/")
    assert page.context["instructor"] is True
    assert TOKEN not in page.content.decode()
    csrf = client.cookies["csrftoken"].value
    created = post(client, "/api/rooms/", HTTP_X_CSRFTOKEN=csrf)
    assert created.status_code == 201
    assert post(client, "/api/runs/", NO_RUN, HTTP_X_CSRFTOKEN=csrf).status_code == 400


def test_a_wrong_instructor_link_is_refused_as_json_and_sets_nothing(client, classroom_token):
    refused = client.get("/classroom/?token=guess")
    assert refused.status_code == 403 and "token" in refused.json()["errors"]["auth"]
    assert_refused(post(client, "/api/rooms/"))
    assert client.get("/").context["instructor"] is False


def test_a_session_from_another_token_no_longer_counts(client, settings, classroom_token):
    client.get(f"/classroom/?token={TOKEN}")
    assert post(client, "/api/rooms/").status_code == 201
    settings.FLOWS_CLASSROOM_TOKEN = "a-new-token-after-a-restart"
    assert_refused(post(client, "/api/rooms/"))


def test_reads_stay_open_to_everyone(client, classroom_token):
    code = post(Client(), "/api/rooms/", **BEARER).json()["code"]
    for path in ("/", "/runs/", "/api/runs/", "/api/workflows/", f"/api/rooms/{code}/", f"/join/{code}/"):
        assert client.get(path).status_code == 200, path
    assert client.get("/").context["instructor"] is False
    joined = client.get(f"/join/{code}/")
    assert joined.context["boot"]["instructor"] is False and joined.context["instructor"] is False
    assert TOKEN not in joined.content.decode()


def test_tokens_are_compared_in_constant_time(client, classroom_token, monkeypatch):
    seen = []
    real = auth.hmac.compare_digest

    def spy(a, b):
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", spy)
    assert_refused(post(client, "/api/rooms/", HTTP_AUTHORIZATION="Bearer guess"))
    assert (b"guess", TOKEN.encode()) in seen
    seen.clear()
    client.get("/classroom/?token=guess2")
    assert (b"guess2", TOKEN.encode()) in seen


def test_beyond_loopback_a_token_is_generated_once(settings):
    settings.FLOWS_CLASSROOM_TOKEN = ""
    settings.FLOWS_LISTEN_HOST = "127.0.0.1"
    assert auth.current_token() is None
    assert not auth.token_applies("", "localhost") and not auth.token_applies("", "::1")
    assert auth.token_applies("x", "127.0.0.1")
    for host in ("0.0.0.0", "::", "192.168.1.20", "classroom.example"):
        assert auth.token_applies("", host), host
    settings.FLOWS_LISTEN_HOST = "0.0.0.0"
    token = auth.current_token()
    assert token is not None and len(token) >= 32 and auth.token_was_generated()
    assert auth.current_token() == token, "one token for the life of the process"
    settings.FLOWS_CLASSROOM_TOKEN = "given"
    assert auth.current_token() == "given" and not auth.token_was_generated()


def test_the_instructor_link_is_printed_once(settings):
    settings.FLOWS_CLASSROOM_TOKEN = ""
    settings.FLOWS_LISTEN_HOST = "0.0.0.0"
    settings.FLOWS_LISTEN_PORT = "8123"
    out = io.StringIO()
    assert startup.announce(out) is True
    assert startup.announce(out) is False
    text = out.getvalue()
    assert text.count(auth.current_token()) == 1
    assert ":8123/classroom/?token=" in text and "0.0.0.0" not in text


def test_nothing_is_printed_without_a_token(settings):
    settings.FLOWS_CLASSROOM_TOKEN = ""
    settings.FLOWS_LISTEN_HOST = "127.0.0.1"
    out = io.StringIO()
    assert startup.announce(out) is False and out.getvalue() == ""


# -- rate limits ---------------------------------------------------------------------------


def frozen_bucket(name: str, rate: float, burst: float) -> None:
    """The middleware's bucket with time stopped: nothing refills while the burst is sent."""
    ratelimit.limiter(name, rate, burst).clock = lambda: 1000.0


def test_a_burst_of_run_starts_from_one_client_is_cut_off(classroom_token, settings):
    settings.FLOWS_RATE_RUNS_PER_MIN = 10
    frozen_bucket("runs", 10 / 60, 10)
    client = Client()
    answers = [post(client, "/api/runs/", NO_RUN, **BEARER) for _ in range(49)]
    statuses = [a.status_code for a in answers]
    assert statuses[:10] == [400] * 10, "the first ten reach the view"
    assert statuses[10:] == [429] * 39, "the rest of the burst is cut off"
    refused = answers[-1]
    assert "at most 10 a minute" in refused.json()["errors"]["rate"] and int(refused["Retry-After"]) >= 1
    other = post(client, "/api/runs/", NO_RUN, REMOTE_ADDR="10.0.0.7", **BEARER)
    assert other.status_code == 400, "another client has its own bucket"


def test_a_burst_of_actions_from_one_client_is_cut_off(classroom_token, settings):
    settings.FLOWS_RATE_ACTIONS_PER_S = 20
    frozen_bucket("actions", 20, 20)
    client = Client()
    body = json.dumps({"action": "cancel"})
    answers = [post(client, "/api/runs/999999/actions/", body, **BEARER) for _ in range(30)]
    assert [a.status_code for a in answers] == [404] * 20 + [429] * 10
    assert "at most 20 a second" in answers[-1].json()["errors"]["rate"]


def test_reads_are_not_rate_limited(client, classroom_token):
    assert all(client.get("/api/runs/").status_code == 200 for _ in range(40))


def test_a_bucket_refills_at_its_rate():
    now = [0.0]
    bucket = ratelimit.RateLimiter(rate=2, burst=3, clock=lambda: now[0])
    assert [bucket.allow("a") for _ in range(4)] == [True, True, True, False]
    assert bucket.allow("b"), "each client has its own bucket"
    assert bucket.retry_after("a") == pytest.approx(0.5)
    now[0] = 0.5
    assert bucket.allow("a") and not bucket.allow("a")
    now[0] = 100
    assert [bucket.allow("a") for _ in range(4)] == [True, True, True, False], "never more than the burst"


def test_the_instructor_link_is_not_logged(client, classroom_token, caplog):
    caplog.set_level("DEBUG")
    client.get(f"/classroom/?token={TOKEN}")
    client.get("/classroom/?token=a-wrong-guess")
    assert TOKEN not in caplog.text and "a-wrong-guess" not in caplog.text


def test_the_link_says_what_to_set_when_students_would_be_refused(settings):
    settings.FLOWS_CLASSROOM_TOKEN = TOKEN
    settings.FLOWS_LISTEN_HOST = "192.168.1.20"
    settings.FLOWS_LISTEN_PORT = "8000"
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.FLOWS_ALLOWED_ORIGINS = ["http://127.0.0.1:8000"]
    out = io.StringIO()
    startup.announce(out)
    assert "http://192.168.1.20:8000/classroom/?token=" in out.getvalue()
    assert "ALLOWED_HOSTS=192.168.1.20 FLOWS_ALLOWED_ORIGINS=http://192.168.1.20:8000" in out.getvalue()
    settings.ALLOWED_HOSTS = ["192.168.1.20"]
    settings.FLOWS_ALLOWED_ORIGINS = ["http://192.168.1.20:8000"]
    assert startup.reachability_hint("http://192.168.1.20:8000") == ""


def test_daphnes_access_log_does_not_write_the_token():
    from daphne.access import AccessLogGenerator

    startup.redact_access_log()
    startup.redact_access_log()  # idempotent: asgi may be imported twice
    out = io.StringIO()
    log = AccessLogGenerator(out)
    log("http", "complete", {"client": "10.0.0.5:5000", "method": "GET", "path": f"/classroom/?token={TOKEN}",
                             "status": 302, "size": 0})
    log("http", "complete", {"client": "10.0.0.5:5000", "method": "GET", "path": "/runs/?a=1&token=x&b=2",
                             "status": 200, "size": 10})
    text = out.getvalue()
    assert TOKEN not in text and "/classroom/?token=… " in text.replace('"', " ")
    assert "/runs/?a=1&token=…&b=2" in text
