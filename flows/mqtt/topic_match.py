"""MQTT 3.1.1 topic names and filters (section 4.7): validation and matching.

The workflow uses this to say which subscription *should* receive a message, so that a
broker delivering something else (or nothing) shows up as a difference, not as truth.
"""

from __future__ import annotations


class TopicError(ValueError):
    """A topic name or filter that MQTT 3.1.1 does not allow."""


def check_topic(topic: str) -> str:
    """A topic name as a publisher may use it: no wildcards, not empty."""
    if not isinstance(topic, str) or not topic:
        raise TopicError("a topic name must be a non-empty string")
    if "+" in topic or "#" in topic:
        raise TopicError(f"topic name {topic!r} must not contain the wildcards + or #")
    if "\x00" in topic or len(topic.encode()) > 65535:
        raise TopicError(f"topic name {topic[:40]!r} is not a valid MQTT string")
    return topic


def check_filter(topic_filter: str) -> str:
    """A subscription filter: ``+`` fills one whole level, ``#`` only the whole last level."""
    if not isinstance(topic_filter, str) or not topic_filter:
        raise TopicError("a topic filter must be a non-empty string")
    levels = topic_filter.split("/")
    for index, level in enumerate(levels):
        if "#" in level and (level != "#" or index != len(levels) - 1):
            raise TopicError(f"filter {topic_filter!r}: '#' must be the whole last level")
        if "+" in level and level != "+":
            raise TopicError(f"filter {topic_filter!r}: '+' must be a whole level")
    if "\x00" in topic_filter:
        raise TopicError(f"filter {topic_filter!r} contains a NUL character")
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (both already valid).

    ``sport/#`` also matches ``sport`` itself (the parent level); topics starting with
    ``$`` are not matched by filters starting with a wildcard [MQTT-4.7.2-1].
    """
    if topic.startswith("$") and topic_filter[:1] in ("+", "#"):
        return False
    f_levels = topic_filter.split("/")
    t_levels = topic.split("/")
    for index, level in enumerate(f_levels):
        if level == "#":
            return True
        if index >= len(t_levels):
            return False
        if level != "+" and level != t_levels[index]:
            return False
    return len(f_levels) == len(t_levels)
