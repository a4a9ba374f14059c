from channels.security.websocket import WebsocketDenier
from channels.sessions import SessionMiddlewareStack
from django.urls import path, re_path

from classroom.consumers import RoomConsumer

from .consumers import RunConsumer

websocket_urlpatterns = [
    path("ws/runs/<int:run_id>/", RunConsumer.as_asgi()),
    # The session says who is the instructor and which anonymous student answers.
    path("ws/rooms/<str:code>/", SessionMiddlewareStack(RoomConsumer.as_asgi())),
    # Anything else (``/ws/runs/abc/``, ``/ws/nope/``) is refused during the handshake
    # (HTTP 403) instead of failing the router with "No route found".
    re_path(r"", WebsocketDenier.as_asgi()),
]
