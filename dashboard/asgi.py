"""ASGI entry point: HTTP (with static files) and the run WebSocket behind an Origin check.

Importing it runs the start-up security checks (dashboard/checks.py): an error stops the server.
"""

import gc
import os

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from django.core.asgi import get_asgi_application

django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.checks import enforce_at_startup  # noqa: E402
from dashboard.origins import OriginValidator  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402
from dashboard.static_build import ensure_collected  # noqa: E402
from dashboard.static_files import StaticFilesHandler  # noqa: E402

enforce_at_startup()
ensure_collected()

application = ProtocolTypeRouter(
    {
        # Static files (our JS/CSS and the packaged plotly.min.js) are served by the app
        # itself, compressed and cached (WhiteNoise), so one daphne process is the whole
        # dashboard, offline included; a proxy in front may cache them too.
        "http": StaticFilesHandler(django_asgi_app),
        "websocket": OriginValidator(URLRouter(websocket_urlpatterns)),
    }
)

# Runs a killed server left `running` are failed now, before this process serves anyone.
# Here rather than in AppConfig.ready(): ready() runs for every manage.py command too
# (migrate on an empty database, makemigrations, the test runner before its database
# exists), while this module is loaded only to serve.
from flows.runner import reap_orphans_at_startup  # noqa: E402

reap_orphans_at_startup()

# Behind a proxy, a request to act on a run may reach another web process: it relays the
# request here when the run is ours (flows/run_relay.py).
from flows.run_relay import start_listener  # noqa: E402
from flows.views import answer_relayed  # noqa: E402

start_listener(answer_relayed)

# The instructor link, with the token, once: the only place the token is ever shown (the
# access log writes "token=…" instead).
from classroom.startup import announce, redact_access_log  # noqa: E402

redact_access_log()
announce()

# Everything loaded so far lives as long as the server: keep it out of the cyclic garbage
# collector's full passes. Runs buffer tens of thousands of event objects, which makes
# full collections frequent; scanning the whole app each time stalled live event delivery
# by up to hundreds of milliseconds (see bench/bench_pipeline.py).
gc.collect()
gc.freeze()
