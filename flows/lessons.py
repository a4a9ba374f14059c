"""The seven guided lessons (docs/lessons.md) as data: which run to start, what to say, where
to pause and what to ask.

Each step is ``{workflow, params, narration, pause_at?, question?}``:

- ``pause_at`` ``{"query": "<log query>"}``: the player stops right after revealing the first
  recorded event that matches the query (the event log's query syntax, static/js/log-query.js).
- ``question`` ``{"text", "choices"?: [...], "choices_from"?: "queues"|"consumers"|"members"|
  "subscribers"|"partitions", "answer"?: str, "answer_from"?: {"count": query} |
  {"values": query, "attr": name}}``. ``{name}`` in the text and in queries is filled from the
  paused event (``{message}``, ``{actor}`` or any of its attributes). ``answer_from`` takes the
  truth from the run's own events once it has ended, so the reveal shows what really happened.

``check()`` validates every step's params against its workflow's declared params; a test runs it.
"""

from __future__ import annotations

from typing import Any

from . import registry

CHOICE_SOURCES = ("queues", "consumers", "members", "subscribers", "partitions")

YES_NO = ["yes", "no"]
COUNTS = ["0", "1", "2"]
GRPC_CODES = ["OK", "DEADLINE_EXCEEDED", "NOT_FOUND"]


def step(workflow: str, params: dict[str, Any], narration: str, pause: str | None = None,
         question: dict[str, Any] | None = None) -> dict[str, Any]:
    """One step as the API gives it; ``pause`` is the pause_at query."""
    found: dict[str, Any] = {"workflow": workflow, "params": params, "narration": narration}
    if pause:
        found["pause_at"] = {"query": pause}
    if question:
        found["question"] = question
    return found


def ask(text: str, choices: list[str] | str, answer: str | None = None, count: str | None = None,
        values: tuple[str, str] | None = None) -> dict[str, Any]:
    """A question: ``choices`` a list, or the name of a CHOICE_SOURCES entry; the truth is
    ``answer``, and/or ``count`` (how many events match that query) or ``values`` ((query,
    attribute): that attribute's distinct values)."""
    question: dict[str, Any] = {"text": text}
    question["choices" if isinstance(choices, list) else "choices_from"] = choices
    if answer is not None:
        question["answer"] = answer
    if count:
        question["answer_from"] = {"count": count}
    elif values:
        question["answer_from"] = {"values": values[0], "attr": values[1]}
    return question


def lesson(slug: str, title: str, *steps: dict[str, Any]) -> dict[str, Any]:
    return {"slug": slug, "title": title, "steps": list(steps)}


