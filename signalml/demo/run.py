"""``signalml demo``: the whole flow on the bundled data, in one command.

1. bring the embedded stack up (a service already serving is used as it is);
2. cut the bundled bars into history and a held-back tail (:mod:`.plan`),
   train a model set on the history with a small configuration, write its
   report;
3. publish it to Triton and the control topic;
4. start the engine (``signalml serve``) and the drift monitor (``signalml
   monitor``) as child processes, with names of their own for this run
   (:mod:`.world`);
5. replay the warm-up bars as fast as possible, then the tail at ``speed``
   bar times per second, and show what comes out (:mod:`.feed`, :mod:`.view`);
6. stop the engine and the monitor, forget their per-run state and, with
   ``stop``, the services this run started.
"""

from __future__ import annotations

import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from models.publish import publish
from signalml.config import Settings
from signalml.contracts import ModelSetManifest
from signalml.demo.feed import DemoFeed, get_json
from signalml.demo.plan import FULL, QUICK, DemoData, select_bars, split_tail, training_settings
from signalml.demo.view import Display
from signalml.demo.world import Child, RunIds, bring_up, forget_run, say, start_group_at_end, stop_services
from signalml.errors import ConfigError, ServiceError
from signalml.jsonio import write_json
from signalml.services.process import require_free_ports, wait_until
from stream.bars_file import read_bars
from stream.replay import ReplaySummary, replay
from stream.roles import signals_topic
from training import run_training

SUMMARY_FILE = "demo.json"


@dataclass(frozen=True)
class DemoOptions:
    speed: float = 4.0  # tail bar times per second
    tail_days: int | None = None  # None: the size's (120; 30 with quick)
    out: Path = Path("artifacts/demo")
    quick: bool = False
    live: bool = True  # the rich view; plain lines otherwise
    stop: bool = False  # at the end, stop the services this run started
    config: str | None = None  # the configuration file, passed on to the engine and the monitor


def run_demo(settings: Settings, options: DemoOptions) -> dict:
    """Run the demo; returns the summary (also written to ``out/demo.json``)."""
    started_at = time.monotonic()
    size = QUICK if options.quick else FULL
    serving, monitor = settings.serving, settings.monitor
    require_free_ports("engine", serving.http_host, {"serving.http_port": serving.http_port})
    require_free_ports("monitor", monitor.http_host, {"monitor.http_port": monitor.http_port})
    data_path = settings.path(settings.paths.data)
    data = split_tail(select_bars(read_bars(data_path), size), options.tail_days or size.tail_days,
                      settings.serving.warmup_bars)
    out = prepare_out(settings.path(str(options.out)))
    started = bring_up(settings)
    try:
        say(f"data: {data.history['symbol'].nunique()} symbols; training on {span(data.history)}; "
            f"held back: {span(data.tail)}")
        t0 = time.monotonic()
        metrics = run_training(training_settings(settings, size), data_path, out, bars=data.history,
                               progress=options.live)
        say(f"train: {time.monotonic() - t0:.0f} s. {metrics['summary']}")
        say(f"report: {out / 'report.html'}")
        manifest = publish(settings, out)
        say(f"publish: model set {manifest.model_set} ({members(manifest)}) serves in Triton")
        summary = serve_and_replay(settings, options, data, manifest, out)
    except BaseException:
        if options.stop:
            stop_services(settings, started)
        raise
    summary.update(
        out=str(out), report=str(out / "report.html"), training_summary=metrics["summary"],
        training_dates=[metrics["dataset"]["first_date"], metrics["dataset"]["last_date"]],
        members={m.name: m.version for m in manifest.members}, stack_started=started,
        stack_stopped=stop_services(settings, started) if options.stop else [],
        elapsed_s=round(time.monotonic() - started_at, 1),
    )
    write_json(out / SUMMARY_FILE, summary)
    return summary


def prepare_out(out: Path) -> Path:
    """An empty output folder; a previous demo's is replaced, anything else refused."""
    if out.exists() and any(out.iterdir()):
        if not (out / SUMMARY_FILE).exists() and not (out / "model_set").exists():
            raise ConfigError(f"demo: --out {out} holds files that are not a demo's output; choose another folder")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def span(frame) -> str:
    dates = frame["date"]
    return f"{dates.min():%Y-%m-%d} → {dates.max():%Y-%m-%d} ({frame['ts'].nunique()} bar times)"


