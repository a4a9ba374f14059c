"""AMQP helpers shared by the AMQP and Celery workflows.

``routing_rules`` is an independent statement of the AMQP 0-9-1 routing rules (what a
broker must do), ``memory`` the embedded broker (kombu's in-process transport with the
broker behaviours the lessons rely on), ``resources`` run-scoped exchanges and queues,
``consumers`` push/pull consumers that can crash the way a process does.
"""
