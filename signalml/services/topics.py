"""The configured topics, checked before a command reads or writes them.

The embedded broker never creates a topic on first use
(``auto.create.topics.enable=false``), and ``signalml up`` creates every
configured topic that is missing. A command that starts against a missing
topic, or one whose partition count differs from the configuration (the
engine assigns itself every configured partition; a compacted state topic
and the engines' lease topic must have one), stops with one line that names the topic, the setting and
what to do.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Iterable

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from signalml.config import Settings
from signalml.errors import Interrupted, ServiceError

log = logging.getLogger("signalml.kafka")


class TopicError(ServiceError):
    """A configured topic is missing or has another partition count."""


def creation_config(settings: Settings, key: str) -> dict[str, str]:
    """The configuration a topic (a ``kafka.topics`` key) is created with: its
    ``config``, and for the bars topic a ``retention.ms`` that keeps the history
    a retrain reads (``retrain.topic_retention_days``) unless ``config`` sets one."""
    config = dict(settings.kafka.topics.all()[key].config)
    days = settings.retrain.topic_retention_days
    if key == "bars" and days is not None:
        config.setdefault("retention.ms", str(round(days * 86_400_000)))
    return config


def engine_topic_keys(settings: Settings) -> list[str]:
    """The topics (``kafka.topics`` keys) an engine of ``settings`` uses."""
    signals = "signals" if settings.serving.role == "champion" else "signals_challenger"
    return ["bars", "bars_dlq", signals, "cross_sections", "drift", "control", "engine_state", "engine_lease"]


def require_topics(settings: Settings, keys: Iterable[str], *, timeout_s: float | None = None,
                   should_stop: Callable[[], bool] = lambda: False) -> None:
    """Raise :class:`TopicError` unless every topic of ``keys`` (fields of
    ``kafka.topics``) exists with its configured partition count. Waits up to
    ``timeout_s`` (default ``kafka.startup_timeout_s``) for the broker."""
    from signalml.services.kafka import _RdkafkaLog

    kafka = settings.kafka
    timeout_s = kafka.startup_timeout_s if timeout_s is None else timeout_s
    admin = AdminClient({"bootstrap.servers": kafka.bootstrap_servers, "logger": _RdkafkaLog()})
    deadline = time.monotonic() + timeout_s
    said = False
    while True:
        try:
            topics = admin.list_topics(timeout=1.0).topics
            break
        except KafkaException as exc:
            if not said:
                log.warning("waiting for Kafka at %s to answer (up to %.0f s): %s", kafka.bootstrap_servers,
                            timeout_s, exc.args[0].str())
                said = True
            if should_stop():
                raise Interrupted("waiting for Kafka: interrupted by a stop request") from None
            if time.monotonic() > deadline:
                raise ServiceError(f"kafka at {kafka.bootstrap_servers} does not answer ({exc.args[0].str()}); "
                                   "is it running? (`signalml up` starts it)") from None
    configured = kafka.topics.all()
    for key in keys:
        topic = configured[key]
        setting = f"kafka.topics.{key}"
        found = topics.get(topic.name)
        if found is None or found.error is not None:
            raise TopicError(f"kafka topic {topic.name!r} ({setting}.name) does not exist on "
                             f"{kafka.bootstrap_servers}: `signalml up` creates the configured topics")
        have = len(found.partitions)
        if have != topic.partitions:
            raise TopicError(f"kafka topic {topic.name!r} has {have} partition(s) but {setting}.partitions is "
                             f"{topic.partitions}: set {setting}.partitions to {have}, or delete the topic and "
                             "run `signalml up` to create it as configured")
