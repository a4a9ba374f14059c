"""The ``outbox`` workflow's parts: the carriers that take its "order placed" message to a broker."""
