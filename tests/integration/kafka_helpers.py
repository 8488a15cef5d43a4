"""Test helpers that talk to the real broker: scratch topics."""

from __future__ import annotations

import uuid
from contextlib import contextmanager

from confluent_kafka.admin import AdminClient, NewTopic


@contextmanager
def scratch_topics(bootstrap: str, *names: str, partitions: int = 1):
    """Create uniquely named topics for one test and delete them after."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    suffix = uuid.uuid4().hex[:8]
    topics = [f"test.{name}.{suffix}" for name in names]
    for future in admin.create_topics([NewTopic(t, partitions, 1) for t in topics]).values():
        future.result(30)
    try:
        yield topics
    finally:
        for future in admin.delete_topics(topics).values():
            try:
                future.result(30)
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
