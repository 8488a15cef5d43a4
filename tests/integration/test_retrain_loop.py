"""The closed loop against the real broker and a private Triton: a drift
event about the set in service, a schedule, or a command makes the loop
retrain on the bars topic's history, judge the candidate on its walk-
forward's out-of-sample scores of the last held-out bar times against the
served set on the same rows (a paired test where both are out of sample),
and publish it only when the gate passes; otherwise it records why.

The market is synthetic and its signal is planted
(:mod:`tests.integration.planted_world`), its sign flipping at ``FLIP``. The
set in service was trained before the flip, so on recent bars its rank IC
is negative; a candidate trained after the flip wins. A loop that demands
an impossible paired t-statistic refuses that same candidate, reading the
served set's scores through Triton. Once the new set serves, a scheduled
retrain (``--every``, through the CLI) judges its successor alone: the set
in service was fit on every held-out bar, so there is nothing fair to
compare it with.
"""

from __future__ import annotations

import json

import msgspec
import numpy as np
import pytest
import yaml
from confluent_kafka import Producer

from models.publish import MANIFEST_KEY, current_manifest, publish
from signalml.cli import main
from signalml.contracts import DriftEvent, ModelSetManifest, encode
from signalml.services.triton import TritonServer
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import new_tag
from tests.integration.planted_world import DAY_MS, FLIP, N_BARS, N_SYMBOLS, START_MS, bar_times, planted_bars, planted_settings
from training import run_training
from training.retrain import RetrainLoop

pytestmark = pytest.mark.integration

EVALUATION_BARS = 50


def loop_settings(tmp, tag: str, **retrain):
    """The planted world's settings (own topics, own Triton) with the loop's."""
    return planted_settings(tmp, tag, retrain={
        "history_store": None, "history_bars": N_BARS - FLIP, "evaluation_bars": EVALUATION_BARS,
        "min_candidate_t": 1.0, "min_improvement": 0.02, "min_paired_t": 2.0, "cooldown_s": 0.0,
        "min_severity": "critical", "consumer_group": f"retrain-{tag}", "out_dir": str(tmp / "retrain"),
        "http_port": 0, **retrain})


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
        yield {"settings": settings, "in_service": in_service, "tmp": tmp}
    finally:
        triton.stop()
        delete_world(settings)


