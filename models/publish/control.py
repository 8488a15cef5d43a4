"""Announce a model set on the control topic.

The topic is compacted and every manifest uses the same key
(:data:`MANIFEST_KEY`), so the topic keeps the latest set and an engine
that starts reads exactly one manifest. The producer is idempotent (acks
from all replicas, no duplicates on retry); the send is confirmed before
publish moves the ``current`` pointer.
"""

from __future__ import annotations

from confluent_kafka import KafkaException, Producer

from signalml.contracts import ModelSetManifest, encode
from stream.inference.errors import PublishError

from stream.roles import CHALLENGER_KEY, CHAMPION_KEY

MANIFEST_KEY = CHAMPION_KEY
__all__ = ["CHALLENGER_KEY", "MANIFEST_KEY", "send_manifest"]


def send_manifest(
    bootstrap: str,
    topic: str,
    manifest: ModelSetManifest,
    *,
    timeout_s: float = 30.0,
    config: dict | None = None,
    key: bytes = MANIFEST_KEY,
) -> tuple[int, int]:
    """Send ``manifest`` under ``key`` (the champion's by default) and wait
    for the broker's ack; returns (partition, offset). Raises PublishError
    when it is not acknowledged in time."""
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "message.timeout.ms": int(timeout_s * 1000),
            "linger.ms": 0,
            **(config or {}),
        }
    )
    outcome: dict = {}

    def delivered(error, message) -> None:
        outcome["error"] = error
        if error is None:
            outcome["position"] = (message.partition(), message.offset())

    try:
        producer.produce(topic, key=key, value=encode(manifest), on_delivery=delivered)
        producer.flush(timeout_s + 5)
    except (KafkaException, BufferError) as exc:
        raise PublishError(f"control topic {topic!r} on {bootstrap}: sending the manifest failed: {exc}") from None
    if "error" not in outcome:
        raise PublishError(f"control topic {topic!r} on {bootstrap}: no acknowledgement within {timeout_s:.0f} s")
    if outcome["error"] is not None:
        raise PublishError(f"control topic {topic!r} on {bootstrap}: the broker refused the manifest: {outcome['error']}")
    return outcome["position"]
