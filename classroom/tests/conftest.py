"""Every classroom test starts with empty rate-limit buckets and no generated token."""

from __future__ import annotations

import pytest

from classroom import auth, ratelimit, startup

TOKEN = "instructor-test-token-0123456789"


@pytest.fixture(autouse=True)
def fresh_classroom_state(monkeypatch):
    ratelimit.reset_all()
    monkeypatch.setattr(auth, "_generated", None)
    monkeypatch.setattr(startup, "_announced", False)
    yield
    ratelimit.reset_all()


@pytest.fixture
def classroom_token(settings) -> str:
    settings.FLOWS_CLASSROOM_TOKEN = TOKEN
    return TOKEN


def instructor_session_cookie(token: str = TOKEN, **extra: str) -> str:
    """The ``sessionid`` value ``/classroom/?token=`` would have set (plus ``extra`` session keys)."""
    from django.contrib.sessions.backends.signed_cookies import SessionStore

    session = SessionStore()
    if token:
        session[auth.SESSION_KEY] = auth.fingerprint(token)
    for key, value in extra.items():
        session[key] = value
    session.save()
    return session.session_key
