"""Static files served by the app itself, with the headers Django's middleware would add.

``ASGIStaticFilesHandler`` answers before any middleware runs, so without this a script
would go out without ``nosniff`` (a browser could then sniff a wrong type into script).
"""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler
from django.http import HttpRequest, HttpResponseBase


class StaticFilesHandler(ASGIStaticFilesHandler):
    async def get_response_async(self, request: HttpRequest) -> HttpResponseBase:
        response = await super().get_response_async(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response
