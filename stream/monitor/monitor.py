"""The monitor's wiring: bars and signals in, drift events out.

:class:`DriftMonitor` keeps all its state in one key-value ``store`` (a
dict in tests, a Faust table in :mod:`stream.monitor.app`), as small keys
(see :mod:`.returns`, :mod:`.clock`, :mod:`.book`) and, per role, one
commit record::

    q|ROLE -> {"released": last released bar time, "analyzer": its state}
    m|MODEL_SET -> the manifest (training ICs, reference bins)

Processing is idempotent, which is what makes at-least-once delivery
enough: a replayed bar or signal is recognised and changes nothing, and a
bar time is released once, in order. With ``auto_commit=False`` the caller
first makes sure the events of :meth:`on_bar` / :meth:`on_signal` are
delivered, then calls :meth:`commit` (the release records); a crash in
between replays the inputs, releases the same bar times again and
re-sends the same events under the same keys.
"""

from __future__ import annotations

import logging
from typing import Callable, MutableMapping

import msgspec
import numpy as np

from signalml.config import MonitorSettings
from signalml.contracts import Bar, DriftEvent, ModelSetManifest, Signal
from stream.monitor.analyzer import CrossSection, ModelSetAnalyzer
from stream.monitor.book import SignalBook
from stream.monitor.clock import BarClock
from stream.monitor.returns import ForwardReturns
from stream.roles import ROLES

log = logging.getLogger("signalml.monitor")

_manifest = msgspec.json.Decoder(ModelSetManifest)


