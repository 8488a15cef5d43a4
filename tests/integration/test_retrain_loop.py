"""The closed loop against the real broker and a private Triton: a drift
event about the set in service makes ``RetrainLoop.watch`` retrain on the
recent bars of the bars topic, evaluate the candidate against the served
set on the same held-out bar times, and publish it only when it is better;
otherwise it records why.

The market is synthetic and its signal is planted
(:mod:`tests.integration.planted_world`), its sign flipping at ``FLIP``. The
set in service was trained before the flip, so on recent bars its rank IC
is negative; a candidate trained after the flip wins and is published. A
second drift event about the new set retrains on the same history: the
candidate is the same model again, it does not beat the set in service by
``retrain.min_improvement``, and the loop refuses it.
"""

from __future__ import annotations

import json

import msgspec
import pytest
from confluent_kafka import Producer

from models.publish import MANIFEST_KEY, current_manifest, publish
from signalml.contracts import DriftEvent, ModelSetManifest, encode
from signalml.services.triton import TritonServer
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import new_tag
from tests.integration.planted_world import DAY_MS, FLIP, N_BARS, START_MS, bar_times, planted_bars, planted_settings
from training import run_training
from training.retrain import RetrainLoop

pytestmark = pytest.mark.integration


def loop_settings(tmp, tag: str):
    return planted_settings(tmp, tag, retrain={
        "history_bars": N_BARS - FLIP, "evaluation_bars": 50, "min_improvement": 0.02, "cooldown_s": 0.0,
        "min_severity": "critical", "consumer_group": f"retrain-{tag}", "out_dir": str(tmp / "retrain"),
        "http_port": 0})


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    """The set in service (trained before the flip) on a private Triton, and every bar on the bars topic."""
    tmp = tmp_path_factory.mktemp("retrain")
    settings = loop_settings(tmp, new_tag())
    bars = planted_bars()
    run_training(settings, "<planted bars>", tmp / "before", progress=False, bars=bar_times(bars, 0, FLIP))
    triton = TritonServer(settings)
    triton.start()
    try:
        in_service = publish(settings, tmp / "before")
        summary = replay(settings, bars, source_file="<planted bars>")
        assert summary.published == len(bars) and not summary.rejected
        yield {"settings": settings, "in_service": in_service}
    finally:
        triton.stop()


def send_drift(settings, *events: DriftEvent) -> None:
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers, "enable.idempotence": True})
    for event in events:
        producer.produce(settings.kafka.topics.drift.name, key=event.key().encode(), value=encode(event))
    assert producer.flush(30) == 0


def ic_decay(model_set: str, severity: str = "critical", ts: int = START_MS + (N_BARS - 1) * DAY_MS) -> DriftEvent:
    return DriftEvent(ts=ts, kind="ic_decay", subject="ensemble", statistic=-0.2, threshold=0.1, severity=severity,
                      model_set=model_set, detail="rolling rank IC below training")


def champion_manifests(settings) -> list[ModelSetManifest]:
    return [msgspec.json.decode(m.value(), type=ModelSetManifest)
            for m in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.control.name)
            if m.key() == MANIFEST_KEY]


def runs(loop: RetrainLoop, outcome: str) -> float:
    return loop.metrics.registry.get_sample_value("signalml_retrain_runs_total", {"outcome": outcome}) or 0.0


def test_drift_retrains_publishes_the_better_candidate_then_refuses_one_that_is_not_better(world):
    settings, in_service = world["settings"], world["in_service"]
    loop = RetrainLoop(settings)

    # A warning is below retrain.min_severity: read and skipped. The
    # critical one about the set in service triggers the retrain.
    send_drift(settings, ic_decay(in_service.model_set, severity="warning", ts=START_MS),
               ic_decay(in_service.model_set))
    [decision] = loop.watch(idle_exit_s=10.0, max_retrains=1)
    assert decision["outcome"] == "published", decision
    assert decision["current"] == in_service.model_set
    assert decision["trigger"]["severity"] == "critical"
    # The set trained before the flip now ranks backwards; the candidate,
    # trained on the recent history, ranks the held-out bar times the right way.
    assert decision["current_rank_ic"] < -0.1 and decision["candidate_rank_ic"] > 0.1
    assert decision["evaluation_bars"] == 50 and decision["evaluation_rows"] == (50 - 5) * 40
    published = current_manifest(settings)
    assert published.model_set == decision["published"] != in_service.model_set
    assert published.previous == in_service.model_set
    assert [m.model_set for m in champion_manifests(settings)] == [in_service.model_set, published.model_set]
    assert loop.metrics.registry.get_sample_value("signalml_retrain_drift_events_total", {"action": "skipped"}) == 1
    assert runs(loop, "published") == 1

    # Drift about the new set: the same history trains the same model, which
    # does not beat the one in service by min_improvement. Refused, recorded,
    # nothing published.
    send_drift(settings, ic_decay(published.model_set))
    [refused] = loop.watch(idle_exit_s=10.0, max_retrains=1)
    assert refused["outcome"] == "refused", refused
    assert refused["current"] == published.model_set
    assert abs(refused["candidate_rank_ic"] - refused["current_rank_ic"]) < 0.02
    assert "does not beat the current set's" in refused["refusal"]
    assert "retrain.min_improvement 0.02" in refused["refusal"]
    assert current_manifest(settings).model_set == published.model_set
    assert [m.model_set for m in champion_manifests(settings)] == [in_service.model_set, published.model_set]
    assert runs(loop, "refused") == 1

    # Every decision is on record, in order, as returned.
    lines = loop.decisions_path.read_text().splitlines()
    assert [json.loads(line) for line in lines] == [json.loads(json.dumps(d, default=str))
                                                    for d in (decision, refused)]
