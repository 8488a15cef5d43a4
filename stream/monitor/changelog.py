"""A Faust table whose changelog writes can be awaited: the monitor
acknowledges a message only once the broker has confirmed every table
write the message caused.

Why Faust's own ordering is not enough: a table write goes into the
producer's buffer and reaches Kafka later. Faust commits the offsets of
acknowledged messages after ``producer.flush()``, but that flush is best
effort: it stops when no record has left the buffer for 0.1 s (a broker
that stalls that long), and a record already taken from the buffer but not
yet handed to the Kafka client is not waited for. A source offset can so be
committed ahead of the changelog writes it caused, and a SIGKILL then loses
those writes for good: the restarted worker recovers a table that lacks
them and never sees the input again. While messages keep arriving the same
flush rarely returns at all, so no offset is committed until the stream is
idle and a restart replays from the last idle moment.

Awaiting :meth:`ConfirmedTable.confirmed` at the end of each message
closes both: any offset Faust commits, whenever and from whichever path
(timer, rebalance, shutdown), belongs to a message whose writes are on the
broker, and the buffer is empty when a commit flushes it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import faust


class ConfirmedTable(faust.Table):
    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._unconfirmed: set[asyncio.Future] = set()

    def send_changelog(self, *args: Any, **kwargs: Any):
        future = super().send_changelog(*args, **kwargs)
        self._unconfirmed.add(future)
        future.add_done_callback(self._unconfirmed.discard)
        return future

    @property
    def unconfirmed(self) -> int:
        """Changelog writes the broker has not confirmed yet."""
        return len(self._unconfirmed)

    async def confirmed(self) -> None:
        """Return once every changelog write made so far is confirmed;
        raise what a failed write raised."""
        while self._unconfirmed:
            await asyncio.gather(*list(self._unconfirmed))
