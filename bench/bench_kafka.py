"""Instrumented ``kafka-partitions`` produce→consume against a bare confluent-kafka loop, same broker.

One embedded Tansu broker serves both sides (its start-up time is reported too). Both
sides send the same messages (100-byte values, the same keys, ``murmur2_random``,
``acks=all``) to a fresh topic with the same partitions, and read them back with the same
reader settings while producing: the bare loop is a producer on one thread (checking its
delivery reports, nothing more, served every ``SERVE_EVERY`` sends as the product's are) and
a reader (``assign`` to every partition, no group) on another; the instrumented side is a
whole ``kafka-partitions`` run through the runner, four recorded events per message (publish,
route, deliver, process) stored and streamed by the event pipeline in the same process.
Throughput is messages / (first produce → last message read). Rounds alternate so drift
hits both alike; the best round of each is compared. Goal: instrumented ≥ 0.8 × bare.

A large run (``BIG_MESSAGES``) at the default fidelity, ``auto``, which samples a run that
big, is compared with the bare loop at the same size; its summary counts must equal the
broker's end offsets.

A third, diagnostic figure runs the same workflow code with the events recorded but thrown
away instead of stored and streamed, to show which share of the cost is the flow's own
and which is the event pipeline's.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from .runs import run_workflow

MESSAGES = 40_000
PARTITIONS = 4
KEYS = 16
MESSAGE_BYTES = 100
ROUNDS = 3
GOAL_RATIO = 0.8
GOAL_STARTUP_S = 3.0
PARAMS = {"messages": MESSAGES, "partitions": PARTITIONS, "keys": KEYS, "message_bytes": MESSAGE_BYTES,
          "rate": 0.0, "acks": "all", "idempotent": False, "fidelity": "full"}
# The large run at the default fidelity (auto: sampled, as it plans more than a person can
# follow): 1,000,000 messages, the messages parameter's bound.
BIG_MESSAGES = 1_000_000
BIG_ROUNDS = 2


def tansu_startup() -> tuple[Any, list[float]]:
    """Start the embedded broker a few times (the last one is kept) and time each start."""
    from flows.transports.tansu import TansuBroker

    times = []
    broker = None
    for attempt in range(3):
        broker = TansuBroker()
        started = time.perf_counter()
        broker.start()
        times.append(time.perf_counter() - started)
        if attempt < 2:
            broker.stop()
    return broker, times


def bare_messages_per_s(bootstrap: str, round_no: int, messages: int = MESSAGES) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    from flows.kafka.clients import create_topic, poll_batch, producer_config, reader_config
    from flows.kafka.offsets import cached_end_offsets
    from flows.kafka.producer import SERVE_EVERY, Payload, encode, key_names, plan

    topic = f"bench.bare.{round_no}.{time.time_ns()}"
    create_topic(bootstrap, topic, PARTITIONS)
    keys = key_names(KEYS)
    consumer = Consumer(reader_config(bootstrap, f"{topic}.reader"))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    while len(cached_end_offsets(consumer, topic, range(PARTITIONS))) < PARTITIONS:
        poll_batch(consumer, 500, 0.05)
    read = 0
    finished = threading.Event()

    def reader() -> None:
        nonlocal read
        while read < messages:
            read += sum(1 for m in poll_batch(consumer, 500, 0.1) if m.error() is None)
        finished.set()

    producer = Producer(producer_config(bootstrap, acks="all"))
    failed = 0

    def delivered(err: Any, _msg: Any) -> None:  # a real producer checks its delivery reports
        nonlocal failed
        if err is not None:
            failed += 1

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    began = time.perf_counter()
    for n in range(1, messages + 1):
        mid, key, seq = plan(n, keys)
        value = encode(Payload(mid, key, seq, 0.0), MESSAGE_BYTES)
        while True:
            try:
                producer.produce(topic, value, key.encode(), on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.005)
        if not n % SERVE_EVERY:  # reports served as often as the instrumented producer serves them
            producer.poll(0)
    producer.flush(60)
    if not finished.wait(120):
        raise RuntimeError(f"bare reader saw {read} of {messages}")
    elapsed = time.perf_counter() - began
    consumer.close()
    if failed:
        raise RuntimeError(f"{failed} bare deliveries failed")
    return messages / elapsed


def instrumented_run(messages: int = MESSAGES, fidelity: str = "full") -> dict[str, Any]:
    params = {**PARAMS, "messages": messages, "fidelity": fidelity}
    finished, wall = run_workflow("kafka-partitions", params, timeout=280, problem=lambda r: (
        "" if r["read"] == messages and not r["lost"] else f"read {r['read']} of {messages}"))
    ends = sum(finished.result["broker_at_end"]["kafka"]["end_offsets"].values())
    counts = finished.summary["counts"]
    if not counts["published"] == counts["processed"] == ends == messages:
        raise RuntimeError(f"summary counts {counts} against the broker's end offsets {ends}")
    return {"messages_per_s": finished.result["throughput_per_s"], "wall_messages_per_s": messages / wall,
            "events": finished.summary["last_seq"], "fidelity": finished.summary["fidelity"]}


class _Discard:
    """A pipeline stand-in that drops events as soon as they are recorded (nothing stored or streamed)."""

    def wake(self, recorder: Any) -> None:
        recorder.take()


def unstored_messages_per_s(round_no: int) -> float:
    """The same workflow code with events recorded but discarded: what the flow costs without the pipeline."""
    from flows import registry, run_resources
    from flows.context import RunContext
    from flows.recorder import Recorder

    params, _ = registry.get("kafka-partitions").validate(PARAMS)
    run_id = 1_000_000_000 + round_no  # only names the topic; no Run row exists
    ctx = RunContext(run_id, params, Recorder(run_id, _Discard()))
    try:
        result = registry.get("kafka-partitions")().run(ctx)
    finally:
        run_resources.release(run_id)  # the runner's job, done here: delete the run's topic
    return result["throughput_per_s"]


def run(report: Any) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from flows import transports

    call_command("migrate", verbosity=0, interactive=False)
    broker, startups = tansu_startup()
    bootstrap = broker.bootstrap_servers
    # The app's Kafka is this very broker, as an external one, so both sides share it.
    saved = settings.KAFKA_BOOTSTRAP_SERVERS
    settings.KAFKA_BOOTSTRAP_SERVERS = bootstrap
    transports.reset()
    try:
        bare_messages_per_s(bootstrap, 0)  # warm-up: client start, first topic
        bare: list[float] = []
        instrumented: list[dict[str, Any]] = []
        unstored: list[float] = []
        for round_no in range(1, ROUNDS + 1):
            bare.append(bare_messages_per_s(bootstrap, round_no))
            instrumented.append(instrumented_run())
            unstored.append(unstored_messages_per_s(round_no))
        big_bare: list[float] = []
        big_auto: list[dict[str, Any]] = []
        for round_no in range(1, BIG_ROUNDS + 1):
            big_bare.append(bare_messages_per_s(bootstrap, 100 + round_no, BIG_MESSAGES))
            big_auto.append(instrumented_run(BIG_MESSAGES, "auto"))
    finally:
        transports.reset()
        settings.KAFKA_BOOTSTRAP_SERVERS = saved
        broker.stop()

    best_bare = max(bare)
    best = max(instrumented, key=lambda r: r["messages_per_s"])
    ratio = best["messages_per_s"] / best_bare
    setup = (f"{MESSAGES:,} × {MESSAGE_BYTES} B, {PARTITIONS} partitions, {KEYS} keys, acks=all, murmur2_random, "
             f"producer + assign-reader concurrently, Tansu on loopback")
    report.add("kafka tansu start-up", startups[-1], "s", goal=f"< {GOAL_STARTUP_S:g} s",
               ok=max(startups[1:]) < GOAL_STARTUP_S,
               note=f"starts: {', '.join(f'{s:.3f}' for s in startups)} s (the first includes importing confluent_kafka)")
    report.add("kafka bare confluent-kafka", best_bare, "msgs/s",
               note=f"{setup}; rounds: {', '.join(f'{b:,.0f}' for b in bare)}")
    rounds = ", ".join(f"{r['messages_per_s']:,.0f}" for r in instrumented)
    report.add("kafka-partitions instrumented", best["messages_per_s"], "msgs/s",
               note=f"{best['events']:,} events recorded; whole run incl. topic creation and event flush "
                    f"{best['wall_messages_per_s']:,.0f} msgs/s; rounds: {rounds}")
    report.add("kafka-partitions instrumented / bare", ratio, "×", goal=f"≥ {GOAL_RATIO}", ok=ratio >= GOAL_RATIO)
    report.add("kafka-partitions, events not stored", max(unstored), "msgs/s",
               note=f"diagnostic: the same workflow with every event recorded and then discarded (no database, no "
                    f"WebSocket); {max(unstored) / best_bare:.2f} × bare; rounds: "
                    f"{', '.join(f'{u:,.0f}' for u in unstored)}")
    best_big_bare = max(big_bare)
    best_big = max(big_auto, key=lambda r: r["messages_per_s"])
    big_ratio = best_big["messages_per_s"] / best_big_bare
    fidelity = best_big["fidelity"]
    big_rounds = ", ".join(f"{r['messages_per_s']:,.0f}" for r in big_auto)
    report.add(f"kafka bare confluent-kafka, {BIG_MESSAGES:,}", best_big_bare, "msgs/s",
               note=f"rounds: {', '.join(f'{b:,.0f}' for b in big_bare)}")
    report.add(f"kafka-partitions {BIG_MESSAGES:,} auto", best_big["messages_per_s"], "msgs/s",
               note=f"fidelity {fidelity['mode']} ({fidelity['why']}); {best_big['events']:,} events recorded, "
                    f"{fidelity['counted']:,} counted; summary counts == the broker's end offsets; rounds: "
                    f"{big_rounds}")
    report.add(f"kafka-partitions {BIG_MESSAGES:,} auto / bare", big_ratio, "×", goal=f"≥ {GOAL_RATIO}",
               ok=big_ratio >= GOAL_RATIO)
