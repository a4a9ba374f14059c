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

``kafka-consumer-groups`` at its bound (``GROUPS_PARAMS``: a million messages, two groups,
member-1 of the first crashing at its 500,000th message), fidelity ``auto``: wall time,
messages per second, the duplicates recorded one by one against the ledger's count (equal),
the summary's counts against the broker's end and committed offsets (equal), and the
growth of this process's resident memory while the run lasts. That figure alone, in a couple
of minutes: ``python -c "import bench.__main__, bench.bench_kafka as k, bench.report as r;
k.run_consumer_groups(r.Report())"`` (importing ``bench.__main__`` sets the Django settings).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
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
# One member per group, so member-1 handles every message and its crash falls half-way.
GROUPS_PARAMS = {"messages": 1_000_000, "crash_at": 500_000, "partitions": 4, "keys": 16, "groups": 2, "members": 1,
                 "commit_mode": "after", "commit_every": 100, "process_ms": 0, "rate": 0.0, "fidelity": "auto"}
GROUPS_RSS_GOAL_MB = 150.0
GROUPS_NAME = f"kafka-consumer-groups {GROUPS_PARAMS['messages']:,} crash at {GROUPS_PARAMS['crash_at']:,}"


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


def consumer_groups_at_scale() -> dict[str, Any]:
    """One ``GROUPS_PARAMS`` run: its figures, each checked against the ledger and the broker."""
    from .bench_browser import rss_mb

    pid = os.getpid()
    before = peak = rss_mb(pid)
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.wait(0.2):
            peak = max(peak, rss_mb(pid))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    cpu = time.process_time()
    try:
        finished, wall = run_workflow("kafka-consumer-groups", GROUPS_PARAMS, timeout=600)
    finally:
        done.set()
        watcher.join()
    cpu = time.process_time() - cpu
    from flows import eventstore

    result, summary = finished.result, finished.summary
    recorded = [e for e in eventstore.read_events(finished.pk, 0, 10_000_000) if e["duplicate"] and e["kind"] == "deliver"]
    unexplained = [e for e in recorded if not e["attrs"].get("reason")]
    at_end = result["broker_at_end"]["kafka"]
    ends = sum(at_end["end_offsets"].values())
    counts = summary["counts"]
    groups = GROUPS_PARAMS["groups"]
    committed_equal = all(
        {int(p): o for p, o in g["committed"].items()} == {int(p): o for p, o in at_end["committed"][g["group_id"]].items()}
        and sum(g["committed"].values()) == ends for g in result["groups"])
    counts_equal = (counts["published"] == ends == GROUPS_PARAMS["messages"]
                    and counts["processed"] == counts["delivered"] == ends * groups + result["duplicates"])
    return {"wall_s": wall, "cpu_s": cpu, "messages_per_s": GROUPS_PARAMS["messages"] / wall,
            "recorded_duplicates": len(recorded), "unexplained": len(unexplained),
            "ledger_duplicates": result["duplicates"], "summary_duplicates": counts["duplicates"],
            "counts_equal": counts_equal, "committed_equal": committed_equal, "end_offsets": ends,
            "rss_growth_mb": peak - before, "events": summary["last_seq"], "fidelity": summary["fidelity"]}


def report_consumer_groups(report: Any, figures: dict[str, Any]) -> None:
    shape = (f"{GROUPS_PARAMS['messages']:,} messages, {GROUPS_PARAMS['groups']} groups × {GROUPS_PARAMS['members']} "
             f"member, {GROUPS_PARAMS['partitions']} partitions, commit every {GROUPS_PARAMS['commit_every']}, "
             f"crash_at {GROUPS_PARAMS['crash_at']:,}, fidelity auto → {figures['fidelity']['mode']}")
    name = GROUPS_NAME
    report.add(f"{name}: wall", figures["wall_s"], "s",
               note=f"{shape}; whole run incl. topic creation, joins, the replacement's join and the event flush; "
                    f"{figures['cpu_s']:.1f} s CPU (all threads of this process)")
    report.add(f"{name}: throughput", figures["messages_per_s"], "msgs/s",
               note=f"messages produced / wall; each message handled by {GROUPS_PARAMS['groups']} groups; "
                    f"{figures['events']:,} events recorded, {figures['fidelity']['counted']:,} counted")
    dups = figures["recorded_duplicates"]
    report.add(f"{name}: duplicates recorded one by one", dups, "events", goal="== the ledger's duplicates, each with a reason",
               ok=dups == figures["ledger_duplicates"] == figures["summary_duplicates"] > 0 and not figures["unexplained"],
               note=f"ledger {figures['ledger_duplicates']}, summary {figures['summary_duplicates']}, "
                    f"{figures['unexplained']} without a reason")
    report.add(f"{name}: counts vs broker", figures["end_offsets"], "end offset sum",
               goal="summary counts == end offsets; committed == the broker's",
               ok=figures["counts_equal"] and figures["committed_equal"],
               note=f"counts {'equal' if figures['counts_equal'] else 'DIFFER'}, committed offsets "
                    f"{'equal' if figures['committed_equal'] else 'DIFFER'}")
    report.add(f"{name}: RSS growth", figures["rss_growth_mb"], "MB", goal=f"< {GROUPS_RSS_GOAL_MB:g} MB",
               ok=figures["rss_growth_mb"] < GROUPS_RSS_GOAL_MB,
               note="peak resident memory of this process during the run minus before it (broker not included)")


@contextmanager
def tansu_as_the_apps_kafka() -> Iterator[tuple[Any, list[float]]]:
    """The embedded broker, started (and timed), serving as the app's Kafka, an external one."""
    from django.conf import settings

    from flows import transports

    broker, startups = tansu_startup()
    saved = settings.KAFKA_BOOTSTRAP_SERVERS
    settings.KAFKA_BOOTSTRAP_SERVERS = broker.bootstrap_servers
    transports.reset()
    try:
        yield broker, startups
    finally:
        transports.reset()
        settings.KAFKA_BOOTSTRAP_SERVERS = saved
        broker.stop()


def migrated() -> None:
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def measure_consumer_groups(report: Any) -> None:
    """The ``GROUPS_PARAMS`` run's figures; a run that fails is one MISSED figure with its error, not an exception
    (the other Kafka figures, reported before it, stand on their own)."""
    try:
        figures = consumer_groups_at_scale()
    except Exception as exc:  # noqa: BLE001 - reported as the figure, not raised past the report
        report.add(f"{GROUPS_NAME}: throughput", None, "msgs/s", goal="the run succeeds", ok=False,
                   note=f"{type(exc).__name__}: {exc}")
        return
    report_consumer_groups(report, figures)


def run_consumer_groups(report: Any) -> None:
    """Only the ``kafka-consumer-groups`` figure, without the partition rounds (several minutes more)."""
    migrated()
    with tansu_as_the_apps_kafka():
        measure_consumer_groups(report)


def run(report: Any) -> None:
    migrated()
    # The app's Kafka is this very broker, as an external one, so both sides share it.
    with tansu_as_the_apps_kafka() as (broker, startups):
        bootstrap = broker.bootstrap_servers
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
        # Reported before the groups run, so whatever becomes of it, these figures are out.
        report_partitions(report, startups, bare, instrumented, unstored, big_bare, big_auto)
        measure_consumer_groups(report)


def report_partitions(report: Any, startups: list[float], bare: list[float], instrumented: list[dict[str, Any]],
                      unstored: list[float], big_bare: list[float], big_auto: list[dict[str, Any]]) -> None:
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
