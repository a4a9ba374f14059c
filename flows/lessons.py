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

LESSONS: list[dict[str, Any]] = [
    {
        "slug": "sync-waits",
        "title": "1 · Sync: the caller waits for the whole processing",
        "steps": [
            {
                "workflow": "http-crud",
                "params": {"persons": 2, "repeat": 2, "delay_ms": 400, "rate": 2},
                "narration": "With HTTP the client sends a request and waits for the answer. The server "
                             "takes 400 ms to handle each one. Watch the client's first response arrive.",
                "pause_at": {"query": "kind:response"},
                "question": {"text": "The server worked 400 ms on this request. How long did the client wait?",
                             "choices": ["almost nothing", "about 400 ms", "more than 2 s"],
                             "answer": "about 400 ms"},
            },
            {
                "workflow": "grpc-person",
                "params": {"calls": 6, "concurrency": 1, "delay_ms": 300, "deadline_ms": 2000,
                           "error_rate": 0, "rate": 2},
                "narration": "gRPC is synchronous too: each call waits for the server's answer. On the "
                             "latency charts, perceived and end-to-end lie on top of each other.",
                "pause_at": {"query": "kind:response"},
                "question": {"text": "Did the gRPC client wait for the server's 300 ms of work?",
                             "choices": YES_NO, "answer": "yes"},
            },
        ],
    },
    {
        "slug": "async-hand-over",
        "title": "2 · Async: the caller returns at the hand-over",
        "steps": [
            {
                "workflow": "celery-order",
                "params": {"orders": 3, "rate": 1, "work_ms": 1500, "workers": 1, "crash_at": 0},
                "narration": "The client POSTs an order; the server puts a task on the queue and answers "
                             "202 at once. A worker does the 1.5 s of work later.",
                "pause_at": {"query": "kind:response"},
                "question": {"text": "The client has its 202 for {message}. Has the order been processed?",
                             "choices": ["yes, it is done", "no, it waits for a worker"],
                             "answer": "no, it waits for a worker"},
            },
        ],
    },
    {
        "slug": "put-idempotent",
        "title": "3 · PUT is idempotent, POST is not",
        "steps": [
            {
                "workflow": "http-crud",
                "params": {"persons": 1, "repeat": 3, "delay_ms": 100, "rate": 3},
                "narration": "The client sends the same PUT three times, reading the server's state after "
                             "the first and after the last.",
                "pause_at": {"query": "kind:response method:PUT"},
                "question": {"text": "After the same PUT three times, is the server's state different from "
                                     "after the first?", "choices": YES_NO, "answer": "no"},
            },
            {
                "workflow": "http-crud",
                "params": {"persons": 1, "repeat": 3, "delay_ms": 100, "rate": 3},
                "narration": "Then it sends the same POST three times. A POST creates.",
                "pause_at": {"query": "kind:response method:POST"},
                "question": {"text": "The same POST is sent three times. How many persons does it create?",
                             "choices": ["1", "3"], "answer": "3"},
            },
        ],
    },
    {
        "slug": "grpc-contract",
        "title": "4 · gRPC: a contract agreed in advance",
        "steps": [
            {
                "workflow": "grpc-person",
                "params": {"calls": 4, "concurrency": 1, "delay_ms": 300, "deadline_ms": 100,
                           "error_rate": 0, "rate": 2},
                "narration": "Client and server share protos/person.proto. This client gives each call a "
                             "100 ms deadline; the server needs 300 ms.",
                "pause_at": {"query": "kind:response"},
                "question": {"text": "What does the client get back?",
                             "choices": ["OK", "DEADLINE_EXCEEDED", "NOT_FOUND"],
                             "answer_from": {"values": "kind:response message:{message}", "attr": "code"}},
            },
            {
                "workflow": "grpc-person",
                "params": {"calls": 6, "concurrency": 1, "delay_ms": 30, "deadline_ms": 1000,
                           "error_rate": 0.5, "methods": "GetPerson", "rate": 2},
                "narration": "Half of these GetPerson calls ask for an id the server does not know. The "
                             "contract says what comes back.",
                "pause_at": {"query": "kind:error"},
                "question": {"text": "Which status did {message} end with?",
                             "choices": ["OK", "DEADLINE_EXCEEDED", "NOT_FOUND"],
                             "answer_from": {"values": "kind:response message:{message}", "attr": "code"}},
            },
        ],
    },
    {
        "slug": "topics-exchanges",
        "title": "5 · MQTT topics; AMQP exchanges, bindings, push and pull",
        "steps": [
            {
                "workflow": "amqp-routing",
                "params": {"exchange_type": "topic", "messages": 6, "rate": 1, "consumers": 1},
                "narration": "The publisher only knows the exchange. The exchange routes each message "
                             "through the bindings to queues.",
                "pause_at": {"query": "kind:publish"},
                "question": {"text": "Which queue will get {message} (key {routing_key})?",
                             "choices_from": "queues",
                             "answer_from": {"values": "kind:route message:{message}", "attr": "queue"}},
            },
            {
                "workflow": "mqtt-qos",
                "params": {"messages": 6, "rate": 1, "qos": 1, "disconnect_at": 0, "away_messages": 0},
                "narration": "MQTT subscribers choose topics with filters: + matches one level, # any "
                             "number of levels.",
                "pause_at": {"query": "kind:publish"},
                "question": {"text": "Which subscriber gets {topic}?",
                             "choices_from": "subscribers",
                             "answer_from": {"values": "kind:deliver message:{message}", "attr": "subscriber"}},
            },
        ],
    },
    {
        "slug": "kafka-partitions",
        "title": "6 · Kafka partitions and consumer groups",
        "steps": [
            {
                "workflow": "kafka-partitions",
                "params": {"partitions": 3, "keys": 3, "messages": 9, "rate": 2},
                "narration": "The producer hashes each key to a partition. Watch where the messages of "
                             "one key go.",
                "pause_at": {"query": "kind:publish"},
                "question": {"text": "Which partition will the next messages with key {key} go to?",
                             "choices": ["the same partition", "any partition"],
                             "answer": "the same partition"},
            },
            {
                "workflow": "kafka-consumer-groups",
                "params": {"partitions": 4, "messages": 30, "rate": 4, "groups": 2, "members": 2,
                           "crash_at": 8},
                "narration": "Two groups of two members split four partitions. One member is about to "
                             "crash.",
                "pause_at": {"query": "kind:crash"},
                "question": {"text": "Does every group still process every message?",
                             "choices": YES_NO, "answer": "yes"},
            },
        ],
    },
    {
        "slug": "exactly-once",
        "title": "7 · Exactly-once consumption cannot be guaranteed",
        "steps": [
            {
                "workflow": "amqp-redelivery",
                "params": {"messages": 10, "crash_at": 4, "consumers": 2, "rate": 2},
                "narration": "A consumer handles a message, then crashes before its ack. The broker "
                             "cannot know the work was done.",
                "pause_at": {"query": "kind:crash"},
                "question": {"text": "Will {message} be processed again?", "choices": YES_NO,
                             "answer": "yes",
                             "answer_from": {"count": "kind:process message:{message}"}},
            },
            {
                "workflow": "amqp-redelivery",
                "params": {"messages": 10, "crash_at": 4, "consumers": 2, "rate": 2, "idempotent": True},
                "narration": "The same run with the consumer's inbox on: it remembers which messages "
                             "already took effect.",
                "pause_at": {"query": "kind:crash"},
                "question": {"text": "How many times does {message} take effect?", "choices": ["0", "1", "2"],
                             "answer_from": {"count": "kind:process message:{message} effect:true"}},
            },
            {
                "workflow": "celery-order",
                "params": {"orders": 4, "rate": 2, "work_ms": 500, "workers": 2, "acks_late": True,
                           "crash_at": 2},
                "narration": "With acks_late a worker killed mid-task leaves the task unacked, and it "
                             "runs again.",
                "pause_at": {"query": "kind:crash"},
                "question": {"text": "How many times is {message} charged?", "choices": ["0", "1", "2"],
                             "answer_from": {"count": "kind:process message:{message} effect:true"}},
            },
        ],
    },
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
