"""Forward returns that mature: the return of a symbol from its close at bar
time ``ts`` to its close ``h`` bars later, known only once that later bar
has arrived (no look-ahead: nothing is estimated before it).

Closes live in a key-value store, linked bar to bar per symbol, so each bar
is a few small writes (a Faust table sends every write to its changelog)::

    c|SYMBOL|TS -> [close, next bar time or None]
    s|SYMBOL    -> {"first": ts, "last": ts, "n": bars kept}

``h`` counts the symbol's own bars. That equals the training label (``close
[t + h] / close[t] - 1`` on the bar clock) whenever the symbol has a bar at
every bar time in between, which is what a listed stock has.
"""

from __future__ import annotations

from typing import MutableMapping


class ForwardReturns:
    """Closes of every symbol, the last ``history_bars`` of each."""

    def __init__(self, store: MutableMapping, history_bars: int):
        if history_bars < 2:
            raise ValueError(f"history_bars must be >= 2, got {history_bars}")
        self.store = store
        self.history_bars = history_bars

    def update(self, symbol: str, ts: int, close: float) -> bool:
        """Add the bar; False (and nothing changes) when its time is not
        after the symbol's last bar: a duplicate or a replayed message."""
        meta = self.store.get(f"s|{symbol}")
        if meta is not None and ts <= meta["last"]:
            return False
        # Writes in this order, the meta last: a crash part-way leaves
        # writes that the replayed bar repeats identically.
        self.store[f"c|{symbol}|{ts}"] = [close, None]
        if meta is None:
            self.store[f"s|{symbol}"] = {"first": ts, "last": ts, "n": 1}
            return True
        last_key = f"c|{symbol}|{meta['last']}"
        previous = self.store.get(last_key)
        if previous is not None:
            self.store[last_key] = [previous[0], ts]
        first, n, dropped = meta["first"], meta["n"] + 1, None
        if n > self.history_bars:
            oldest = self.store.get(f"c|{symbol}|{first}")
            dropped, first, n = first, (oldest[1] if oldest else ts), n - 1
        self.store[f"s|{symbol}"] = {"first": first, "last": ts, "n": n}
        if dropped is not None:
            self.store.pop(f"c|{symbol}|{dropped}", None)
        return True

    def lookup(self, symbol: str, ts: int, horizon_bars: int) -> float | None:
        """The return from the symbol's close at ``ts`` to its close
        ``horizon_bars`` bars later; None until that bar has arrived (or
        when the bar at ``ts`` is not, or no longer, kept)."""
        node = self.store.get(f"c|{symbol}|{ts}")
        if node is None:
            return None
        start = node[0]
        for _ in range(horizon_bars):
            if node[1] is None:
                return None
            node = self.store.get(f"c|{symbol}|{node[1]}")
            if node is None:
                return None
        return node[0] / start - 1.0

    def symbols(self) -> list[str]:
        return sorted(key[2:] for key in list(self.store.keys()) if key.startswith("s|"))
