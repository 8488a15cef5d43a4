"""Checkpoint.produce_many: every message once, in order, also when the
producer's queue is full for a while."""

from signalml.config import Settings
from stream.checkpoint import Checkpoint


class QueueFullOnce:
    """A transactional producer whose queue refuses the ``full_at``-th message once."""

    def __init__(self, full_at: int):
        self.full_at, self.calls, self.sent, self.begun = full_at, 0, [], 0

    def begin_transaction(self):
        self.begun += 1

    def produce(self, topic, value, key):
        self.calls += 1
        if self.calls == self.full_at:
            raise BufferError("Local: Queue full")
        self.sent.append((topic, key, value))

    def poll(self, timeout):
        return 0


def test_produce_many_sends_each_message_once_in_order_in_one_transaction():
    checkpoint = Checkpoint(Settings(), "e1")
    checkpoint.producer = producer = QueueFullOnce(full_at=3)
    messages = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(6)]
    checkpoint.produce_many("signals", messages)
    checkpoint.produce_many("signals", [])
    assert producer.sent == [("signals", k, v) for k, v in messages]
    assert producer.begun == 1 and checkpoint.open
