"""The live engine against the real broker and a real Triton: signals equal the
offline pipeline's (native models), ranks equal scipy's, exactly once through
a Triton outage, and a swap to a different model set at a bar boundary.
(Crashes, partition skew and bad input: test_engine_determinism.py and
test_engine_bad_input.py.)"""

from __future__ import annotations

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
from tests.integration.engine_world import (
    DATA,
    new_tag,
    published_world,
    signals_by_key,
    with_output,
)
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


def native_scores(world, train_dir, manifest, scored_ts) -> dict[tuple[int, str], tuple[dict, float]]:
    """Each (bar time, symbol) of ``scored_ts``: the members' and the
    ensemble's scores computed offline, independently of the engine: the
    features through the training dataset, the native models of the
    artifact in ``train_dir``, the manifest's ensemble."""
    import json

    settings, bars = world["settings"], world["bars"]
    length = manifest.sequence_length
    dataset = build_dataset(bars, settings, sequence_length=length)
    spec_dir = train_dir / "model_set"
    spec = json.loads((spec_dir / "model_set.json").read_text())
    ts_of_date = dict(zip(bars["date"], bars["ts"]))
    rows = np.arange(len(dataset.date_index))
    row_ts = np.array([ts_of_date[d] for d in dataset.dates[dataset.date_index]])
    keep = np.isin(row_ts, np.asarray(sorted(scored_ts)))
    rows = rows[keep]
    scores = {}
    for member in spec["members"]:
        model = load_member(member["kind"], spec_dir, member["files"])
        x = dataset.sequences(rows, length) if member["input"] == "sequence" else dataset.features[rows]
        scores[member["name"]] = model.predict(x)
    ensemble = ModelSet.of(manifest, list(dataset.feature_names)).ensemble
    combined = ensemble.combine(np.column_stack([scores[m] for m in ensemble.members]), groups=row_ts[keep])
    symbols = dataset.symbols[dataset.symbol_index[rows]]
    return {(int(ts), str(symbol)): ({name: float(values[i]) for name, values in scores.items()}, float(combined[i]))
            for i, (ts, symbol) in enumerate(zip(row_ts[keep], symbols))}


def assert_native(signal, native, key) -> None:
    members, score = native
    for name, value in members.items():
        assert signal.members[name] == pytest.approx(value, rel=1e-4, abs=1e-5), (key, name)
    assert signal.score == pytest.approx(score, rel=1e-4, abs=1e-5), key


def test_every_symbol_of_every_cross_section_after_warm_up_gets_the_offline_pipelines_signal(world, reference):
    settings, bars, manifest = world["settings"], world["bars"], world["manifest"]
    dates = np.unique(bars["ts"])
    scored_dates = dates[settings.serving.warmup_bars:]
    expected_keys = {(int(ts), s) for ts, s in zip(bars["ts"], bars["symbol"]) if ts in set(scored_dates.tolist())}
    assert set(reference) == expected_keys

    native = native_scores(world, world["tmp"] / "train", manifest, scored_dates.tolist())
    assert set(native) == expected_keys
    for key, signal in reference.items():
        assert_native(signal, native[key], key)
        assert signal.model_set == manifest.model_set


def test_rank_is_the_percentile_of_the_score_within_each_cross_section(reference):
    """Checked against scipy's rankdata (ties share their average rank)."""
    from scipy.stats import rankdata

    by_ts: dict[int, list] = {}
    for (ts, _symbol), signal in reference.items():
        by_ts.setdefault(ts, []).append(signal)
    for ts, signals in by_ts.items():
        scores = np.array([s.score for s in signals])
        expected = rankdata(scores, method="average") / len(scores)
        assert [s.rank for s in signals] == pytest.approx(expected.tolist(), abs=1e-12), ts
        assert {s.cross_section_size for s in signals} == {len(signals)}, ts


def test_triton_stopped_mid_replay_and_restarted_loses_nothing(world, reference):
    settings = with_output(world["settings"], "outage")
    engine = Engine(settings)
    # Triton goes down inside the engine's loop, once 500 signals are
    # committed: mid-replay whatever the engine's speed.
    stopped = threading.Event()
    publish = engine._publish

    def publish_then_stop_triton(pending):
        publish(pending)
        if not stopped.is_set() and engine.metrics.signals_out._value.get() >= 500:
            stopped.set()
            world["triton"].stop()

    engine._publish = publish_then_stop_triton
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
    assert got == reference  # every field of every signal


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
    assert got == reference  # every field of every signal


def test_a_swap_to_a_different_model_set_mid_replay_scores_each_bar_time_with_exactly_one_set(world, reference,
                                                                                           tmp_path):
    """The second set is trained on other symbols with another seed: its
    scores differ from the first's on the same rows, and each bar time's
    signals equal the native scores of the one set that scored it."""
    from tests.integration.engine_world import small_bars
    from training import run_training

    settings = with_output(world["settings"], f"swap-{new_tag()}", own_bars=True)
    first = world["manifest"]
    other = small_bars(60).query("symbol not in @world['bars'].symbol")
    seeded = settings.model_copy(update={"training": settings.training.model_copy(update={"seed": 7})})
    run_training(seeded, DATA, tmp_path / "train2", progress=False, bars=other)

    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 5.0, "serve_http": False})
    thread.start()
    feeder = threading.Thread(target=replay, args=(settings, world["bars"]),
                              kwargs={"source_file": DATA, "speed": 25.0})
    feeder.start()
    deadline = time.monotonic() + 120
    while engine.metrics.signals_out._value.get() < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    second = publish(settings, tmp_path / "train2")
    feeder.join()
    thread.join(timeout=300)
    assert not thread.is_alive()
    got = signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))
    assert set(got) == set(reference)

    sets_by_ts: dict[int, set[str]] = {}
    for (ts, _), signal in got.items():
        sets_by_ts.setdefault(ts, set()).add(signal.model_set)
    assert all(len(s) == 1 for s in sets_by_ts.values()), "a cross-section was scored by two model sets"
    sequence = [next(iter(sets_by_ts[ts])) for ts in sorted(sets_by_ts)]
    assert second.model_set in sequence, "the new model set never took over"
    switch = sequence.index(second.model_set)
    assert switch > 0 and set(sequence[:switch]) == {first.model_set} and set(sequence[switch:]) == {second.model_set}

    scored = sorted(sets_by_ts)
    natives = {first.model_set: native_scores(world, world["tmp"] / "train", first, scored),
               second.model_set: native_scores(world, tmp_path / "train2", second, scored)}
    a, b = (np.array([natives[m][k][1] for k in sorted(got)]) for m in (first.model_set, second.model_set))
    assert np.corrcoef(a, b)[0, 1] < 0.99 and np.abs(a - b).max() > 1e-3, "the two model sets score alike"
    for key, signal in got.items():
        assert_native(signal, natives[signal.model_set][key], key)
