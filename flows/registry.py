"""The workflow registry: slug → workflow class, resolved lazily by dotted path.

Like kombu's ``TRANSPORT_ALIASES``, the table names where each workflow lives; importing
this module imports no broker client, and a workflow module is only imported when its
slug is first asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


def action(label: str, target: str | None = None,
           picks: bool = False) -> Callable[[Callable[..., str | None]], Callable[..., str | None]]:
    """Declare ``on_<name>(self, target)`` as the handler of the run action ``<name>``.

    ``label`` is the button text; the contract's ``actions`` mapping is built from these
    declarations, so an action offered to the browser always has a handler. ``target``
    names what the action applies to ("consumer", "member"; None: the run as a whole) and
    ``picks`` says the workflow chooses one itself when none is given. The handler runs on
    the run thread and returns what it did, in one sentence, for the one who asked.
    """
    def declare(handler: Callable[..., str | None]) -> Callable[..., str | None]:
        if not handler.__name__.startswith("on_"):
            raise TypeError(f"an action handler is named on_<action>, not {handler.__name__}")
        handler.action_label = label  # type: ignore[attr-defined]
        handler.action_target = target  # type: ignore[attr-defined]
        handler.action_picks = picks  # type: ignore[attr-defined]
        return handler
    return declare


class Workflow:
    """One runnable lesson, in the same named steps for every broker.

    The runner calls ``run(ctx)``, which drives the lifecycle: ``setup`` (topology and
    clients), ``start_consumers``, ``produce``, ``settle`` (wait, with deadlines, until the
    work is done or given up on), ``report`` (the run's result), and ``teardown``, which
    always runs. A subclass fills the steps with its broker's calls, as a kombu transport
    fills kombu's channel; the steps it does not need stay empty.

    Actions the user sends while the run is live (the ``actions`` mapping) reach methods
    declared with ``@action(label)``; they are dispatched on the run thread whenever it
    waits (``ctx.wait_until``, ``ctx.sleep``, the pacer), so handlers need no locks among
    themselves.
    """

    slug: ClassVar[str]
    title: ClassVar[str]
    pattern: ClassVar[str]  # sync | async
    protocol: ClassVar[str]  # http | grpc | amqp | celery | kafka | mqtt
    lesson: ClassVar[str]
    params: ClassVar[Mapping[str, Param]] = {}
    # Fault injections offered while the run is live: action name → button label. Derived
    # from the ``@action`` handlers; never set by hand.
    actions: ClassVar[Mapping[str, str]] = {}
    # Which broker (flows.transports) this workflow needs; None for brokerless ones.
    broker: ClassVar[str | None] = None

    def expected(self, params: Mapping[str, Any]) -> int:
        """How many completions the run plans: responses (sync) or first processings per
        (logical consumer, message) (async). ``progress.done`` counts those that happened; a
        completion outside the plan carries ``planned: False`` so it never pushes done past this."""
        return 0

    ctx: RunContext
    p: dict[str, Any]  # the run's validated parameters

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared: dict[str, str] = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                label = getattr(member, "action_label", None)
                if label is not None:
                    declared[name.removeprefix("on_")] = label
        cls.actions = declared

    # -- the lifecycle, driven by the runner -------------------------------------------

    def run(self, ctx: RunContext) -> dict[str, Any]:
        """The runner's entry point: every step in order; ``teardown`` whatever happens."""
        self.ctx, self.p = ctx, ctx.params
        ctx.set_tick(self.tick)
        try:
            self.setup()
            self.start_consumers()
            self.produce()
            self.settle()
            return self.report()
        finally:
            try:
                self.teardown()
            finally:
                ctx.set_tick(None)

    def setup(self) -> None:
        """Reach the broker, create the run's topology and clients."""

    def start_consumers(self) -> None:
        """Start whatever receives (consumers, subscribers, servers) and wait until it is ready."""

    def produce(self) -> None:
        """Send the run's messages (requests, calls, orders)."""

    def settle(self) -> None:
        """Wait, with deadlines (``ctx.wait_until``), until every message is handled or given up on."""

    def report(self) -> dict[str, Any]:
        """The run's result: workflow-specific figures (contracts: the summary's ``result``)."""
        return {}

    def teardown(self) -> None:
        """Stop clients and delete what the run made; always runs, also after a failure."""

    # -- actions ---------------------------------------------------------------------------

    def targets(self, action: str) -> list[str]:
        """The actors ``action`` applies to right now (live consumers, members, workers…).

        Called from web threads while the run goes on: an override reads the workflow's
        state without blocking and tolerates a run still in ``setup``.
        """
        return []

    def menu(self) -> dict[str, dict[str, Any]]:
        """Every action with what it applies to now (``GET /api/runs/<id>/actions/``)."""
        menu = {}
        for name, label in self.actions.items():
            handler = getattr(type(self), f"on_{name}")
            menu[name] = {"label": label, "target": handler.action_target, "picks": handler.action_picks,
                          "targets": self.targets(name) if handler.action_target else []}
        return menu

    def refusal(self, name: str, target: str) -> str:
        """Why ``target`` is not one ``name`` applies to now; '' when it is."""
        handler = getattr(type(self), f"on_{name}")
        noun = handler.action_target
        if noun is None:
            return ""
        live = self.targets(name)
        said = ", ".join(live) if live else "none right now"
        if not target and not live:
            return "" if handler.action_picks else f"no {noun} to {name} right now"
        if not target:
            return "" if handler.action_picks else f"name the {noun} to {name}; live: {said}"
        if any(target in (actor, actor.partition(":")[2]) for actor in live):
            return ""
        return f"no live {noun} named {target}; live: {said}"

    def tick(self) -> None:
        """Called on the run thread whenever it waits: dispatch pending actions to their handlers."""
        while (pending := self.ctx.take_action()) is not None:
            try:
                said = self.dispatch(pending.name, pending.target)
            except BaseException as exc:
                pending.outcome.settle(f"{pending.name} failed: {exc}")
                raise
            pending.outcome.settle(said)

    def dispatch(self, name: str, target: str) -> str:
        """Run the handler of ``name``; returns what it did, in one sentence."""
        if name not in self.actions:
            reason = f"{name}: not an action of {self.slug}"
            self.ctx.emit("error", "runner", reason=reason)
            return reason
        return getattr(self, f"on_{name}")(target) or f"{name} done"

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
