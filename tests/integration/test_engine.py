"""The live engine against the real broker and a real Triton: signals equal the
offline pipeline's, exactly once through crashes and a Triton outage, and a
model-set swap at a bar boundary."""

from __future__ import annotations

import random
import threading
import time

import numpy as np
import pytest

from models.factory import load_member
from models.publish import load_current, publish
from stream.engine import Engine
from stream.model_set import ModelSet
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import DATA, engine_process, published_world, signals_by_key, with_output
from training.dataset import build_dataset

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("engine")) as world:
        yield world


def run_engine(settings, **kwargs) -> dict:
    engine = Engine(settings)
    engine.run(idle_exit_s=3.0, serve_http=False, **kwargs)
    return signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))


@pytest.fixture(scope="module")
def reference(world):
    """An uninterrupted run: the signals every other run must reproduce."""
    return run_engine(with_output(world["settings"], "ref"))


def test_every_symbol_of_every_cross_section_after_warm_up_gets_the_offline_pipelines_signal(world, reference):
    settings, bars, manifest = world["settings"], world["bars"], world["manifest"]
    dates = np.unique(bars["ts"])
    scored_dates = dates[settings.serving.warmup_bars:]
    expected_keys = {(int(ts), s) for ts, s in zip(bars["ts"], bars["symbol"]) if ts in set(scored_dates.tolist())}
    assert set(reference) == expected_keys

    # Offline: the same features through the training dataset, the native
    # models from the artifact, the same ensemble.
    length = manifest.sequence_length
    dataset = build_dataset(bars, settings, sequence_length=length)
    spec_dir = world["tmp"] / "train" / "model_set"
    import json

    spec = json.loads((spec_dir / "model_set.json").read_text())
    ts_of_date = dict(zip(bars["date"], bars["ts"]))
    rows = np.arange(len(dataset.date_index))
    row_ts = np.array([ts_of_date[d] for d in dataset.dates[dataset.date_index]])
    keep = np.isin(row_ts, scored_dates)
    rows = rows[keep]
    scores = {}
    for member in spec["members"]:
        model = load_member(member["kind"], spec_dir, member["files"])
        if member["input"] == "sequence":
            x = dataset.sequences(rows, length)
        else:
            x = dataset.features[rows]
        scores[member["name"]] = model.predict(x)
    ensemble = ModelSet.of(manifest, list(dataset.feature_names)).ensemble
    combined = ensemble.combine(np.column_stack([scores[m] for m in ensemble.members]), groups=row_ts[keep])
    symbols = dataset.symbols[dataset.symbol_index[rows]]
    for i, (ts, symbol) in enumerate(zip(row_ts[keep], symbols)):
        signal = reference[(int(ts), str(symbol))]
        for name in scores:
            assert signal.members[name] == pytest.approx(scores[name][i], rel=1e-4, abs=1e-5), (ts, symbol, name)
        assert signal.score == pytest.approx(combined[i], rel=1e-4, abs=1e-5)
        assert signal.model_set == manifest.model_set
        assert 0 < signal.rank <= 1


def test_sigkill_at_random_points_loses_and_duplicates_nothing(world, reference):
    settings = with_output(world["settings"], "crash")
    rng = random.Random(7)
    log = world["tmp"] / "crash.log"
    for _ in range(3):
        process = engine_process(settings, log)
        time.sleep(rng.uniform(4.0, 9.0))
        process.kill()
        process.wait()
    final = engine_process(settings, log)
    assert final.wait(timeout=300) == 0, log.read_text()[-3000:]
    crashed = signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))
    assert set(crashed) == set(reference)
    assert all(crashed[k].score == reference[k].score for k in reference)


