"""``amqp-routing`` on RabbitMQ: the instrumented workflow against a bare kombu loop.

Both sides do the same work with the same messages and settings: a topic exchange with the
workflow's example bindings, one push consumer per queue on its own connection (prefetch
``PREFETCH``), every message published with ``mandatory`` and a publisher confirm, every
copy acked. Throughput is acked copies per second from the first publish to the last ack.
The bare loop records nothing; the workflow emits, stores and streams every event.
Rounds alternate (bare, instrumented, bare, ...): each side's figure is its median round,
and the ratio the median of each round's instrumented / bare, so a burst of load on a
shared 2-core machine (RabbitMQ and the benchmark share it) hits both sides of a pair.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
from typing import Any

MESSAGES = 2000
PREFETCH = 20
ROUNDS = 5
GOAL = 0.85
PARAMS = {"exchange_type": "topic", "messages": MESSAGES, "rate": 0, "work_ms": 0, "consumers": 1,
          "consumer_mode": "push", "prefetch": PREFETCH}


def run(report: Any) -> None:
    _setup_django()
    from django.conf import settings

    from flows import registry, transports

    setting, value = transports.setting_for("amqp", "external")
    setattr(settings, setting, value)
    transports.reset()
    broker = transports.get_broker("amqp")
    broker.check(3.0)
    params, errors = registry.get("amqp-routing").validate(dict(PARAMS))
    assert not errors, errors
    bare, instrumented, unstored = [], [], []
    for _ in range(ROUNDS):
        bare.append(bare_loop(broker, params))
        instrumented.append(instrumented_run(params))
        unstored.append(instrumented_run(params, store=False))
    ratio = statistics.median(i / b for i, b in zip(instrumented, bare))
    report.add("amqp bare kombu publish+confirm/consume/ack", statistics.median(bare), "copies/s",
               note=f"median of rounds {', '.join(f'{v:,.0f}' for v in bare)}")
    report.add("amqp-routing instrumented (events stored and streamed)", statistics.median(instrumented), "copies/s",
               note=f"median of rounds {', '.join(f'{v:,.0f}' for v in instrumented)}")
    report.add("amqp-routing instrumented / bare", ratio, "x", goal=f">= {GOAL}", ok=ratio >= GOAL,
               note=(f"median of per-round ratios; {MESSAGES} messages, topic exchange, prefetch {PREFETCH}, "
                     f"RabbitMQ {broker.display_url()}"))
    # Diagnostic: the same workflow with its events recorded but neither stored nor streamed,
    # which separates the workflow's own cost from the event pipeline's.
    report.add("amqp-routing with events not stored / bare (diagnostic)",
               statistics.median(u / b for u, b in zip(unstored, bare)), "x",
               note=f"median of rounds {', '.join(f'{v:,.0f}' for v in unstored)} copies/s")


def _setup_django() -> None:
    import django
    from django.apps import apps

    if not apps.ready:
        # A throwaway database: benchmark runs do not belong in the dashboard's history.
        os.environ.setdefault("DATABASE_URL", f"sqlite:///{tempfile.mkdtemp(prefix='bench-amqp-')}/bench.sqlite3")
        django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


class DiscardingPipeline:
    """An event pipeline that keeps events in the recorder and never stores or streams them."""

    def track(self, recorder: Any, summary_extra: Any = None) -> None:
        pass

    def untrack(self, run_id: int) -> None:
        pass

    def tracked(self, run_id: int) -> None:
        return None

    def wake(self, recorder: Any) -> None:
        pass

    def flush(self, recorder: Any, timeout: float = 0.0) -> bool:
        return True

    def publish_summary(self, run_id: int, summary: Any) -> None:
        pass


def instrumented_run(params: dict[str, Any], store: bool = True) -> float:
    from flows.runner import Runner, get_runner, wait_until_finished

    runner = get_runner() if store else Runner(pipeline=DiscardingPipeline())
    run = runner.start("amqp-routing", params)
    runner.wait(run.pk, 120)
    run = wait_until_finished(run.pk, 120)
    if run.state != "succeeded":
        raise RuntimeError(f"amqp-routing run {run.pk} {run.state}: {run.error}")
    result = run.result
    if result["lost"] or result["disagreements"]:
        raise RuntimeError(f"amqp-routing run {run.pk} lost {result['lost']}: {result['disagreements']}")
    return float(result["throughput_per_s"])


def bare_loop(broker: Any, params: dict[str, Any]) -> float:
    """Publish with confirms, consume, ack: the same traffic with no recording at all."""
    from kombu import Consumer, Exchange, Producer, Queue

    from flows.amqp.spec import RoutingSpec

    spec = RoutingSpec(params)
    tag = f"bench{os.getpid()}x{time.monotonic_ns()}."
    exchange = Exchange(tag + "orders", type=spec.exchange_type, durable=False, auto_delete=True, delivery_mode=1)
    queues = {name: Queue(tag + name, durable=False, queue_arguments={"x-expires": 600000}) for name in spec.queues}
    plan = [(m.message_id, m.routing_key, len(m.queues)) for m in spec.plan()]
    total = sum(n for _, _, n in plan)
    acked = 0
    lock = threading.Lock()
    done = threading.Event()
    last_ack = [0.0]
    stop = threading.Event()

    admin = broker.connection()
    channel = admin.channel()
    exchange(channel).declare()
    for q in queues.values():
        q(channel).declare()
    for b in spec.bindings:
        queues[b.queue](channel).bind_to(exchange, routing_key=b.key)

    def consume(queue: Any, ready: threading.Event) -> None:
        nonlocal acked
        conn = broker.connection()

        def on_message(body: Any, message: Any) -> None:
            nonlocal acked
            message.ack()
            with lock:
                acked += 1
                last_ack[0] = time.perf_counter()
                if acked >= total:
                    done.set()

        with conn:
            with Consumer(conn.channel(), queues=[queue], callbacks=[on_message], prefetch_count=PREFETCH,
                          accept=["json"]):
                ready.set()
                while not stop.is_set():
                    try:
                        conn.drain_events(timeout=0.2)
                    except TimeoutError:
                        continue

    threads = []
    for q in queues.values():
        ready = threading.Event()
        t = threading.Thread(target=consume, args=(q, ready), daemon=True)
        t.start()
        ready.wait(10)
        threads.append(t)
    publisher = broker.connection(confirm=True)
    try:
        producer = Producer(publisher.channel(), exchange=exchange, on_return=lambda *a: None)
        started = time.perf_counter()
        for i, (message_id, routing_key, _) in enumerate(plan):
            producer.publish({"id": message_id, "n": i + 1}, routing_key=routing_key, mandatory=True, delivery_mode=1,
                             serializer="json", retry=False)
        if not done.wait(60):
            raise RuntimeError(f"bare loop: only {acked} of {total} copies acked")
        return total / (last_ack[0] - started)
    finally:
        stop.set()
        for t in threads:
            t.join(5)
        for q in queues.values():
            channel.queue_delete(queue=q.name)
        channel.exchange_delete(exchange=exchange.name)
        publisher.release()
        admin.release()
