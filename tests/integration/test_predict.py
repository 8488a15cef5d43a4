"""``signalml predict`` against the real broker and a real Triton: on the same
bars file and model set, its signals equal what the engine published (and
its rejects equal replay's); a model set that is unknown or not loaded is a
clear error.

The bars file is a 30-symbol slice of the bundled data since 2018 with
three defects planted; with ``SIGNALML_PREDICT_BUNDLED=1`` it is the whole
bundled file (495,081 bars, a few minutes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import msgspec
import numpy as np
import pandas as pd
import pytest

from models.publish import ModelSetStore, publish
from signalml.services.triton import TritonServer
from stream.bars_file import read_bars
from stream.engine import Engine
from stream.predict import PredictError, predict
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import (
    DATA,
    REPO,
    base_settings,
    delete_created_topics,
    env_of,
    new_tag,
    signals_by_key,
    small_bars,
    with_output,
)
from training import run_training

pytestmark = pytest.mark.integration

# Both sides score the same float32 inputs with the same served models; the
# only freedom left is float arithmetic order, so equality is expected and
# 1e-6 is the stated bound.
TOLERANCE = 1e-6
BUNDLED = os.environ.get("SIGNALML_PREDICT_BUNDLED") == "1"


def bars_file(tmp) -> str:
    if BUNDLED:
        return str(DATA)
    raw = pd.read_parquet(DATA)
    symbols = sorted(raw["symbol"].unique())[:30]
    raw = raw[raw["symbol"].isin(symbols) & (pd.to_datetime(raw["date"]) >= "2018-01-01")].reset_index(drop=True)
    raw.loc[100, "close"] = -1.0  # non_positive_price
    swap = int(np.flatnonzero(raw["high"].to_numpy() > raw["low"].to_numpy() * 1.01)[10])
    high, low = float(raw.at[swap, "high"]), float(raw.at[swap, "low"])
    raw.at[swap, "high"], raw.at[swap, "low"] = low, high  # high_below_low
    raw = pd.concat([raw, raw.iloc[[300]]], ignore_index=True)  # duplicate_ts
    path = tmp / "bars.parquet"
    raw.to_parquet(path, index=False)
    return str(path)


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("predict")
    tag = new_tag()
    settings = base_settings(tmp, tag)
    run_training(settings, DATA, tmp / "train", progress=False, bars=small_bars())
    triton = TritonServer(settings)
    triton.start()
    manifest = publish(settings, tmp / "train")
    path = bars_file(tmp)
    replayed = replay(settings, read_bars(path), source_file=path)
    engine = Engine(with_output(settings, "engine"))
    # The bundled file's last bar time has fewer symbols than the one before:
    # the engine's barrier closes it on its timeout, so it must idle longer.
    engine.run(idle_exit_s=settings.serving.barrier_timeout_s + 5.0 if BUNDLED else 3.0, serve_http=False)
    published = signals_by_key(read_topic(settings.kafka.bootstrap_servers,
                                          engine.settings.kafka.topics.signals.name))
    yield {"settings": settings, "tmp": tmp, "manifest": manifest, "bars": path, "replayed": replayed,
           "published": published}
    triton.stop()
    delete_created_topics(tag)


@pytest.fixture(scope="module")
def predicted(world):
    out = world["tmp"] / "signals.parquet"
    summary = predict(world["settings"], world["bars"], out)
    return summary, pd.read_parquet(out)


def test_predict_equals_the_engines_published_signals_for_the_same_bars_and_model_set(world, predicted):
    summary, frame = predicted
    published = world["published"]
    members = [m.name for m in world["manifest"].members]
    assert summary.model_set == world["manifest"].model_set and set(frame["model_set"]) == {summary.model_set}
    assert len(frame) == summary.signals == len(published) > 0
    assert set(zip(frame["ts"].tolist(), frame["symbol"].tolist())) == set(published)
    expected = pd.DataFrame([
        {"ts": s.ts, "symbol": s.symbol, "score": s.score, "rank": s.rank,
         **{f"member_{m}": s.members[m] for m in members},
         "cross_section_size": s.cross_section_size, "horizon_bars": s.horizon_bars}
        for s in published.values()
    ]).set_index(["ts", "symbol"]).sort_index()
    got = frame.set_index(["ts", "symbol"]).sort_index()
    for column in ("cross_section_size", "horizon_bars"):
        assert (got[column] == expected[column]).all(), column
    diffs = {column: float(np.nanmax(np.abs(got[column].to_numpy() - expected[column].to_numpy())))
             for column in ("score", "rank", *(f"member_{m}" for m in members))}
    print(f"\npredict vs engine, {len(frame)} signals, max abs diff: {json.dumps(diffs)}")
    assert max(diffs.values()) <= TOLERANCE, diffs
    assert (np.isnan(got["score"].to_numpy()) == np.isnan(expected["score"].to_numpy())).all()


def test_every_bad_row_is_counted_by_reason_exactly_as_replay_dead_letters_it(world, predicted):
    summary, _ = predicted
    assert summary.rejected == world["replayed"].rejected and sum(summary.rejected.values()) > 0
    if not BUNDLED:  # the three planted defects, besides any the slice has of its own
        assert all(summary.rejected[reason] >= 1 for reason in ("non_positive_price", "high_below_low", "duplicate_ts"))
    assert summary.accepted + sum(summary.rejected.values()) == summary.rows
    assert summary.scored_bar_times == summary.bar_times - world["settings"].serving.warmup_bars


def run_cli(world, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "signalml.cli", "predict", "--bars", world["bars"], *args],
                          cwd=REPO, env=env_of(world["settings"]), capture_output=True, text=True, timeout=900)


def test_the_command_with_an_explicit_model_set_writes_the_same_signals_as_csv(world, predicted):
    out = world["tmp"] / "signals.csv"
    done = run_cli(world, "--out", str(out), "--model-set", world["manifest"].model_set, "--quiet", "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)["predict"]
    assert summary["model_set"] == world["manifest"].model_set and summary["signals"] == len(predicted[1])
    assert summary["rejected_by_reason"] == dict(sorted(predicted[0].rejected.items()))
    pd.testing.assert_frame_equal(pd.read_csv(out), predicted[1], check_exact=True)


def test_an_unknown_model_set_is_an_error_naming_the_stored_ones(world):
    done = run_cli(world, "--out", str(world["tmp"] / "x.parquet"), "--model-set", "ms-20000101000000-00000000")
    assert done.returncode == 1
    assert "ms-20000101000000-00000000 is not stored" in done.stderr
    assert f"stored model sets: {world['manifest'].model_set}" in done.stderr
    done = run_cli(world, "--out", str(world["tmp"] / "x.parquet"), "--model-set", "latest")
    assert done.returncode == 1 and "invalid model-set id 'latest'" in done.stderr


def test_a_stored_model_set_whose_models_are_not_loaded_in_triton_is_an_error_naming_them(world):
    manifest = world["manifest"]
    ghost = msgspec.structs.replace(
        manifest, model_set="ms-20000101000000-0badcafe",
        members=[msgspec.structs.replace(m, version=99) for m in manifest.members])
    ModelSetStore(world["settings"].triton_repository).write(ghost)
    with pytest.raises(PredictError, match="not loaded in Triton") as refused:
        predict(world["settings"], world["bars"], world["tmp"] / "x.parquet", model_set=ghost.model_set)
    for member in manifest.members:
        assert f"{member.name} version 99" in str(refused.value)


def test_an_output_of_another_format_fails_before_any_work(world):
    with pytest.raises(PredictError, match="unknown format '.xlsx'"):
        predict(world["settings"], world["bars"], world["tmp"] / "signals.xlsx")
