"""Kafka building blocks shared by the Kafka workflows and benchmarks.

Nothing here imports ``confluent_kafka`` at module import; clients are built inside functions.
The same code runs against the embedded Tansu broker and Apache Kafka 4: only
``bootstrap.servers`` changes.
"""
