"""Browser-test fixtures for every test module here (see browser.py)."""

from dashboard.tests.browser import browser_page, chromium_browser, daphne_server, rabbitmq_server  # noqa: F401
