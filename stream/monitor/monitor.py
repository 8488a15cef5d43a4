"""The monitor's wiring: cross-section records in, drift events out.

:class:`DriftMonitor` keeps its state in one key-value ``store`` (a dict in
tests, a Faust table in :mod:`stream.monitor.app`), one commit record per
role and the manifests::

    q|ROLE -> {"last": bar time of the last record taken, "released": the last
               one evaluated, "analyzer": its state, "window": source offsets
               of the records whose returns have not matured}
    m|MODEL_SET -> the manifest (training ICs, reference bins)

The records themselves stay on their topic: after a restart :meth:`load`
reads the window's records back by offset (``fetch``). Processing is
idempotent, which is what makes at-least-once delivery enough: a record
whose bar time is not after the role's last one is a replay and changes
nothing, and each role's record is one key, written atomically. The caller
first makes sure the events of :meth:`on_cross_section` are delivered,
then calls :meth:`commit`; a crash in between replays the records,
evaluates the same bar times again and re-sends the same events under the
same keys.
"""

from __future__ import annotations

import logging
from typing import Callable, Iterable, MutableMapping

import msgspec
import numpy as np

from signalml.config import MonitorSettings
from signalml.contracts import CrossSectionRecord, DriftEvent, ModelSetManifest
from stream.monitor.analyzer import CrossSection, ModelSetAnalyzer
from stream.monitor.join import RecordWindow
from stream.roles import ROLES

log = logging.getLogger("signalml.monitor")

Fetch = Callable[[list[int]], dict[int, CrossSectionRecord]]


def _no_fetch(offsets: list[int]) -> dict[int, CrossSectionRecord]:
    if offsets:
        raise RuntimeError(f"records at offsets {offsets} are needed but the monitor was given no way to read them")
    return {}


