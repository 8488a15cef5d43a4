"""``signalml monitor`` (the Faust worker) against the real broker, on
cross-section records as the engine publishes them: a planted signal that
flips yields ic_decay events on the drift topic, and a worker
killed mid-stream and restarted publishes exactly the uninterrupted run's
events."""

from __future__ import annotations

import time
import urllib.request

import msgspec
import pytest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.parser import text_string_to_metric_families
from confluent_kafka import Consumer, Producer, TopicPartition

from signalml.config import load_settings
from signalml.contracts import DriftEvent, encode
from signalml.services.process import free_port
from stream.roles import CHAMPION_KEY
from stream.topic_reader import read_topic
from tests.integration.engine_world import REPO, delete_created_topics, delete_tagged, new_tag, provision
from tests.integration.monitor_process import start_monitor, stop, wait_for, wait_for_line
from tests.unit.monitor.synthetic import manifest, market, records

pytestmark = pytest.mark.integration

FLIP = 150


def monitor_settings(tmp, tag: str, run: str, own_records: bool = False):
    topics = {key: {"name": f"{base}.{tag}"} for key, base in (
        ("cross_sections", "cross.sections"), ("control", "control"))}
    topics["drift"] = {"name": f"drift.{tag}.{run}"}
    if own_records:
        topics["cross_sections"] = {"name": f"cross.sections.{tag}.{run}"}
    settings = load_settings(REPO / "signalml.yaml", overrides={
        "paths": {"state_dir": str(tmp / run)},
        "kafka": {"topics": topics},
        # A killed worker's partitions go to its successor after this long.
        "monitor": {"app_id": f"monitor-{tag}-{run}", "http_port": free_port(), "session_timeout_s": 8.0},
    })
    provision(settings)  # deleted with the world's tag
    return settings


def wait_released(settings, process, released: int, log, timeout_s: float = 240.0) -> dict:
    """Until this process released ``released`` cross-sections."""
    return wait_for(settings, process, lambda r: r["counts"]["released"] >= released, log,
                    f"{released} releases", timeout_s)


def all_evaluated(released: int):
    """The champion's analyzer (restored with the table) has seen every cross-section."""
    return lambda r: r["roles"]["champion"] is not None and r["roles"]["champion"]["bar_times"] >= released


def drift_events(settings) -> dict[str, DriftEvent]:
    """The drift topic by key; a key sent twice must carry the same event."""
    out = {}
    for message in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.drift.name):
        event = msgspec.json.decode(message.value(), type=DriftEvent)
        assert message.key().decode() == event.key()
        assert out.get(event.key(), event) == event
        out[event.key()] = event
    return out


