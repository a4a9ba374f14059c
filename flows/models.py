"""What the dashboard keeps: runs, their events, and the idempotent consumers' inboxes."""

from __future__ import annotations

import secrets

from django.db import models


def new_run_token() -> str:
    return secrets.token_hex(3)


class UncheckedJSONField(models.JSONField):
    """A JSONField without SQLite's ``CHECK (JSON_VALID(...))``.

    The column only ever holds what Django's own JSON encoder wrote, and SQLite's check parses
    the whole text into a node per value on every write: for a million-message
    ``kafka-partitions`` result (14 MB, two million numbers) that is 60 MB more memory than
    the write itself, for a verdict already known. PostgreSQL's ``jsonb`` has no such check.
    """

    def db_check(self, connection) -> str | None:
        return None


class RunManager(models.Manager):
    """Runs without their ``result`` until it is read.

    A workflow's whole result grows with the run (a million-message ``kafka-partitions``
    run: 14 MB of JSON, several times that once parsed), and it is only read where it is
    served whole: every other look-up (a summary, the runs list, a run's events) would
    parse it for nothing. Reading ``run.result`` fetches it then.
    """

    def get_queryset(self) -> models.QuerySet:
        return super().get_queryset().defer("result")


class Run(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        FAILED = "failed"
        CANCELLED = "cancelled"

    LIVE_STATES = (State.PENDING, State.RUNNING)

    workflow = models.CharField(max_length=64, db_index=True)
    params = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    expected = models.PositiveIntegerField(default=0)
    brokers = models.JSONField(default=dict)
    # The summary is frozen here when the run ends so history pages need not rescan events.
    summary = models.JSONField(null=True, blank=True)
    result = UncheckedJSONField(default=dict)
    # host:pid of the process running it, so a restarted server can fail runs it orphaned.
    owner = models.CharField(max_length=200, blank=True, default="")
    # Run ids restart in every database (each test run, each deployment) while several of
    # them may share one RabbitMQ or Kafka: the token keeps the run's broker names apart.
    token = models.CharField(max_length=16, default=new_run_token, editable=False)

    objects = RunManager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"run {self.pk} {self.workflow} {self.state}"

    @property
    def live(self) -> bool:
        return self.state in self.LIVE_STATES

    @property
    def namespace(self) -> str:
        """The prefix of every exchange, queue, topic and group this run creates on a broker."""
        return f"run{self.pk}-{self.token}"


class Event(models.Model):
    # No index of its own: the (run, seq) unique constraint already leads with run, and a
    # second index slows the bulk inserts that every event goes through.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    t_ms = models.FloatField()
    kind = models.CharField(max_length=16)
    actor = models.CharField(max_length=200)
    message_id = models.CharField(max_length=200, blank=True, default="")
    attempt = models.PositiveIntegerField(default=1)
    duplicate = models.BooleanField(default=False)
    attrs = models.JSONField(default=dict)

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="event_run_seq_unique")]


class InboxEntry(models.Model):
    """One row per (logical consumer, message) an idempotent consumer has applied.

    The unique constraint is the idempotency: a second insert fails, so the effect is
    applied at most once even when the broker delivers the message again.
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="inbox")
    consumer = models.CharField(max_length=200)
    message_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "consumer", "message_id"], name="inbox_unique_message")
        ]


class ServiceOrder(models.Model):
    """The ``outbox`` workflow's service table: one row per order the service stored.

    Tagged by run, so runs sharing a database never see each other's orders (and the run's
    deletion takes them along).
    """

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="service_orders")
    order_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run", "order_id"], name="service_order_unique")]


class OutboxRow(models.Model):
    """A message the service wrote in the same transaction as its order; the relay publishes it.

    ``state`` goes pending → sent once the relay has published it and marked it; a relay
    that dies between the two leaves it pending, and publishes it again after its restart.
    """

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="outbox_rows")
    message_id = models.CharField(max_length=64)
    order_id = models.CharField(max_length=64)
    payload = models.JSONField(default=dict)
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    publishes = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "message_id"], name="outbox_row_unique")]
        indexes = [models.Index(fields=["run", "state"], name="outbox_run_state")]