def test_triton_stopped_mid_replay_and_restarted_loses_nothing(world, reference):
    settings = with_output(world["settings"], "outage")
    engine = Engine(settings)
    # Triton goes down inside the engine's loop, once 500 signals are
    # committed: mid-replay whatever the engine's speed.
    stopped = threading.Event()
    process = engine._process

    def process_then_stop_triton(xs):
        process(xs)
        if not stopped.is_set() and engine.metrics.signals_out._value.get() >= 500:
            stopped.set()
            world["triton"].stop()

    engine._process = process_then_stop_triton
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 5.0, "serve_http": False})
    thread.start()
    deadline = time.monotonic() + 120
    while engine.status()["triton_available"] and time.monotonic() < deadline:
        assert thread.is_alive()
        time.sleep(0.05)
    assert stopped.is_set() and not engine.status()["triton_available"]
    world["triton"].start()
    load_current(settings)
    thread.join(timeout=300)
    assert not thread.is_alive()
    got = signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))
    assert set(got) == set(reference)
    assert all(got[k].score == reference[k].score for k in reference)


def test_health_readiness_and_metrics_are_served_while_it_runs(world, reference):
    import json
    import urllib.request

    settings = with_output(world["settings"], "http")
    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 3.0})
    thread.start()
    base = f"http://{settings.serving.http_host}:{settings.serving.http_port}"
    deadline = time.monotonic() + 120
    while engine.metrics.signals_out._value.get() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    health = json.load(urllib.request.urlopen(base + "/health"))
    ready = json.load(urllib.request.urlopen(base + "/ready"))
    deadline = time.monotonic() + 10  # the lag comes with librdkafka's statistics, every second
    while True:
        metrics = urllib.request.urlopen(base + "/metrics").read().decode()
        if "signalml_consumer_lag{" in metrics or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    thread.join(timeout=300)
    assert health["healthy"] and health["triton_available"]
    assert ready["ready"] and ready["model_set"] == world["manifest"].model_set
    for name in ("signalml_bars_in_total", "signalml_signals_out_total", "signalml_stage_latency_seconds_bucket",
                 "signalml_bar_to_signal_seconds_bucket", "signalml_triton_latency_seconds_bucket",
                 'signalml_consumer_lag{partition="0"}',
                 f'signalml_model_set_info{{model_set="{world["manifest"].model_set}"}} 1.0'):
        assert name in metrics, name


def test_an_engine_started_while_triton_is_down_serves_once_it_is_back(world, reference):
    settings = with_output(world["settings"], "late-triton")
    world["triton"].stop()
    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 8.0, "serve_http": False})
    thread.start()
    time.sleep(3.0)
    assert engine.model_set is None
    world["triton"].start()
    load_current(settings)
    thread.join(timeout=300)
    got = signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))
    assert set(got) == set(reference)
    assert all(got[k].score == reference[k].score for k in reference)


def test_a_model_swap_mid_replay_happens_at_a_bar_boundary(world, reference):
    settings = with_output(world["settings"], "swap", own_bars=True)
    first = world["manifest"].model_set
    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 5.0, "serve_http": False})
    thread.start()
    feeder = threading.Thread(target=replay, args=(settings, world["bars"]),
                              kwargs={"source_file": DATA, "speed": 25.0})
    feeder.start()
    deadline = time.monotonic() + 120
    while engine.metrics.signals_out._value.get() < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = publish(settings, world["tmp"] / "train").model_set
    feeder.join()
    thread.join(timeout=300)
    got = signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))
    assert set(got) == set(reference)
    sets_by_ts: dict[int, set[str]] = {}
    for (ts, _), signal in got.items():
        sets_by_ts.setdefault(ts, set()).add(signal.model_set)
    assert all(len(s) == 1 for s in sets_by_ts.values()), "a cross-section was scored by two model sets"
    sequence = [next(iter(sets_by_ts[ts])) for ts in sorted(sets_by_ts)]
    assert second in sequence, "the new model set never took over"
    switch = sequence.index(second)
    assert switch > 0 and set(sequence[:switch]) == {first} and set(sequence[switch:]) == {second}