def commit_offset(settings, topic: str, offset: int) -> None:
    """Commit ``offset`` of ``topic`` for the monitor's consumer group (which has no member now)."""
    consumer = Consumer({"bootstrap.servers": settings.kafka.bootstrap_servers, "group.id": settings.monitor.app_id,
                         "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
    finally:
        consumer.close()


def publish(settings, values, manifest_too: bool = False) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    if manifest_too:
        producer.produce(settings.kafka.topics.control.name, key=CHAMPION_KEY, value=encode(manifest()))
    for record in values:
        producer.produce(settings.kafka.topics.cross_sections.name, key=b"champion", value=encode(record))
        producer.poll(0)
    producer.flush(60)


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    """The cross-section records of a planted signal that flips at bar time 150, on their topic."""
    tmp = tmp_path_factory.mktemp("monitor")
    tag = new_tag()
    settings = monitor_settings(tmp, tag, "setup")
    messages = market(n_symbols=30, n_bars=260, flip_at=FLIP, seed=5, partitions=4)
    publish(settings, records(messages), manifest_too=True)
    yield {"tmp": tmp, "tag": tag, "released": 260 - 5, "messages": messages}
    delete_created_topics(tag)
    delete_tagged(settings.kafka.bootstrap_servers, tag)  # the workers' Faust topics and groups


def published_events(text: str) -> float:
    families = {family.name: family for family in text_string_to_metric_families(text)}
    family = families.get("signalml_monitor_drift_events")
    return sum(s.value for s in family.samples if s.name.endswith("_total")) if family else 0.0


def delivered_metrics(settings, timeout_s: float = 30.0) -> tuple[str, str]:
    """The monitor's /metrics once the events on the drift topic are all
    counted. A release is counted when the cross-section is evaluated, its
    events when the broker confirms them, a moment later: the page read at
    the last release can miss the last batch's events. A count that never
    catches up is returned as it is, for the test to report."""
    deadline = time.monotonic() + timeout_s
    while True:
        with urllib.request.urlopen(f"http://127.0.0.1:{settings.monitor.http_port}/metrics", timeout=5) as answer:
            page = (answer.headers["Content-Type"], answer.read().decode())
        if published_events(page[1]) == len(drift_events(settings)) or time.monotonic() > deadline:
            return page
        time.sleep(0.5)


@pytest.fixture(scope="module")
def uninterrupted(world):
    settings = monitor_settings(world["tmp"], world["tag"], "ref")
    log = world["tmp"] / "ref.log"
    process = start_monitor(settings, log)
    try:
        started = time.monotonic()
        report = wait_released(settings, process, world["released"], log)
        elapsed = time.monotonic() - started
        metrics = delivered_metrics(settings)
    finally:
        stop(process)
    return {"events": drift_events(settings), "report": report, "elapsed_s": elapsed, "metrics": metrics}


def test_the_flip_yields_ic_decay_on_the_drift_topic_and_the_status_shows_the_ic(world, uninterrupted):
    events = uninterrupted["events"]
    decay = sorted((e for e in events.values() if e.kind == "ic_decay" and e.subject == "ensemble"), key=lambda e: e.ts)
    from tests.unit.monitor.synthetic import DAY_MS, START_MS

    assert decay, events
    assert FLIP <= (decay[0].ts - START_MS) // DAY_MS < FLIP + 15
    assert all((e.ts - START_MS) // DAY_MS >= FLIP for e in events.values()), "an alarm before the flip"
    report = uninterrupted["report"]["roles"]["champion"]
    assert report["model_set"] == manifest().model_set
    assert report["training_rank_ic"]["ensemble"] == pytest.approx(0.3)


def test_a_worker_killed_mid_stream_and_restarted_publishes_the_same_events(world, uninterrupted):
    # Its own records topic, filled in two parts: the kill lands while the
    # worker takes the second (a worker reads the whole stream in seconds).
    settings = monitor_settings(world["tmp"], world["tag"], "crash", own_records=True)
    values = records(world["messages"])
    publish(settings, values[:150])
    log = world["tmp"] / "crash.log"
    first = start_monitor(settings, log)
    wait_released(settings, first, 150 - 5, log)
    publish(settings, values[150:])
    first.kill()  # SIGKILL: no clean shutdown, no final commit, changelog writes in flight lost
    first.wait()
    killed_at = 150 - 5
    second = start_monitor(settings, log)
    try:
        report = wait_for(settings, second, all_evaluated(world["released"]), log, "the rest of the stream")
    finally:
        stop(second)
    # It resumed from the recovered table (re-doing none of the first part's
    # releases, and at most what the killed worker took of the second), and
    # published exactly the events of the uninterrupted run: none lost, none
    # different.
    assert report["counts"]["released"] <= world["released"] - killed_at
    assert report["roles"]["champion"]["bar_times"] == world["released"]
    assert drift_events(settings) == uninterrupted["events"]


def test_workers_killed_at_every_stage_and_restarted_publish_the_same_events(world, uninterrupted):
    """SIGKILL once ready (its first batch at most begun), while it takes
    the second part of the stream, while its successor recovers the table,
    and after the last record: each successor resumes, and the last one
    holds every cross-section and published exactly the uninterrupted run's
    events."""
    settings = monitor_settings(world["tmp"], world["tag"], "stages", own_records=True)
    values, released = records(world["messages"]), world["released"]
    log = world["tmp"] / "stages.log"

    def kill(process) -> None:
        process.kill()
        process.wait()

    publish(settings, values[:150])
    worker = start_monitor(settings, log)
    wait_for_line(worker, log, "Worker ready")
    kill(worker)
    worker = start_monitor(settings, log)
    wait_for(settings, worker, all_evaluated(150 - 5), log, "the first part")
    publish(settings, values[150:])
    kill(worker)
    worker = start_monitor(settings, log)
    wait_for_line(worker, log, "Restoring state from changelog topics")
    kill(worker)
    worker = start_monitor(settings, log)
    wait_for(settings, worker, all_evaluated(released), log, "the rest of the stream")
    kill(worker)
    worker = start_monitor(settings, log)
    try:
        report = wait_for(settings, worker, all_evaluated(released), log, "a restart after the last record")
    finally:
        stop(worker)
    assert report["roles"]["champion"]["bar_times"] == released
    assert drift_events(settings) == uninterrupted["events"]


def test_a_worker_whose_predecessor_acknowledged_records_it_had_not_processed_evaluates_them(world, uninterrupted):
    # A worker that set records aside (delivered during a recovery, or in a
    # batch a rebalance interrupted) acknowledges them, and a kill before it
    # reads them again leaves its group's committed offset past the
    # positions in its table. Its successor's consumer then delivers nothing:
    # no record reveals the gap, only the broker's end of the partition does.
    settings = monitor_settings(world["tmp"], world["tag"], "acked", own_records=True)
    values = records(world["messages"])
    publish(settings, values[:150])
    log = world["tmp"] / "acked.log"
    first = start_monitor(settings, log)
    wait_released(settings, first, 150 - 5, log)
    stop(first)
    publish(settings, values[150:])
    commit_offset(settings, settings.kafka.topics.cross_sections.name, len(values))
    second = start_monitor(settings, log)
    try:
        report = wait_for(settings, second, all_evaluated(world["released"]), log, "the acknowledged records", 90.0)
    finally:
        stop(second)
    assert report["counts"]["released"] == world["released"] - (150 - 5)
    assert drift_events(settings) == uninterrupted["events"]


def test_the_metrics_page_serves_the_rolling_ic_and_the_drift_events_to_prometheus(uninterrupted):
    content_type, text = uninterrupted["metrics"]
    families = {family.name: family for family in text_string_to_metric_families(text)}
    assert content_type == CONTENT_TYPE_LATEST
    rolling = {s.labels["member"]: s.value for s in families["signalml_monitor_rank_ic"].samples}
    assert rolling["ensemble"] == pytest.approx(uninterrupted["report"]["roles"]["champion"]["rolling_rank_ic"]["ensemble"])
    assert published_events(text) == len(uninterrupted["events"])


def test_the_rolling_rank_ic_equals_scipys_on_the_bars_and_signals(world, uninterrupted):
    """An independent computation from the definition: each symbol's return
    from its close at t to its close h bars later, Spearman's rho of score
    and return per bar time (scipy), the mean of the last ic_window_bars."""
    import pandas as pd
    from scipy.stats import spearmanr

    cfg = load_settings(REPO / "signalml.yaml").monitor
    horizon = manifest().horizon_bars
    bars = pd.DataFrame([(m.value.symbol, m.value.ts, m.value.close) for m in world["messages"] if m.kind == "bar"],
                        columns=["symbol", "ts", "close"]).sort_values(["symbol", "ts"])
    bars["forward"] = bars.groupby("symbol")["close"].shift(-horizon) / bars["close"] - 1.0
    signals = pd.DataFrame([{"symbol": m.value.symbol, "ts": m.value.ts, "ensemble": m.value.score, **m.value.members}
                            for m in world["messages"] if m.kind == "signal"])
    joined = signals.merge(bars, on=["symbol", "ts"]).dropna(subset=["forward"])
    report = uninterrupted["report"]["roles"]["champion"]
    for subject in ("ensemble", "lgbm", "xgb"):
        daily = [spearmanr(group[subject], group["forward"]).statistic
                 for _, group in sorted(joined.groupby("ts")) if len(group) >= cfg.min_names]
        assert len(daily) == world["released"]
        assert report["rolling_rank_ic"][subject] == pytest.approx(sum(daily[-cfg.ic_window_bars:]) / cfg.ic_window_bars,
                                                                   abs=1e-12), subject
