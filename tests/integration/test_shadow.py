"""A challenger (shadow) model set beside the champion, against the real
broker, a private Triton and the real monitor worker: the challenger engine
scores the same bars onto its own topic under its own set, the monitor's
/status shows both sets' rank IC side by side, a Triton restart brings the
challenger's models back, and promotion is a manifest publish that the
champion engine follows.

The market is the planted one (:mod:`tests.integration.planted_world`):
the champion was trained before the flip, the challenger (a GBM pair)
after it, so at the end of the stream the champion's rank IC is negative
and the challenger's positive.
"""

from __future__ import annotations

import msgspec
import pytest

from models.publish import MANIFEST_KEY, ModelSetStore, current_manifest, load_current, promote, publish
from signalml.config import Settings
from signalml.contracts import ModelSetManifest
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port
from signalml.services.triton import TritonServer
from stream.inference.sync import SyncInferenceClient
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import delete_tagged, new_tag, run_engines, signals_by_key
from tests.integration.monitor_process import start_monitor, stop, wait_for
from tests.integration.planted_world import (
    DAY_MS,
    FLIP,
    N_BARS,
    START_MS,
    WITH_XGBOOST,
    bar_times,
    planted_bars,
    planted_settings,
)
from training import run_training

pytestmark = pytest.mark.integration

LATER_BARS = 10  # bar times replayed after the promotion
HORIZON = 5


def as_challenger(settings: Settings) -> Settings:
    """The same world for a shadow engine: serving.role challenger, its own
    engine id, group and state topic (its signals topic follows the role)."""
    data = settings.model_dump(exclude={"root"})
    data["serving"].update(role="challenger", engine_id=data["serving"]["engine_id"] + "-challenger",
                           consumer_group=data["serving"]["consumer_group"] + "-challenger", http_port=free_port())
    data["kafka"]["topics"]["engine_state"]["name"] += ".challenger"
    out = Settings.model_validate({**data, "root": settings.root})
    KafkaBroker(out).ensure_topics()
    return out


def signals(settings: Settings, topic: str) -> dict:
    return signals_by_key(read_topic(settings.kafka.bootstrap_servers, topic))


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    """Champion and challenger published to a private Triton; the first N_BARS bar times on the bars topic."""
    tmp = tmp_path_factory.mktemp("shadow")
    tag = new_tag()
    settings = planted_settings(tmp, tag, monitor={"app_id": f"monitor-{tag}", "http_port": free_port(),
                                                   "session_timeout_s": 8.0})
    bars = planted_bars(n_bars=N_BARS + LATER_BARS)
    run_training(settings, "<planted bars>", tmp / "champion", progress=False, bars=bar_times(bars, 0, FLIP))
    pair = planted_settings(tmp, tag, models=WITH_XGBOOST)
    run_training(pair, "<planted bars>", tmp / "challenger", progress=False, bars=bar_times(bars, FLIP, N_BARS - 50))
    triton = TritonServer(settings)
    triton.start()
    try:
        champion = publish(settings, tmp / "champion")
        challenger = publish(settings, tmp / "challenger", role="challenger")
        replay(settings, bar_times(bars, 0, N_BARS), source_file="<planted bars>")
        yield {"settings": settings, "tmp": tmp, "bars": bars, "triton": triton, "champion": champion,
               "challenger": challenger}
    finally:
        triton.stop()
        delete_tagged(settings.kafka.bootstrap_servers, tag)


@pytest.fixture(scope="module")
def shadow(world):
    """Both engines over the same bars, the monitor reading both signals topics; its final /status."""
    settings = world["settings"]
    log = world["tmp"] / "monitor.log"
    monitor = start_monitor(settings, log)
    try:
        run_engines(settings, as_challenger(settings))
        scored = {ts for ts, _ in signals(settings, settings.kafka.topics.signals.name)}
        evaluated = len(scored) - HORIZON  # the last bar times' returns never mature

        def both_evaluated(report):
            roles = report["roles"]
            return all(roles[r] is not None and roles[r]["bar_times"] >= evaluated for r in ("champion", "challenger"))

        report = wait_for(settings, monitor, both_evaluated, log, "both sets evaluated")
    finally:
        stop(monitor)
    return {"report": report, "evaluated": evaluated}


def test_the_challenger_scores_the_same_bars_beside_the_champion_onto_its_own_topic(world, shadow):
    settings = world["settings"]
    champion = signals(settings, settings.kafka.topics.signals.name)
    challenger = signals(settings, settings.kafka.topics.signals_challenger.name)
    assert champion and set(challenger) == set(champion)
    assert {s.model_set for s in champion.values()} == {world["champion"].model_set}
    assert {s.model_set for s in challenger.values()} == {world["challenger"].model_set}
    assert {tuple(sorted(s.members)) for s in champion.values()} == {("lightgbm", "ridge")}
    assert {tuple(sorted(s.members)) for s in challenger.values()} == {("lightgbm", "ridge", "xgboost")}


def test_the_monitor_reports_both_sets_rank_ic_side_by_side(world, shadow):
    roles = shadow["report"]["roles"]
    champion, challenger = roles["champion"], roles["challenger"]
    assert champion["model_set"] == world["champion"].model_set
    assert challenger["model_set"] == world["challenger"].model_set
    assert champion["bar_times"] == challenger["bar_times"] == shadow["evaluated"]
    assert champion["last_ts"] == challenger["last_ts"]
    # After the flip the champion ranks backwards and the challenger does not.
    assert champion["rolling_rank_ic"]["ensemble"] < -0.05 < 0.05 < challenger["rolling_rank_ic"]["ensemble"]
    assert set(challenger["rolling_rank_ic"]) == {"ensemble", "lightgbm", "ridge", "xgboost"}
    assert champion["training_rank_ic"]["ensemble"] == pytest.approx(
        world["champion"].training_metrics["ensemble:average"]["rank_ic"])


def test_after_a_triton_restart_load_current_brings_back_the_challengers_models_too(world, shadow):
    settings = world["settings"]
    world["triton"].stop()
    world["triton"].start()  # explicit model control: it starts with nothing loaded
    assert load_current(settings).model_set == world["champion"].model_set
    with SyncInferenceClient.from_settings(settings, timeout_s=30.0) as client:
        assert all(client.ready(world["champion"]).values())
        assert client.ready(world["challenger"]) == {"lightgbm": True, "ridge": True, "xgboost": True}


def test_promote_makes_the_challenger_the_champion_by_a_manifest_publish(world, shadow):
    settings, champion, challenger = world["settings"], world["champion"], world["challenger"]
    promoted = promote(settings)
    assert promoted.model_set == challenger.model_set and promoted.previous == champion.model_set
    sent = [m for m in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.control.name)
            if m.key() == MANIFEST_KEY]
    assert [msgspec.json.decode(m.value(), type=ModelSetManifest).model_set for m in sent] == \
        [champion.model_set, challenger.model_set]
    assert current_manifest(settings).model_set == challenger.model_set
    assert ModelSetStore(settings.triton_repository).current_id("challenger") is None

    # The champion engine resumes and scores the bar times that follow with the promoted set.
    replay(settings, bar_times(world["bars"], N_BARS), source_file="<planted bars>")
    run_engines(settings)
    later = {k: s for k, s in signals(settings, settings.kafka.topics.signals.name).items()
             if k[0] >= START_MS + N_BARS * DAY_MS}
    assert len(later) == LATER_BARS * 40
    assert {s.model_set for s in later.values()} == {challenger.model_set}
