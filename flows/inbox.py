"""The idempotent consumer's inbox: one ``InboxEntry`` row per (logical consumer, message).

Every protocol's idempotent consumer (AMQP, Kafka, MQTT, Celery) asks the same question
before applying a message's effect: has this consumer applied it already? The unique
constraint answers it, even across processes (a Celery worker) and redeliveries to
another member: the second insert fails.
"""

from __future__ import annotations


def first_time(run_id: int, consumer: str, message_id: str) -> bool:
    """Record the message in ``consumer``'s inbox; False if it was there already."""
    from django.db import IntegrityError, transaction

    from .models import InboxEntry

    try:
        with transaction.atomic():
            InboxEntry.objects.create(run_id=run_id, consumer=consumer, message_id=message_id)
    except IntegrityError:
        return False
    return True
