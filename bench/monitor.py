"""``signalml bench monitor``: the drift monitor against the engine, on the
same bars, in the same run, in a private world (see :mod:`bench.e2e`).

* **throughput**, at 500 and 5,000 symbols: synthetic bars replayed into a
  fresh bars topic; :class:`~stream.engine.Engine` runs over the backlog
  (bars/s timed inside the engine, as ``bench e2e`` does), publishing one
  cross-section record per bar time; then ``signalml monitor`` (a real
  Faust worker, its own process) runs over those records as a backlog.
  Its rate in bars/s equivalent = bars of the records it took / (its last
  batch done − its first batch started), read from its ``/status``;
* **live lag**: a fresh topic set, the engine and the monitor both running
  in their own processes, the warm-up replayed fast, then one bar time
  every ``1 / live_bar_times_per_s`` seconds. Per live bar time: the time
  from the engine having closed it (its ``/health``) to the monitor having
  taken its record (its ``/status``), both polled every ~10 ms, times the
  live rate: the lag in bar times; p50 and max.

The last line printed (``--json``) is one JSON object.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
from confluent_kafka import Producer

from signalml.config import Settings
from signalml.services.process import free_port
from bench.e2e import EngineProcess, _fresh, _throughput, _with, private_world, synthetic_bars
from stream.replay import encode_bars, producer_config, replay

REPO = Path(__file__).resolve().parents[1]


class MonitorProcess:
    """``signalml monitor`` on ``settings``, watched through ``/status``."""

    def __init__(self, settings: Settings, tag: str, created: list[str]):
        app_id = f"bench-monitor-{tag}"
        self.settings = _with(settings, {"monitor": {"app_id": app_id, "http_port": free_port()}})
        created += [f"{app_id}-state-changelog", f"{app_id}-__assignor-__leader"]  # Faust's own topics
        folder = settings.state_dir / "bench-monitor"
        folder.mkdir(parents=True, exist_ok=True)
        self.log = folder / f"{tag}.log"
        env = {**_environment(self.settings)}
        self.process = subprocess.Popen([sys.executable, "-m", "signalml.cli", "monitor", "--loglevel", "warn"],
                                        cwd=REPO, env=env, stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)
        self.url = f"http://{self.settings.monitor.http_host}:{self.settings.monitor.http_port}/status"

    def status(self) -> dict | None:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as answer:
                return json.load(answer)
        except OSError:
            return None

    def wait(self, done, what: str, timeout_s: float) -> dict:
        deadline = time.monotonic() + timeout_s
        report = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the monitor exited ({self.process.returncode}): {self.log.read_text()[-2000:]}")
            report = self.status()
            if report and report["ready"] and done(report):
                return report
            time.sleep(0.05)
        raise TimeoutError(f"monitor: no {what} in {timeout_s:.0f} s ({report}): {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _environment(settings: Settings) -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.update({
        "SIGNALML__PATHS__STATE_DIR": str(settings.paths.state_dir),
        "SIGNALML__MONITOR__APP_ID": settings.monitor.app_id,
        "SIGNALML__MONITOR__HTTP_PORT": str(settings.monitor.http_port),
    })
    for key, topic in settings.kafka.topics.all().items():
        env[f"SIGNALML__KAFKA__TOPICS__{key.upper()}__NAME"] = topic.name
    return env


def _monitor_throughput(settings: Settings, tag: str, n_symbols: int, n_records: int, last_ts: int,
                        created: list[str]) -> dict:
    monitor = MonitorProcess(settings, tag, created)
    try:
        # The state says so only once the batch that took the last record
        # was committed to the table.
        report = monitor.wait(lambda r: (r["last_bar_time"]["champion"] or 0) >= last_ts and r["batches"] > 0,
                              f"{n_records} records", 600)
    finally:
        monitor.stop()
    span = report["span_s"]
    return {"records": n_records, "evaluated": report["counts"]["released"], "batches": report["batches"],
            "span_s": span, "busy_s": report["busy_s"],
            "bars_per_s": round(n_records * n_symbols / span, 1) if span else None}


def _live_lag(world: Settings, world_tag: str, frame: pd.DataFrame, tag: str, created: list[str],
              bar_times_per_s: float) -> dict:
    settings = _fresh(world, tag, created)
    warmup = settings.serving.warmup_bars
    times = [int(t) for t in np.unique(frame["ts"].to_numpy())]
    warm = frame[frame["ts"].isin(times[:warmup])]
    live = frame[~frame["ts"].isin(times[:warmup])]
    engine = EngineProcess(settings)
    monitor = None
    producer = Producer(producer_config(settings))
    closed_at: dict[int, float] = {}  # bar time -> first seen closed by the engine
    taken_at: dict[int, float] = {}  # bar time -> first seen taken by the monitor

    def sample() -> None:
        now = time.perf_counter()
        engine_ts = json.loads(engine._get("/health")).get("last_bar_time_ms") or 0
        monitor_ts = ((monitor.status() or {}).get("last_bar_time") or {}).get("champion") or 0
        for ts in times[warmup:]:
            if ts <= engine_ts:
                closed_at.setdefault(ts, now)
            if ts <= monitor_ts:
                taken_at.setdefault(ts, now)

    try:
        engine.wait(lambda h: h["ready"], "a ready model set", 180)
        monitor = MonitorProcess(settings, f"{world_tag}-{tag}", created)
        monitor.wait(lambda r: True, "start", 180)
        replay(settings, warm, source_file="synthetic")
        last_warm = times[warmup - 1]
        engine.wait(lambda h: h["last_bar_time_ms"] == last_warm, "the warm-up bar times", 180)
        monitor.wait(lambda r: (r["last_bar_time"]["champion"] or 0) >= last_warm, "the warm-up records", 180)
        interval_s = 1.0 / bar_times_per_s
        next_due = time.perf_counter()
        for _, group in live.groupby("ts", sort=True):
            for key, payload in zip(group["symbol"].tolist(), encode_bars(group)):
                while True:
                    try:
                        producer.produce(settings.kafka.topics.bars.name, payload, key.encode())
                        break
                    except BufferError:
                        producer.poll(0.01)
            producer.flush(30)
            next_due += interval_s
            while time.perf_counter() < next_due:
                sample()
                time.sleep(0.01)
        deadline = time.perf_counter() + 120
        while len(taken_at) < len(times) - warmup and time.perf_counter() < deadline:
            sample()
            time.sleep(0.01)
    finally:
        if monitor is not None:
            monitor.stop()
        engine.stop()
    # How long after the engine closed a bar time the monitor had taken its
    # record, in bar times at the live rate (sampled every ~10 ms, so a
    # figure is good to about 0.05 bar times at 4 bar times/s).
    lags = [(taken_at[ts] - closed_at[ts]) * bar_times_per_s for ts in times[warmup:]
            if ts in taken_at and ts in closed_at]
    return {"bar_times_per_s": bar_times_per_s, "live_bar_times": len(times) - warmup, "measured": len(lags),
            "p50": round(float(np.percentile(lags, 50)), 3) if lags else None,
            "max": round(max(lags), 3) if lags else None}


def run(settings: Settings, *, symbols: tuple[int, ...] = (500, 5000), warmup_bars: int = 25,
        scored_bar_times: int = 150, scored_bar_times_large: int = 40, live_bar_times: int = 40,
        live_bar_times_per_s: float = 4.0, live_symbols: int = 500, quick: bool = False) -> dict:
    if quick:
        symbols, scored_bar_times, scored_bar_times_large, live_bar_times, live_symbols = (40,), 10, 10, 10, 40
    result: dict = {"monitor_bars_per_s": {}, "engine_bars_per_s": {}, "monitor_vs_engine": {}, "throughput": {}}
    with private_world(settings, warmup_bars=warmup_bars, prefix="signalml-bench-monitor-") as pw:
        world, created = pw.settings, pw.created
        result["model_set"] = pw.manifest.model_set
        for n in symbols:
            scored = scored_bar_times if n <= 1000 else scored_bar_times_large
            frame = synthetic_bars(n, warmup_bars + scored, seed=n)
            tag = f"mtp{n}"
            engine = _throughput(world, frame, tag, created)
            fresh = _fresh(world, tag, [])  # the same names _throughput used
            monitor = _monitor_throughput(fresh, f"{pw.tag}-{tag}", n, warmup_bars + scored, int(frame["ts"].max()),
                                          created)
            key = f"xs_{n}"
            result["throughput"][key] = {"engine": engine, "monitor": monitor}
            result["engine_bars_per_s"][key] = engine["bars_per_s"]
            result["monitor_bars_per_s"][key] = monitor["bars_per_s"]
            result["monitor_vs_engine"][key] = (round(monitor["bars_per_s"] / engine["bars_per_s"], 2)
                                                if monitor["bars_per_s"] else None)
        frame = synthetic_bars(live_symbols, warmup_bars + live_bar_times, seed=20_000 + live_symbols)
        live = _live_lag(world, pw.tag, frame, "mlive", created, live_bar_times_per_s)
        result["live"] = {**live, "symbols": live_symbols}
        result["live_lag_bar_times"] = {"p50": live["p50"], "max": live["max"]}
        result["notes"] = (
            f"private world (topics *.{pw.tag}, own Triton). Engine: bars / (last commit - first consumed bar) "
            "inside the engine over a backlog, one record per bar time published with the signals. Monitor: "
            "a `signalml monitor` process over those records as a backlog; bars equivalent = records x symbols, "
            "over its first batch started -> last batch done (from /status). Live: engine and monitor in their "
            f"own processes, {live_bar_times_per_s:g} bar times/s of {live_symbols} symbols after a fast warm-up; "
            "lag = (monitor took the record - engine closed the bar time) x the live rate, polled every ~10 ms. Shared "
            "cores: Kafka, Triton, engine, monitor and the bench run on the same machine."
        )
    return result
