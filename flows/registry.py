"""The workflow registry: slug → workflow class, resolved lazily by dotted path.

Like kombu's ``TRANSPORT_ALIASES``, the table names where each workflow lives; importing
this module imports no broker client, and a workflow module is only imported when its
slug is first asked for.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any, ClassVar

from django.conf import settings

from .params import Param, bool_param, choice_param, validate

if TYPE_CHECKING:
    from .context import RunContext

WORKFLOWS: dict[str, str] = {
    "http-crud": "flows.workflows.http_crud:HttpCrud",
    "grpc-person": "flows.workflows.grpc_person:GrpcPerson",
    "kafka-partitions": "flows.workflows.kafka_partitions:KafkaPartitions",
    "kafka-consumer-groups": "flows.workflows.kafka_consumer_groups:KafkaConsumerGroups",
    "amqp-routing": "flows.workflows.amqp_routing:AmqpRouting",
    "amqp-redelivery": "flows.workflows.amqp_redelivery:AmqpRedelivery",
    "amqp-dead-letter": "flows.workflows.amqp_dead_letter:AmqpDeadLetter",
    "celery-order": "flows.workflows.celery_order:CeleryOrder",
    "mqtt-qos": "flows.workflows.mqtt_qos:MqttQos",
    "sync-vs-async": "flows.workflows.sync_vs_async:SyncVsAsync",
    "outbox": "flows.workflows.outbox:Outbox",
}


# What a handler answers: one sentence, or a dict with the sentence under "result" and
# whatever else the one who asked needs (a publish's "message_id").
Reply = str | dict[str, Any] | None

# Every hands-on workflow takes this parameter (contracts: "Interactive runs").
INTERACTIVE = bool_param(False, "Stay live after the scripted messages, driven by hand (publish, bind, add, "
                         "slow, crash…) until Finish", label="Interactive")

# Every async workflow takes this parameter (contracts: "Fidelity").
FIDELITY = choice_param("auto", ("auto", "full", "sampled"),
                        "full: every event; sampled: exact counts per edge, whole traces of a sample of messages "
                        "and every anomaly; auto: full while a person can follow, sampled above", label="Fidelity")


def action(label: str, target: str | None = None, picks: bool = False,
           params: Mapping[str, Param] | None = None,
           hands_on: bool = False) -> Callable[[Callable[..., Reply]], Callable[..., Reply]]:
    """Declare ``on_<name>(self, target, **params)`` as the handler of the run action ``<name>``.

    ``label`` is the button text; the contract's ``actions`` mapping is built from these
    declarations, so an action offered to the browser always has a handler. ``target``
    names what the action applies to ("consumer", "member"; None: the run as a whole) and
    ``picks`` says the workflow chooses one itself when none is given. ``params`` are
    validated on the web thread like a run's, so bad ones are a 400 naming the field before
    anything is queued; ``hands_on`` actions are offered by interactive runs only. The
    handler runs on the run thread and returns what it did, in one sentence, for the one
    who asked.
    """
    def declare(handler: Callable[..., Reply]) -> Callable[..., Reply]:
        if not handler.__name__.startswith("on_"):
            raise TypeError(f"an action handler is named on_<action>, not {handler.__name__}")
        handler.action_label = label  # type: ignore[attr-defined]
        handler.action_target = target  # type: ignore[attr-defined]
        handler.action_picks = picks  # type: ignore[attr-defined]
        handler.action_params = dict(params or {})  # type: ignore[attr-defined]
        handler.action_hands_on = hands_on  # type: ignore[attr-defined]
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
    pattern: ClassVar[str]  # sync | async | compare (both side by side)
    protocol: ClassVar[str]  # http | grpc | amqp | celery | kafka | mqtt | mixed
    lesson: ClassVar[str]
    params: ClassVar[Mapping[str, Param]] = {}
    # Fault injections offered while the run is live: action name → button label. Derived
    # from the ``@action`` handlers; never set by hand.
    actions: ClassVar[Mapping[str, str]] = {}
    # Which broker (flows.transports) this workflow needs; None for brokerless ones.
    broker: ClassVar[str | None] = None
    # What the embedded broker lacks that this workflow cannot do without ('' when it runs
    # embedded too): then the form says so before Start and a run is refused with a 400.
    needs_external: ClassVar[str] = ""

    @classmethod
    def brokers_of(cls, params: Mapping[str, Any]) -> list[str]:
        """The brokers a run with ``params`` uses (the run's ``brokers``, each watched while it
        runs): the workflow's own by default; one that mixes protocols says which of them."""
        return [cls.broker] if cls.broker else []

    def expected(self, params: Mapping[str, Any]) -> int:
        """How many completions the run plans: responses (sync) or first processings per
        (logical consumer, message) (async). ``progress.done`` counts those that happened; a
        completion outside the plan carries ``planned: False`` so it never pushes done past this."""
        return 0

    def pace(self, params: Mapping[str, Any]) -> tuple[int, float]:
        """The events the run plans to record and how many a second (``math.inf``: as fast as it can).

        ``auto`` fidelity samples from the start when both are over its limits (contracts:
        "Fidelity"); ``(0, 0.0)``, the default, leaves it to the rate it measures.
        """
        return 0, 0.0

    ctx: RunContext
    p: dict[str, Any]  # the run's validated parameters

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        handlers = {name.removeprefix("on_"): member for klass in reversed(cls.__mro__)
                    for name, member in vars(klass).items() if getattr(member, "action_label", None) is not None}
        takes_hands = any(h.action_hands_on for name, h in handlers.items() if name != "finish")
        if takes_hands and "interactive" not in cls.params:
            # A workflow with hands-on actions can be driven by hand: it takes the contract's ``interactive``.
            cls.params = {**cls.params, "interactive": INTERACTIVE}
        if getattr(cls, "pattern", None) == "async" and "fidelity" not in cls.params:
            cls.params = {**cls.params, "fidelity": FIDELITY}
        cls.actions = {name: h.action_label for name, h in handlers.items() if takes_hands or not h.action_hands_on}

    @classmethod
    def handler_of(cls, name: str) -> Callable[..., Reply]:
        return getattr(cls, f"on_{name}")

    # -- the lifecycle, driven by the runner -------------------------------------------

    def run(self, ctx: RunContext) -> dict[str, Any]:
        """The runner's entry point: every step in order; ``teardown`` whatever happens."""
        self.ctx, self.p = ctx, ctx.params
        self.finishing = False
        self.ended_by = ""
        ctx.set_tick(self.tick)
        try:
            self.setup()
            self.start_consumers()
            self.produce()
            if self.p.get("interactive"):
                self.hold()
            self.settle()
            result = self.report()
            if self.p.get("interactive"):
                result["interactive"] = {"ended_by": self.ended_by, "actions": ctx.actions_taken}
            return result
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

    def hold(self) -> None:
        """An interactive run, after its scripted messages: stay live, handling actions,
        until ``finish``, a cancel, the run's deadline, or ``FLOWS_IDLE_S`` without one."""
        idle_s = settings.FLOWS_IDLE_S
        while not self.finishing:
            quiet_for = time.monotonic() - self.ctx.last_action_at
            if quiet_for >= idle_s:
                self.ended_by = f"idle: ended by itself after {idle_s:g} s without an action"
                return
            try:
                self.ctx.wait_until(lambda: self.finishing, min(idle_s - quiet_for, 1.0), "finish",
                                    wake=self.ctx.action_arrived, step=0.02)
            except TimeoutError:
                pass

    @action("Finish", hands_on=True)
    def on_finish(self, target: str) -> str:
        self.finishing, self.ended_by = True, "finish: ended by hand"
        return "finishing: what is in flight settles, then the run ends"

    # -- actions ---------------------------------------------------------------------------

    def targets(self, action: str) -> list[str]:
        """The actors ``action`` applies to right now (live consumers, members, workers…).

        Called from web threads while the run goes on: an override reads the workflow's
        state without blocking and tolerates a run still in ``setup``.
        """
        return []

    def menu(self) -> dict[str, dict[str, Any]]:
        """Every action with what it applies to now (``GET /api/runs/<id>/actions/``)."""
        return {name: {**self.action_contract(name),
                       "targets": self.targets(name) if self.handler_of(name).action_target else []}
                for name in self.offered()}

    def offered(self) -> list[str]:
        """The actions this run takes: hands-on ones only while it is interactive."""
        hands = bool(self.p.get("interactive"))
        return [name for name in self.actions if hands or not self.handler_of(name).action_hands_on]

    @classmethod
    def action_contract(cls, name: str) -> dict[str, Any]:
        handler = cls.handler_of(name)
        return {"label": cls.actions[name], "target": handler.action_target, "picks": handler.action_picks,
                "hands_on": handler.action_hands_on,
                "params": {key: p.contract() for key, p in handler.action_params.items()}}

    def vet(self, name: str, target: str, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """The action's params, cleaned, and what is wrong with the request, by field.

        Runs on a web thread before anything is queued, so a bad request is a 400 that
        names the field; ``check_action`` adds what depends on the run's state now.
        """
        handler = self.handler_of(name)
        if handler.action_hands_on and not self.p.get("interactive"):
            return {}, {"action": f"{name} is offered by interactive runs only; start one with interactive on"}
        refusal = self.refusal(name, target)
        if refusal:
            return {}, {"target": refusal}
        cleaned, errors = validate(handler.action_params, given)
        if errors:
            return cleaned, errors
        return cleaned, self.check_action(name, target, cleaned)

    def check_action(self, name: str, target: str, params: dict[str, Any]) -> dict[str, str]:
        """What the run's state now forbids (unknown queue, too many consumers…), by field.

        Called from web threads, like ``targets``: read state without blocking.
        """
        return {}

    def refusal(self, name: str, target: str) -> str:
        """Why ``target`` is not one ``name`` applies to now; '' when it is."""
        handler = self.handler_of(name)
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
                said = self.dispatch(pending.name, pending.target, pending.params)
            except BaseException as exc:
                pending.outcome.settle(f"{pending.name} failed: {exc}")
                raise
            pending.outcome.settle(said)

    def dispatch(self, name: str, target: str, params: dict[str, Any] | None = None) -> Reply:
        """Run the handler of ``name``; returns what it did, in one sentence (and extras)."""
        if name not in self.actions:
            reason = f"{name}: not an action of {self.slug}"
            self.ctx.emit("error", "runner", reason=reason)
            return reason
        return getattr(self, f"on_{name}")(target, **(params or {})) or f"{name} done"

    @classmethod
    def caveats(cls) -> list[str]:
        """What the configured broker gets wrong for this lesson, said before Start (never starts it)."""
        refusal = cls.broker_refusal()
        return [refusal] if refusal else []

    @classmethod
    def broker_refusal(cls) -> str:
        """Why the configured broker cannot run this workflow at all; '' when it can (never starts it)."""
        if not cls.needs_external or cls.broker is None:
            return ""
        from .transports import BROKERS, get_broker

        broker = get_broker(cls.broker)
        if not broker.embedded:
            return ""
        return (f"{cls.slug} needs {broker.external_name}: {cls.needs_external}. Point the dashboard at "
                f"{broker.external_name} ({BROKERS[cls.broker][1]}=… or FLOWS_BROKERS=external).")

    @classmethod
    def contract(cls) -> dict[str, Any]:
        return {
            "slug": cls.slug,
            "title": cls.title,
            "pattern": cls.pattern,
            "protocol": cls.protocol,
            "lesson": cls.lesson,
            "params": {name: p.contract() for name, p in cls.params.items()},
            "actions": {name: cls.action_contract(name) for name in cls.actions},
            "broker": cls.broker,
            "caveats": cls.caveats(),
        }

    @classmethod
    def validate(cls, given: Any) -> tuple[dict[str, Any], dict[str, str]]:
        """The run's params, cleaned, and what is wrong, by field; ``broker`` when the broker
        configured here cannot run this workflow at all."""
        cleaned, errors = validate(cls.params, given)
        refusal = cls.broker_refusal()
        return cleaned, {**errors, "broker": refusal} if refusal else errors


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
