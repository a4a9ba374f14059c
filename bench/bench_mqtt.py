"""Instrumented ``mqtt-qos`` QoS 1 publish→deliver throughput against bare paho-mqtt on the same broker.

Both sides: one publisher and one subscriber (paho-mqtt 2.2, MQTT 3.1.1, network loops on
their own threads), QoS 1 both ways, one topic, the same JSON payload size, publishing as
fast as paho accepts. Throughput = messages delivered / time from the first publish to the
last delivery. *Bare* only counts deliveries. *Instrumented* is a whole ``mqtt-qos`` run
through the runner at its default fidelity (``auto``): per message a publish, a route, a
PUBACK and the subscriber's deliver and process events, plus the duplicate/loss
bookkeeping. 1000 unpaced messages plan 5000 events, so ``auto`` samples from the start
(contracts: "Fidelity"): the sample's events are recorded, stored and streamed by the event
pipeline in the same process, the others counted exactly. Rounds alternate; the best of
each side is compared (the median of the rounds' own ratios is noted beside it). Goal:
instrumented ≥ 0.85 × bare. For reference, a few rounds at ``fidelity=full`` (every event
recorded) are reported too, without a goal. Mosquitto (external) is measured, and the
embedded broker too (Mosquitto as a child process, or amqtt where no binary is installed).

Both sides use the same ``flows.mqtt.clients.Connection`` (paho's defaults: 20 messages in
flight, an unbounded client queue, ``loop_start`` threads). The workflow's subscribers ack by
hand after handling (its lost-ack lesson needs that moment) and its publisher has an
``on_publish`` callback (PUBACK timing); on the bare loop neither costs anything measurable.
The timed window holds no setup or teardown on either side (connecting, subscribing, the
run's plan and its report fall outside it). It is short (about 0.1 s at 9,000 msg/s), so
each round starts with a full garbage collection: otherwise one side pays, inside its
window, for the other's garbage (a gen-2 pass of this process takes tens of ms). 1,000
is also the most the bare loop can send: its burst waits in the broker's queue for the
subscriber, and Mosquitto's ``max_queued_messages`` (1,000 by default) drops the rest.
"""

from __future__ import annotations

import gc
import json
import statistics
import threading
import time
from typing import Any

from .runs import run_workflow

MESSAGES = 1000
ROUNDS = 5
FULL_ROUNDS = 3
GOAL_RATIO = 0.85
TOPIC = "bench/t"
PARAMS = {"messages": MESSAGES, "rate": 0, "qos": 1, "retain": False, "topics": [TOPIC],
          "subscribers": [{"name": "s1", "filter": TOPIC, "qos": 1, "clean_session": True, "late": False}],
          "disconnect": "", "disconnect_at": 0, "away_messages": 0, "lose_ack": False, "idempotent": False}


def bare_per_s(host: str, port: int) -> float:
    from flows.mqtt.clients import Connection

    tag = f"{time.monotonic_ns() % 10**9}"
    topic = f"bench/bare-{tag}"
    payload = json.dumps({"id": f"m{MESSAGES}", "run": "abcdef", "n": MESSAGES, "topic": TOPIC}).encode()
    received = 0
    last_at = 0.0
    done = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        nonlocal received, last_at
        received += 1
        if received == MESSAGES:
            last_at = time.perf_counter()
            done.set()

    sub = Connection(f"bench-sub-{tag}", host, port, clean_session=True)
    sub.client.on_message = on_message
    pub = Connection(f"bench-pub-{tag}", host, port, clean_session=True)
    try:
        sub.connect()
        sub.subscribe(topic, 1)
        pub.connect()
        started = time.perf_counter()
        for _ in range(MESSAGES):
            pub.client.publish(topic, payload, qos=1)
        if not done.wait(60):
            raise RuntimeError(f"bare: only {received} of {MESSAGES} delivered")
        return MESSAGES / (last_at - started)
    finally:
        sub.close()
        pub.close()


def instrumented_run(fidelity: str = "auto") -> dict[str, Any]:
    finished, _ = run_workflow("mqtt-qos", {**PARAMS, "fidelity": fidelity}, timeout=120, problem=lambda r: (
        "" if r["deliveries"] == MESSAGES and not r["lost"] else f"{r['deliveries']} deliveries, {r['lost']} lost"))
    return {"per_s": finished.result["throughput_per_s"], "events": finished.summary["last_seq"],
            "mode": finished.summary["fidelity"]["mode"]}


def measure(report: Any, label: str, mode: str, url: str | None) -> None:
    from django.conf import settings

    from flows import transports

    setting, value = transports.setting_for("mqtt", mode, url)
    setattr(settings, setting, value)
    transports.reset()
    broker = transports.get_broker("mqtt")
    broker.start()
    broker.check(3.0)
    if mode == "embedded":
        label = f"{broker.impl} embedded"
    host, port = broker.host, broker.port
    bare_per_s(host, port)  # warm-up: imports, first connections
    bare: list[float] = []
    instrumented: list[dict[str, Any]] = []
    for _ in range(ROUNDS):
        gc.collect()
        bare.append(bare_per_s(host, port))
        gc.collect()
        instrumented.append(instrumented_run())
    full = []
    for _ in range(FULL_ROUNDS):
        gc.collect()
        full.append(instrumented_run("full"))
    best_bare = max(bare)
    best = max(instrumented, key=lambda r: r["per_s"])
    ratio = best["per_s"] / best_bare
    best_full = max(r["per_s"] for r in full)
    setup = f"{MESSAGES} QoS 1 messages, 1 publisher → 1 subscriber, {label} at {broker.url}"
    report.add(f"mqtt bare paho-mqtt ({label})", best_bare, "msg/s",
               note=f"{setup}; rounds: {', '.join(f'{b:,.0f}' for b in bare)}")
    rounds = ", ".join(f"{r['per_s']:,.0f}" for r in instrumented)
    report.add(f"mqtt-qos instrumented ({label})", best["per_s"], "msg/s",
               note=f"fidelity auto → {best['mode']}, {best['events']} events recorded; rounds: {rounds}")
    # Best against best leans on each side's luckiest round; on a shared machine the median of
    # each round's own ratio (its bare and instrumented runs side by side) says more.
    paired = statistics.median(i["per_s"] / b for i, b in zip(instrumented, bare))
    report.add(f"mqtt-qos instrumented / bare ({label})", ratio, "×", goal=f"≥ {GOAL_RATIO}", ok=ratio >= GOAL_RATIO,
               note=f"best against best; median of the rounds' own ratios {paired:.3f}")
    full_rounds = ", ".join(f"{r['per_s']:,.0f}" for r in full)
    report.add(f"mqtt-qos fidelity=full / bare ({label})", best_full / best_bare, "×",
               note=f"every event recorded ({full[0]['events']}); rounds: {full_rounds} msg/s")


def run(report: Any) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from flows import transports

    call_command("migrate", verbosity=0, interactive=False)
    saved = settings.MQTT_URL
    try:
        measure(report, "Mosquitto", "external", None)
        measure(report, "embedded", "embedded", None)
    finally:
        settings.MQTT_URL = saved
        transports.reset()