class DriftMonitor:
    def __init__(self, cfg: MonitorSettings, store: MutableMapping, *, default_horizon_bars: int,
                 bars_partitions: int, roles: tuple[str, ...] = ROLES, auto_commit: bool = True,
                 on_release: Callable[[CrossSection, ModelSetAnalyzer, list[DriftEvent]], None] | None = None):
        self.cfg = cfg
        self.store = store
        self.roles = roles
        self.auto_commit = auto_commit
        self.on_release = on_release
        self.returns = ForwardReturns(store, cfg.history_bars)
        self.clock = BarClock(store, cfg.history_bars, bars_partitions)
        self.books = {role: SignalBook(store, role, default_horizon_bars) for role in roles}
        self.analyzers: dict[str, ModelSetAnalyzer] = {}
        self.released: dict[str, int | None] = {}
        self.unresolved: dict[str, tuple[int, set[str]]] = {}  # role -> (head bar time, symbols waiting)
        self.dirty: dict[str, list[int]] = {}  # role -> bar times released since the last commit
        self.counts = {"stale_signals": 0, "duplicate_signals": 0, "duplicate_bars": 0, "released": 0,
                       "returns_given_up": 0}
        self.loaded = False

    # ---------------------------------------------------------------- state

    def load(self) -> None:
        """Derive the in-memory indexes from the store (once, until
        :meth:`invalidate`). In the Faust app the store is a table that is
        complete only once its recovery has finished: loading earlier builds
        the indexes from a partial store (released nothing, counts that do
        not match the rows), so nothing but the inputs and the end of a
        recovery may call this."""
        if self.loaded:
            return
        self.analyzers, self.released, self.unresolved, self.dirty = {}, {}, {}, {}
        for role in self.roles:
            record = self.store.get(f"q|{role}") or {}
            self.released[role] = record.get("released")
            if record.get("analyzer"):
                self.analyzers[role] = ModelSetAnalyzer.from_state(self.cfg, record["analyzer"])
            self.books[role].load(self.released[role])
        self.loaded = True

    def invalidate(self) -> None:
        """Forget the in-memory indexes (a rebalance may recover the store
        anew); the next input or :meth:`load` rebuilds them."""
        self.loaded = False

    def commit(self) -> None:
        """Write the release records (one key per role, so each is atomic),
        then drop the released signals."""
        for role, released in self.dirty.items():
            analyzer = self.analyzers.get(role)
            self.store[f"q|{role}"] = {"released": self.released[role],
                                       "analyzer": analyzer.state() if analyzer else None}
            for ts in released:
                self.books[role].drop(ts)
        self.dirty = {}

    # ---------------------------------------------------------------- inputs

    def on_manifest(self, manifest: ModelSetManifest) -> None:
        self.store[f"m|{manifest.model_set}"] = msgspec.to_builtins(manifest)

    def manifest(self, model_set: str) -> ModelSetManifest | None:
        raw = self.store.get(f"m|{model_set}")
        return None if raw is None else msgspec.convert(raw, ModelSetManifest)

    def on_bar(self, bar: Bar, partition: int) -> list[DriftEvent]:
        self.load()
        if not self.returns.update(bar.symbol, bar.ts, bar.close):
            # A replayed bar may be one whose close was stored before a crash
            # but whose clock update or release was not: both are repeated
            # (each is idempotent), or the last bar of a stream could leave
            # its releases undone for good.
            self.counts["duplicate_bars"] += 1
        advanced = self.clock.update(bar.ts, partition)
        events = []
        for role in self.roles:
            waiting = self.unresolved.get(role)
            if waiting is not None and bar.symbol in waiting[1]:
                head = waiting[0]
                if self.returns.lookup(bar.symbol, head, self.books[role].meta(head)["horizon"]) is not None:
                    waiting[1].discard(bar.symbol)
            # No waiting set (after a load, or nothing pending): _release
            # finds out; it releases only what is ready, whoever calls it.
            if advanced or waiting is None or not waiting[1]:
                events += self._release(role)
        return self._done(events)

    def on_signal(self, signal: Signal, role: str) -> list[DriftEvent]:
        self.load()
        released = self.released.get(role)
        if released is not None and signal.ts <= released:
            self.counts["stale_signals"] += 1
            return []
        book = self.books[role]
        if not book.add(signal):
            # As for bars: the release this signal completed may not have
            # been committed before a crash, so it is tried again.
            self.counts["duplicate_signals"] += 1
        events = self._release(role) if book.counts[signal.ts] >= book.meta(signal.ts)["size"] else []
        return self._done(events)

    def _done(self, events: list[DriftEvent]) -> list[DriftEvent]:
        if self.auto_commit and self.dirty:
            self.commit()
        return events

    # ---------------------------------------------------------------- release

    def _release(self, role: str) -> list[DriftEvent]:
        """Release the role's bar times in order while the first is ready."""
        book, events = self.books[role], []
        done = set(self.dirty.get(role, ()))
        for ts in [t for t in book.pending if t not in done]:
            if not book.complete(ts):
                break
            horizon = book.meta(ts)["horizon"]
            waiting = self.unresolved.get(role)
            if waiting is None or waiting[0] != ts:
                waiting = (ts, {s for s in book.symbols.get(ts, ()) if self.returns.lookup(s, ts, horizon) is None})
                self.unresolved[role] = waiting
            if waiting[1] and self.clock.bars_after(ts) < horizon + self.cfg.grace_bars:
                break
            events += self._analyse(role, ts, horizon, given_up=len(waiting[1]))
            self.unresolved.pop(role, None)
        return events

    def _analyse(self, role: str, ts: int, horizon: int, given_up: int) -> list[DriftEvent]:
        book = self.books[role]
        meta = book.meta(ts)
        symbols, score, members = book.rows(ts)
        returns = np.array([np.nan if (r := self.returns.lookup(s, ts, horizon)) is None else r for s in symbols])
        xs = CrossSection(role, ts, meta["model_set"], horizon, symbols, score, members, returns)
        analyzer = self.analyzers.get(role)
        if analyzer is None or analyzer.model_set != xs.model_set:
            if analyzer is not None:
                log.info("%s: model set %s follows %s; its findings start afresh", role, xs.model_set, analyzer.model_set)
            analyzer = self.analyzers[role] = ModelSetAnalyzer(self.cfg, role, xs.model_set, horizon,
                                                               self.manifest(xs.model_set))
        events = analyzer.update(xs)
        self.released[role] = ts
        self.dirty.setdefault(role, []).append(ts)
        self.counts["released"] += 1
        self.counts["returns_given_up"] += given_up
        if self.on_release is not None:
            self.on_release(xs, analyzer, events)
        return events

    # ---------------------------------------------------------------- reading

    def report(self) -> dict:
        """Both roles side by side: model set, bar times, latest and rolling
        rank IC per subject, training IC, decay level. ``ready`` is False
        until the indexes were loaded (in the app: until the table's
        recovery has finished); the report does not load them itself."""
        return {
            "ready": self.loaded,
            "roles": {role: (self.analyzers[role].report() if role in self.analyzers else None) for role in self.roles},
            "pending_bar_times": {role: len(self.books[role].pending) - len(self.dirty.get(role, ()))
                                  for role in self.roles},
            "low_watermark": self.clock.low_watermark,
            "counts": dict(self.counts),
        }
