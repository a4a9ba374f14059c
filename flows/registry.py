"""The workflow registry: slug → workflow class, resolved lazily by dotted path.

Like kombu's ``TRANSPORT_ALIASES``, the table names where each workflow lives; importing
this module imports no broker client, and a workflow module is only imported when its
slug is first asked for.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from .params import Param, validate

if TYPE_CHECKING:
    from .context import RunContext

WORKFLOWS: dict[str, str] = {
    "http-crud": "flows.workflows.http_crud:HttpCrud",
    "grpc-person": "flows.workflows.grpc_person:GrpcPerson",
    "kafka-partitions": "flows.workflows.kafka_partitions:KafkaPartitions",
    "kafka-consumer-groups": "flows.workflows.kafka_consumer_groups:KafkaConsumerGroups",
    "amqp-routing": "flows.workflows.amqp_routing:AmqpRouting",
    "amqp-redelivery": "flows.workflows.amqp_redelivery:AmqpRedelivery",
    "celery-order": "flows.workflows.celery_order:CeleryOrder",
    "mqtt-qos": "flows.workflows.mqtt_qos:MqttQos",
}


class Workflow:
    """One runnable lesson. Subclasses declare these attributes and implement ``run``."""

    slug: ClassVar[str]
    title: ClassVar[str]
    pattern: ClassVar[str]  # sync | async
    protocol: ClassVar[str]  # http | grpc | amqp | celery | kafka | mqtt
    lesson: ClassVar[str]
    params: ClassVar[Mapping[str, Param]] = {}
    # Fault injections offered while the run is live: action name → button label.
    actions: ClassVar[Mapping[str, str]] = {}
    # Which broker (flows.transports) this workflow needs; None for brokerless ones.
    broker: ClassVar[str | None] = None

    def expected(self, params: Mapping[str, Any]) -> int:
        """How many completions (responses / first processings) a run should reach."""
        return 0

    def run(self, ctx: RunContext) -> dict[str, Any] | None:
        """Do the work, emitting events through ``ctx``; return workflow-specific results."""
        raise NotImplementedError

    @classmethod
    def caveats(cls) -> list[str]:
        """What the configured broker gets wrong for this lesson, said before Start (never starts it)."""
        return []

    @classmethod
    def contract(cls) -> dict[str, Any]:
        return {
            "slug": cls.slug,
            "title": cls.title,
            "pattern": cls.pattern,
            "protocol": cls.protocol,
            "lesson": cls.lesson,
            "params": {name: p.contract() for name, p in cls.params.items()},
            "actions": dict(cls.actions),
            "broker": cls.broker,
            "caveats": cls.caveats(),
        }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        return validate(cls.params, given)


class UnknownWorkflow(KeyError):
    pass


@cache
def get(slug: str) -> type[Workflow]:
    try:
        path = WORKFLOWS[slug]
    except KeyError:
        raise UnknownWorkflow(slug) from None
    module_name, _, attr = path.partition(":")
    cls = getattr(import_module(module_name), attr)
    if cls.slug != slug:
        raise RuntimeError(f"{path} declares slug {cls.slug!r}, registered as {slug!r}")
    return cls


def all_workflows() -> list[type[Workflow]]:
    return [get(slug) for slug in WORKFLOWS]