def delete_world(settings) -> None:
    """The world's topics and the loops' consumer groups: a shared broker keeps no scratch."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    topics = [t.name for t in settings.kafka.topics.all().values()]
    for future in admin.delete_topics(topics).values():
        try:
            future.result(30)
        except Exception:  # noqa: BLE001 - cleanup is best effort
            pass
    prefix = settings.retrain.consumer_group
    groups = [g.group_id for g in admin.list_consumer_groups().result(30).valid if g.group_id.startswith(prefix)]
    for future in (admin.delete_consumer_groups(groups).values() if groups else ()):
        try:
            future.result(30)
        except Exception:  # noqa: BLE001
            pass


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


def with_retrain(settings, **changes):
    return settings.model_copy(update={"retrain": settings.retrain.model_copy(update=changes)})


def test_drift_retrains_refuses_without_paired_evidence_then_publishes_the_better_candidate(world):
    settings, in_service = world["settings"], world["in_service"]
    # A warning is below retrain.min_severity (read and skipped); the
    # critical event about the set in service triggers a retrain.
    send_drift(settings, ic_decay(in_service.model_set, severity="warning", ts=START_MS),
               ic_decay(in_service.model_set))

    # A loop (its own consumer group) that demands an impossible paired t
    # refuses; the served set's scores came through Triton and the
    # comparison is on every held-out bar time.
    strict = RetrainLoop(with_retrain(settings, min_paired_t=1e6, consumer_group=f"{settings.retrain.consumer_group}-strict"))
    [refused] = strict.watch(idle_exit_s=10.0, max_retrains=1)
    assert refused["outcome"] == "refused", refused
    assert refused["current"] == in_service.model_set
    assert refused["comparable_bars"] == EVALUATION_BARS and refused["paired"]["n_dates"] == EVALUATION_BARS
    assert "retrain.min_paired_t 1000000.0" in refused["refusal"]
    assert current_manifest(settings).model_set == in_service.model_set
    assert runs(strict, "refused") == 1

    # The configured loop reads the same events.
    loop = RetrainLoop(settings)
    [decision] = loop.watch(idle_exit_s=10.0, max_retrains=1)
    assert decision["outcome"] == "published", decision
    assert decision["current"] == in_service.model_set
    assert decision["trigger"]["severity"] == "critical"
    # The set trained before the flip now ranks backwards; the candidate's
    # walk-forward, fit after the flip, ranks the held-out bar times right.
    assert decision["current_rank_ic"] < -0.1 and decision["candidate_rank_ic"] > 0.1
    assert decision["paired"]["mean_difference"] > 0.2 and decision["paired"]["t_stat"] > 2.0
    assert decision["evaluation_bars"] == EVALUATION_BARS
    assert decision["evaluation_rows"] == EVALUATION_BARS * N_SYMBOLS
    # the same judgement as the strict loop's: same history, same seeds
    assert decision["candidate_rank_ic"] == pytest.approx(refused["candidate_rank_ic"], abs=1e-12)
    published = current_manifest(settings)
    assert published.model_set == decision["published"] != in_service.model_set
    assert published.previous == in_service.model_set
    last_close = np.datetime_as_string(np.datetime64(START_MS + (N_BARS - 1) * DAY_MS, "ms"), unit="s")
    assert published.training_window["last_label_end"] == last_close  # fit on every bar of the history
    assert [m.model_set for m in champion_manifests(settings)] == [in_service.model_set, published.model_set]
    assert loop.metrics.registry.get_sample_value("signalml_retrain_drift_events_total", {"action": "skipped"}) == 1
    assert runs(loop, "published") == 1

    lines = loop.decisions_path.read_text().splitlines()
    assert [json.loads(line) for line in lines][-1] == json.loads(json.dumps(decision, default=str))


def cli_config(settings, tmp_path, monkeypatch, **retrain):
    """A config file of ``settings``; the environment must not override it
    (the session may point SIGNALML__PATHS__STATE_DIR at a shared stack)."""
    for name in [n for n in __import__("os").environ if n.startswith("SIGNALML__")]:
        monkeypatch.delenv(name)
    data = settings.model_dump(mode="json", exclude={"root"})
    data["retrain"].update(retrain)
    config = tmp_path / "signalml.yaml"
    config.write_text(yaml.safe_dump(data))
    return config


def test_a_scheduled_retrain_through_the_cli_judges_the_successor_alone(world, tmp_path, capsys, monkeypatch):
    settings = world["settings"]
    serving = current_manifest(settings)
    config = cli_config(settings, tmp_path, monkeypatch, consumer_group=f"{settings.retrain.consumer_group}-cli")

    assert main(["--config", str(config), "retrain", "--watch", "--every", "0.5", "--max-retrains", "1"]) == 0
    [decision] = json.loads(capsys.readouterr().out)["retrains"]
    assert decision["reason"] == "schedule (every 0.5 s)"
    recorded = RetrainLoop(settings).decisions_path.read_text().splitlines()
    assert json.loads(recorded[-1])["at"] == decision["at"]  # in the world's own state folder
    assert decision["current"] == serving.model_set
    # the set in service was fit on every held-out bar: no fair comparison
    assert decision["comparable_bars"] == 0 and decision["paired"] is None
    assert decision["outcome"] in ("published", "refused")
    if decision["outcome"] == "published":
        assert current_manifest(settings).model_set == decision["published"]
    else:
        assert "retrain.min_candidate_t" in decision["refusal"] or "is not positive" in decision["refusal"]


def test_retrain_once_through_the_cli_records_its_decision(world, tmp_path, capsys, monkeypatch):
    settings = world["settings"]
    config = cli_config(settings, tmp_path, monkeypatch)
    before = len(RetrainLoop(settings).decisions_path.read_text().splitlines())

    assert main(["--config", str(config), "retrain", "--once"]) == 0
    decision = json.loads(capsys.readouterr().out)["retrain"]
    assert decision["reason"] == "signalml retrain --once"
    assert decision["outcome"] in ("published", "refused") and decision["candidate_rank_ic"] > 0.1
    lines = RetrainLoop(settings).decisions_path.read_text().splitlines()
    assert len(lines) == before + 1 and json.loads(lines[-1])["at"] == decision["at"]