def members(manifest: ModelSetManifest) -> str:
    return ", ".join(f"{m.name} v{m.version}" for m in manifest.members)


# ---------------------------------------------------------------- serving the tail


def serve_and_replay(settings: Settings, options: DemoOptions, data: DemoData, manifest: ModelSetManifest,
                     out: Path) -> dict:
    """Engine and monitor up, warm-up and tail replayed and watched, both stopped.

    The monitor starts after the warm-up, at the end of the cross-sections
    topic: the returns of the tail's cross-sections need the tail's closes
    only."""
    ids, topics, bootstrap = RunIds.new(), settings.kafka.topics, settings.kafka.bootstrap_servers
    start_group_at_end(bootstrap, ids.consumer_group, [topics.bars.name])
    feed = DemoFeed(settings, manifest.model_set)
    engine = Child(["serve"], {"SIGNALML__SERVING__ENGINE_ID": ids.engine_id,
                               "SIGNALML__SERVING__CONSUMER_GROUP": ids.consumer_group},
                   out / "logs" / "engine.log", options.config)
    children = [engine]
    try:
        say(f"engine: pid {engine.pid}, engine id {ids.engine_id}, {feed.engine_url}/metrics, log {engine.log}")
        wait_engine(feed, engine, manifest.model_set)
        warm_up(settings, data, feed, engine)
        start_group_at_end(bootstrap, ids.monitor_app, [topics.cross_sections.name])
        drift_monitor = Child(["monitor", "--loglevel", "warn"], {"SIGNALML__MONITOR__APP_ID": ids.monitor_app},
                              out / "logs" / "monitor.log", options.config)
        children.append(drift_monitor)
        say(f"monitor: pid {drift_monitor.pid}, app id {ids.monitor_app}, {feed.monitor_url}/status, "
            f"log {drift_monitor.log}")
        wait_until(lambda: get_json(f"{feed.monitor_url}/health") is not None, timeout_s=120, what="monitor",
                   alive=drift_monitor.alive, log_path=drift_monitor.log)
        horizon_bars = manifest.horizon_bars or settings.training.label_horizon_bars
        replayed = watch_tail(settings, options, data, feed, horizon_bars, children)
    finally:
        for child in children:
            child.stop()
        feed.close()
        forget_run(settings, ids)
    tail_times = set(data.tail_times)
    return {
        "model_set": manifest.model_set,
        "engine_id": ids.engine_id,
        "tail": {"first": f"{data.tail['date'].min():%Y-%m-%d}", "last": f"{data.tail['date'].max():%Y-%m-%d}",
                 "bar_times": len(tail_times), "bars": replayed.published,
                 "rejected": sum(replayed.rejected.values()), "speed": options.speed},
        "signals": feed.signals,
        "complete_cross_sections": len(feed.complete_times & tail_times),
        "tail_bars_per_s": round(feed.tail_bars_per_s or 0.0, 1),
        "latency_s": {"p50_at_most": feed.latency.p50_s, "p99_at_most": feed.latency.p99_s,
                      "commits": feed.latency.count},
        "monitor": {"evaluated": feed.monitor_released, "matured": feed.monitor_matured,
                    "not_evaluated": max(0, feed.monitor_matured - feed.monitor_released),
                    "why_not": feed.monitor_behind_why, "rolling_rank_ic": feed.rolling_ic(),
                    "training_rank_ic": feed.training_ic()},
        "drift_events": feed.drift_counts(),
        "logs": [str(child.log) for child in children],
    }


def wait_engine(feed: DemoFeed, engine: Child, model_set: str) -> None:
    """Until the engine serves ``model_set`` (it reads the control topic at start)."""
    ready = f"{feed.engine_url}/ready"
    wait_until(lambda: (get_json(ready) or {}).get("ready") is True, timeout_s=180, what="engine",
               alive=engine.alive, log_path=engine.log, interval_s=0.25)
    serving = get_json(ready)["model_set"]
    if serving != model_set:
        raise ServiceError(f"demo: the engine serves model set {serving}, not {model_set}: "
                           "another one was published meanwhile")