class DriftMonitor:
    def __init__(self, cfg: MonitorSettings, store: MutableMapping, *, default_horizon_bars: int,
                 roles: tuple[str, ...] = ROLES, fetch: Fetch = _no_fetch,
                 on_release: Callable[[CrossSection, ModelSetAnalyzer, list[DriftEvent]], None] | None = None):
        self.cfg = cfg
        self.store = store
        self.roles = roles
        self.fetch = fetch
        self.on_release = on_release
        self.default_horizon_bars = default_horizon_bars
        self.windows: dict[str, RecordWindow] = {}
        self.analyzers: dict[str, ModelSetAnalyzer] = {}
        self.last: dict[str, int | None] = {}
        self.released: dict[str, int | None] = {}
        self.dirty: set[str] = set()
        self.counts = {"records": 0, "replayed_records": 0, "released": 0, "returns_given_up": 0}
        self.loaded = False
        self.generation = 0  # how many times the state was loaded

    # ---------------------------------------------------------------- state

    def load(self) -> None:
        """Derive the in-memory state from the store and read the pending
        records back (once, until :meth:`invalidate`). In the Faust app the
        store is a table that is complete only once its recovery has
        finished, so nothing but the inputs and the end of a recovery may
        call this."""
        if self.loaded:
            return
        self.windows, self.analyzers, self.last, self.released, self.dirty = {}, {}, {}, {}, set()
        records = {role: self.store.get(f"q|{role}") or {} for role in self.roles}
        wanted = sorted({offset for record in records.values() for offset in record.get("window", [])})
        fetched = self.fetch(wanted)
        for role, record in records.items():
            window = self.windows[role] = RecordWindow(self.default_horizon_bars)
            for offset in record.get("window", []):
                window.add(offset, fetched[offset])
            self.last[role] = record.get("last")
            self.released[role] = record.get("released")
            if record.get("analyzer"):
                self.analyzers[role] = ModelSetAnalyzer.from_state(self.cfg, record["analyzer"])
        self.loaded = True
        self.generation += 1

    def invalidate(self) -> None:
        """Forget the in-memory state (a rebalance may recover the store
        anew); the next input or :meth:`load` rebuilds it."""
        self.loaded = False

    def commit(self) -> None:
        """Write the commit record of each role that changed (one key per
        role, so each is atomic)."""
        for role in sorted(self.dirty):
            analyzer = self.analyzers.get(role)
            self.store[f"q|{role}"] = {"last": self.last[role], "released": self.released[role],
                                       "analyzer": analyzer.state() if analyzer else None,
                                       "window": self.windows[role].offsets}
        self.dirty = set()

    # ---------------------------------------------------------------- inputs

    def on_manifest(self, manifest: ModelSetManifest) -> None:
        self.store[f"m|{manifest.model_set}"] = msgspec.to_builtins(manifest)

    def manifest(self, model_set: str) -> ModelSetManifest | None:
        raw = self.store.get(f"m|{model_set}")
        return None if raw is None else msgspec.convert(raw, ModelSetManifest)

    def on_cross_section(self, record: CrossSectionRecord, offset: int) -> list[DriftEvent]:
        """Take one role's record (bar-time order per role); evaluate every
        earlier record whose returns matured with it."""
        self.load()
        role = record.role
        if role not in self.roles:
            raise ValueError(f"cross-section record of unknown role {role!r}")
        last = self.last.get(role)
        if last is not None and record.ts <= last:
            self.counts["replayed_records"] += 1
            return []
        self.counts["records"] += 1
        window = self.windows[role]
        window.add(offset, record)
        self.last[role] = record.ts
        self.dirty.add(role)
        events = []
        for matured, horizon, returns in window.matured():
            events += self._analyse(role, matured, horizon, returns)
        return events

    def on_cross_sections(self, records: Iterable[tuple[CrossSectionRecord, int]]) -> list[DriftEvent]:
        events = []
        for record, offset in records:
            events += self.on_cross_section(record, offset)
        return events

    # ---------------------------------------------------------------- release

    def _analyse(self, role: str, record: CrossSectionRecord, horizon: int, returns: np.ndarray) -> list[DriftEvent]:
        score = np.array(record.score, dtype=np.float64)
        members = {name: np.array(values, dtype=np.float64) for name, values in sorted(record.members.items())}
        scored = np.isfinite(score)
        for values in members.values():
            scored |= np.isfinite(values)
        keep = np.flatnonzero(scored)
        symbols = [record.symbols[i] for i in keep]
        returns = returns[keep]
        xs = CrossSection(role, record.ts, record.model_set, horizon, symbols, score[keep],
                          {name: values[keep] for name, values in members.items()}, returns)
        analyzer = self.analyzers.get(role)
        if analyzer is None or analyzer.model_set != xs.model_set:
            if analyzer is not None:
                log.info("%s: model set %s follows %s; its findings start afresh", role, xs.model_set, analyzer.model_set)
            analyzer = self.analyzers[role] = ModelSetAnalyzer(self.cfg, role, xs.model_set, horizon,
                                                               self.manifest(xs.model_set))
        events = analyzer.update(xs)
        self.released[role] = record.ts
        self.counts["released"] += 1
        self.counts["returns_given_up"] += int(len(returns) - np.isfinite(returns).sum())
        if self.on_release is not None:
            self.on_release(xs, analyzer, events)
        return events

    # ---------------------------------------------------------------- reading

    def report(self) -> dict:
        """Both roles side by side: model set, bar times, latest and rolling
        rank IC per subject, training IC, decay level; per role the bar time
        of the last record taken and the records waiting for their returns.
        ``ready`` is False until the state was loaded (in the app: until the
        table's recovery has finished); the report does not load it itself."""
        return {
            "ready": self.loaded,
            "roles": {role: (self.analyzers[role].report() if role in self.analyzers else None) for role in self.roles},
            "pending_bar_times": {role: len(self.windows[role]) if role in self.windows else 0 for role in self.roles},
            "last_bar_time": {role: self.last.get(role) for role in self.roles},
            "counts": dict(self.counts),
        }