LESSONS: list[dict[str, Any]] = [
    lesson(
        "sync-waits", "1 · Sync: the caller waits for the whole processing",
        step("http-crud", {"persons": 2, "repeat": 2, "delay_ms": 400, "rate": 2},
             "With HTTP the client sends a request and waits for the answer. The server takes 400 ms to "
             "handle each one. Watch the client's first response arrive.",
             "kind:response", ask("The server worked 400 ms on this request. How long did the client wait?",
                                  ["almost nothing", "about 400 ms", "more than 2 s"], answer="about 400 ms")),
        step("grpc-person", {"calls": 6, "concurrency": 1, "delay_ms": 300, "deadline_ms": 2000, "error_rate": 0,
                             "rate": 2},
             "gRPC is synchronous too: each call waits for the server's answer. On the latency charts, "
             "perceived and end-to-end lie on top of each other.",
             "kind:response", ask("Did the gRPC client wait for the server's 300 ms of work?", YES_NO, answer="yes")),
    ),
    lesson(
        "async-hand-over", "2 · Async: the caller returns at the hand-over",
        step("celery-order", {"orders": 3, "rate": 1, "work_ms": 1500, "workers": 1, "crash_at": 0},
             "The client POSTs an order; the server puts a task on the queue and answers 202 at once. A "
             "worker does the 1.5 s of work later.",
             "kind:response", ask("The client has its 202 for {message}. Has the order been processed?",
                                  ["yes, it is done", "no, it waits for a worker"],
                                  answer="no, it waits for a worker")),
        step("sync-vs-async", {"orders": 12, "work_ms": 300, "rate": 3, "protocols": ["http", "amqp"],
                               "downstream": "down", "outage_ms": 2000},
             "Side by side: the same orders and the same 300 ms of work, over HTTP and over AMQP at once. A "
             "quarter of the way in, the downstream stops for 2 s, then comes back.",
             "kind:outage state:up",
             ask("The downstream is back. How many AMQP orders failed while it was away?", COUNTS,
                 count="kind:error protocol:amqp")),
    ),
    lesson(
        "put-idempotent", "3 · PUT is idempotent, POST is not",
        step("http-crud", {"persons": 1, "repeat": 3, "delay_ms": 100, "rate": 3},
             "The client sends the same PUT three times, reading the server's state after the first and "
             "after the last.",
             "kind:response step:repeat-put",
             ask("After the same PUT three times, is the server's state different from after the first?",
                 YES_NO, answer="no")),
        step("http-crud", {"persons": 1, "repeat": 3, "delay_ms": 100, "rate": 3},
             "Then it sends the same POST three times. A POST creates.",
             "kind:response step:repeat-post",
             ask("The same POST is sent three times. How many persons does it create?", ["1", "3"],
                 count="kind:response step:repeat-post status:201")),
    ),
    lesson(
        "grpc-contract", "4 · gRPC: a contract agreed in advance",
        step("grpc-person", {"calls": 4, "concurrency": 1, "delay_ms": 300, "deadline_ms": 100, "error_rate": 0,
                             "rate": 2},
             "Client and server share protos/person.proto. This client gives each call a 100 ms deadline; "
             "the server needs 300 ms.",
             "kind:response", ask("What does the client get back?", GRPC_CODES,
                                  values=("kind:response message:{message}", "code"))),
        step("grpc-person", {"calls": 6, "concurrency": 1, "delay_ms": 30, "deadline_ms": 1000, "error_rate": 0.5,
                             "methods": "GetPerson", "rate": 2},
             "Half of these GetPerson calls ask for an id the server does not know. The contract says what "
             "comes back.",
             "kind:error", ask("Which status did {message} end with?", GRPC_CODES,
                               values=("kind:response message:{message}", "code"))),
    ),
    lesson(
        "topics-exchanges", "5 · MQTT topics; AMQP exchanges, bindings, push and pull",
        step("amqp-routing", {"exchange_type": "topic", "messages": 6, "rate": 1, "consumers": 1},
             "The publisher only knows the exchange. The exchange routes each message through the bindings "
             "to queues.",
             "kind:publish", ask("Which queues will get {message} (key {routing_key})?", "queues",
                                 values=("kind:route message:{message}", "queue"))),
        step("mqtt-qos", {"messages": 6, "rate": 1, "qos": 1, "disconnect_at": 0, "away_messages": 0},
             "MQTT subscribers choose topics with filters: + matches one level, # any number of levels.",
             "kind:publish", ask("Which subscribers get {topic}?", "subscribers",
                                 values=("kind:deliver message:{message}", "actor"))),
    ),
    lesson(
        "kafka-partitions", "6 · Kafka partitions and consumer groups",
        step("kafka-partitions", {"partitions": 3, "keys": 3, "messages": 9, "rate": 2},
             "The producer hashes each key to a partition. Watch where the messages of one key go.",
             "kind:publish", ask("Which partition will the next messages with key {key} go to?",
                                 ["the same partition", "any partition"], answer="the same partition")),
        step("kafka-consumer-groups", {"partitions": 4, "messages": 30, "rate": 4, "groups": 2, "members": 2,
                                       "crash_at": 8},
             "Two groups of two members split four partitions. One member is about to crash.",
             "kind:crash", ask("Does every group still process every message?", YES_NO, answer="yes")),
    ),
    lesson(
        "exactly-once", "7 · Exactly-once consumption cannot be guaranteed",
        step("amqp-redelivery", {"messages": 10, "crash_at": 4, "consumers": 1, "rate": 2},
             "A consumer handles a message, then crashes before its ack. The broker cannot know the work "
             "was done.",
             "kind:crash", ask("Will {message} be processed again?", YES_NO, answer="yes",
                               count="kind:process message:{message}")),
        step("amqp-redelivery", {"messages": 10, "crash_at": 4, "consumers": 1, "rate": 2, "idempotent": True},
             "The same run with the consumer's inbox on: it remembers which messages already took effect.",
             "kind:crash", ask("How many times does {message} take effect?", COUNTS,
                               count="kind:process message:{message} effect:true")),
        step("celery-order", {"orders": 4, "rate": 2, "work_ms": 500, "workers": 2, "acks_late": True, "crash_at": 2},
             "With acks_late a worker killed mid-task leaves the task unacked, and it runs again.",
             "kind:crash", ask("How many times is {message} charged?", COUNTS,
                               count="kind:process message:{message} effect:true")),
    ),
]


def problems() -> list[str]:
    """Every way a lesson disagrees with the workflows; empty when all are runnable."""
    found = []
    for lesson in LESSONS:
        for n, step in enumerate(lesson["steps"], 1):
            where = f"{lesson['slug']} step {n}"
            if step["workflow"] not in registry.WORKFLOWS:
                found.append(f"{where}: no workflow {step['workflow']}")
                continue
            _, errors = registry.get(step["workflow"]).validate(step["params"])
            found += [f"{where}: {field}: {message}" for field, message in errors.items()]
            question = step.get("question") or {}
            if question.get("choices_from") and question["choices_from"] not in CHOICE_SOURCES:
                found.append(f"{where}: choices_from {question['choices_from']} is none of {CHOICE_SOURCES}")
    return found


def all_lessons() -> list[dict[str, Any]]:
    return LESSONS


def get(slug: str) -> dict[str, Any] | None:
    return next((lesson for lesson in LESSONS if lesson["slug"] == slug), None)