def warm_up(settings: Settings, data: DemoData, feed: DemoFeed, engine: Child) -> None:
    """The bar times before the tail, as fast as possible; returns once the
    engine has closed the last of them, so the tail meets a caught-up engine."""
    t0 = time.monotonic()
    summary = replay(settings, data.warmup, source_file=settings.path(settings.paths.data))
    last = int(data.warmup["ts"].max())
    wait_until(lambda: ((get_json(f"{feed.engine_url}/ready") or {}).get("last_bar_time_ms") or 0) >= last,
               timeout_s=180, what="engine warm-up", alive=engine.alive, log_path=engine.log, interval_s=0.25)
    say(f"warm-up: {summary.bar_times} bar times ({summary.published:,} bars) replayed and read by the engine "
        f"in {time.monotonic() - t0:.1f} s")


def watch_tail(settings: Settings, options: DemoOptions, data: DemoData, feed: DemoFeed, horizon_bars: int,
               children: list[Child]) -> ReplaySummary:
    """Replay the tail in a thread and show the feed until every tail bar
    time is scored and the monitor has evaluated those whose returns have
    matured. A monitor that stops moving for ``settle_s``, or is still
    behind ``deadline_s`` after the replay, is not waited for further: how
    many it did not evaluate, and why, go into the summary and are said."""
    outcome: dict = {}

    def run_replay() -> None:
        try:
            outcome["summary"] = replay(settings, data.tail, source_file=settings.path(settings.paths.data),
                                        speed=options.speed)
        except BaseException as exc:  # noqa: BLE001 - raised again in the watching thread
            outcome["error"] = exc

    tail_times = set(data.tail_times)
    n_tail, n_evaluable = len(tail_times), max(0, len(tail_times) - horizon_bars)
    settle_s, deadline_s = 30.0, 180.0
    feed.monitor_matured = n_evaluable
    say(f"tail: {n_tail} bar times at {options.speed:g} per second")
    title = f"SignalML demo · {feed.model_set} · tail {span(data.tail)} at {options.speed:g}/s"
    thread = threading.Thread(target=run_replay, name="demo-replay", daemon=True)
    feed.start_tail()
    thread.start()
    moved_at, last_seen, replayed_at = time.monotonic(), None, None
    with Display(feed, title, options.live) as show:
        while True:
            feed.poll()
            scored = len(feed.complete_times & tail_times)
            if scored < n_tail:
                show(f"tail: {scored}/{n_tail} bar times scored" + (" (all replayed)" if replayed_at else ""))
            else:
                show(f"tail scored; monitor evaluated {feed.monitor_released}/{n_evaluable}")
            if "error" in outcome:
                raise outcome["error"]
            for child in children:
                if not child.alive():
                    raise ServiceError(f"demo: the {child.name} process exited; see {child.log}")
            now = time.monotonic()
            if (scored, feed.monitor_released) != last_seen:
                moved_at, last_seen = now, (scored, feed.monitor_released)
            if replayed_at is None and not thread.is_alive():
                replayed_at = now
            if replayed_at is not None:
                late = now - replayed_at > deadline_s
                if scored == n_tail and feed.monitor_released >= n_evaluable:
                    break
                if scored == n_tail and (now - moved_at > settle_s or late):
                    behind = n_evaluable - feed.monitor_released
                    feed.monitor_behind_why = (
                        f"the monitor evaluated nothing for {settle_s:.0f} s" if now - moved_at > settle_s else
                        f"the monitor was still behind {deadline_s:.0f} s after the replay ended") + \
                        f"; see {children[-1].log}"
                    say(f"monitor: {behind} of {n_evaluable} matured cross-sections NOT evaluated: "
                        f"{feed.monitor_behind_why}")
                    break
                if late:
                    raise ServiceError(f"demo: {scored} of {n_tail} tail bar times scored {deadline_s:.0f} s after "
                                       f"the replay ended; see {children[0].log}")
            time.sleep(0.25)
    return outcome["summary"]
