"""The model set the engine serves: a manifest, its ensemble, and where new
manifests come from (the compacted control topic).

A new manifest is prepared off the hot path: every member must answer Triton
(pinned version) and a warm-up request is sent, then :class:`ModelSetSlot`
switches between two cross-sections, so each cross-section is scored by
exactly one set.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import msgspec
import numpy as np
from confluent_kafka import Consumer, KafkaError, TopicPartition

from models.ensemble import Ensemble, from_manifest
from signalml.config import Settings
from signalml.contracts import ModelSetManifest, decoder, schema_hash
from stream.checkpoint import RECONNECT_BACKOFF_MAX_MS, rdkafka_logger
from stream.roles import control_key

log = logging.getLogger("signalml.engine")

_manifest_decoder = decoder(ModelSetManifest)


@dataclass(frozen=True)
class ModelSet:
    """A manifest and the ensemble it says to serve."""

    manifest: ModelSetManifest
    ensemble: Ensemble

    @property
    def id(self) -> str:
        return self.manifest.model_set

    @property
    def needs_sequences(self) -> bool:
        return any(m.input == "sequence" for m in self.manifest.members)

    @classmethod
    def of(cls, manifest: ModelSetManifest, feature_names: list[str]) -> "ModelSet":
        """Check the manifest against the engine's features and build the ensemble."""
        if manifest.feature_names != list(feature_names) or manifest.feature_schema_hash != schema_hash(list(feature_names)):
            raise ValueError(
                f"model set {manifest.model_set} was trained on other features "
                f"(schema {manifest.feature_schema_hash}, engine {schema_hash(list(feature_names))})"
            )
        entry = {
            "method": manifest.ensemble_method,
            "weights": dict(manifest.ensemble_weights),
            "stacking": {"intercept": manifest.stacking_intercept, "coefficients": dict(manifest.stacking_coefficients)},
        }
        return cls(manifest, from_manifest(entry, [m.name for m in manifest.members]))

    def combine(self, member_scores: dict[str, np.ndarray]) -> np.ndarray:
        return self.ensemble.combine_members(member_scores)


class ControlListener:
    """Reads manifests from the control topic (all of it at start, then new
    ones as they arrive); the latest decodable one under ``key`` wins. The
    key defaults to the one of ``serving.role`` (see :mod:`stream.roles`):
    a challenger's manifest never reaches a champion engine."""

    def __init__(self, settings: Settings, key: bytes | None = None):
        self.topic = settings.kafka.topics.control.name
        self.key = key if key is not None else control_key(settings.serving.role)
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.kafka.bootstrap_servers,
                "group.id": f"signalml-control-{uuid.uuid4().hex}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "enable.partition.eof": True,
                "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
                "logger": rdkafka_logger(),
            }
        )
        self.partitions = sorted(self.consumer.list_topics(self.topic, timeout=30).topics[self.topic].partitions)
        self.rewind()
        self.rejected = 0

    def rewind(self) -> None:
        """Read the topic from its start again (:meth:`read_to_end` then finds the latest manifest)."""
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in self.partitions])

    def poll(self, timeout_s: float = 0.0) -> ModelSetManifest | None:
        """The newest manifest that arrived since the last call, if any."""
        latest = None
        while True:
            msg = self.consumer.poll(timeout_s)
            timeout_s = 0.0
            if msg is None:
                return latest
            if msg.error():
                if msg.error().code() != KafkaError._PARTITION_EOF:
                    log.warning("control topic: %s", msg.error())
                continue
            latest = self._decode(msg) or latest

    def read_to_end(self, timeout_s: float = 10.0) -> ModelSetManifest | None:
        """Everything already on the topic; the latest manifest."""
        import time

        latest, eof, deadline = None, set(), time.monotonic() + timeout_s
        n_partitions = len(self.consumer.assignment())
        while len(eof) < n_partitions and time.monotonic() < deadline:
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    eof.add(msg.partition())
                continue
            latest = self._decode(msg) or latest
        return latest

    def _decode(self, msg) -> ModelSetManifest | None:
        if msg.key() != self.key:
            return None
        try:
            return _manifest_decoder.decode(msg.value())
        except msgspec.DecodeError as exc:
            self.rejected += 1
            log.error("control topic: offset %d is not a model-set manifest: %s", msg.offset(), exc)
            return None

    def close(self) -> None:
        self.consumer.close()
