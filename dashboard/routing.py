from channels.security.websocket import WebsocketDenier
from django.urls import path, re_path

from .consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    # Anything else (``/ws/runs/abc/``, ``/ws/nope/``) is refused during the handshake
    # (HTTP 403) instead of failing the router with "No route found".
    re_path(r"", WebsocketDenier.as_asgi()),
]
