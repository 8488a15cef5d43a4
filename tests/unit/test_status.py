"""What `signalml status` says about the model set and drift, without a
broker: the manifest of a temporary repository, and a Kafka that is down."""

from __future__ import annotations

import time

from models.publish import ModelSetStore
from signalml.config import load_settings
from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
from signalml.services.process import free_port
from signalml.status import drift_lines, drift_status, engine_lines, engine_status, model_set_lines, model_set_status
from stream.lease import member_name, parse_member_name

MODEL_SET = "ms-20250102030405-0123abcd"


def manifest() -> ModelSetManifest:
    return ModelSetManifest(
        model_set=MODEL_SET,
        created_at=1735787045000,  # 2025-01-02 03:04:05 UTC
        members=[
            ManifestMember("lightgbm", 3, "lightgbm", "tabular", 0.7),
            ManifestMember("lstm", 2, "lstm", "sequence", 0.3),
        ],
        ensemble_method="ic_weighted",
        feature_names=["rsi_14", "ret_5"],
        feature_schema_hash=schema_hash(["rsi_14", "ret_5"]),
        horizon_bars=5,
        training_metrics={
            "lightgbm": {"rank_ic": 0.0312, "rank_icir": 0.21, "ic": 0.025},
            "ensemble:ic_weighted": {"rank_ic": 0.0401, "rank_icir": 0.3},
        },
        previous="ms-20250101000000-fedcba98",
    )


def settings_with(tmp_path, **kafka):
    return load_settings(environ={}, overrides={"triton": {"repository": str(tmp_path / "repo")}, "kafka": kafka})


def test_before_any_publish_the_model_set_is_none(tmp_path):
    status = model_set_status(settings_with(tmp_path))
    assert status == {"current": None}
    assert model_set_lines(status) == ["model set  none published (signalml train, then signalml publish)"]


def test_the_current_manifest_gives_members_versions_triton_states_and_training_metrics(tmp_path):
    settings = settings_with(tmp_path)
    store = ModelSetStore(settings.triton_repository)
    store.write(manifest())
    store.set_current(MODEL_SET, "publish")
    triton_models = [{"name": "lightgbm", "version": "3", "state": "READY"}, {"name": "lightgbm", "version": "2"}]

    status = model_set_status(settings, triton_models)

    assert status["current"] == MODEL_SET and status["previous"] == "ms-20250101000000-fedcba98"
    assert status["members"] == [
        {"name": "lightgbm", "version": 3, "kind": "lightgbm", "weight": 0.7, "triton_state": "READY"},
        {"name": "lstm", "version": 2, "kind": "lstm", "weight": 0.3, "triton_state": "not loaded"},
    ]
    assert status["training_metrics"]["ensemble:ic_weighted"]["rank_ic"] == 0.0401
    lines = model_set_lines(status)
    assert lines[0].startswith(f"model set  {MODEL_SET}  ensemble ic_weighted, horizon 5 bars, published 2025-01-02 03:04:05 UTC")
    assert lines[1] == "        members: lightgbm v3 (READY), lstm v2 (not loaded)"
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert rows["name"][:3] == ["rank_ic", "rank_icir", "ic"]
    assert rows["lightgbm"][:3] == ["0.0312", "0.2100", "0.0250"]
    assert rows["ensemble:ic_weighted"][:3] == ["0.0401", "0.3000", "–"]


def test_a_corrupt_manifest_is_reported_not_raised(tmp_path):
    settings = settings_with(tmp_path)
    store = ModelSetStore(settings.triton_repository)
    store.write(manifest())
    store.set_current(MODEL_SET, "publish")
    (store.folder / f"{MODEL_SET}.json").write_text('{"model_set": 1}')
    status = model_set_status(settings)
    assert status["current"] is None and "not a valid model-set manifest" in status["error"]


def test_drift_events_with_kafka_down_say_so_within_the_timeout(tmp_path):
    settings = settings_with(tmp_path, port=free_port())
    started = time.monotonic()
    status = drift_status(settings, count=5, timeout_s=1.5)
    elapsed_s = time.monotonic() - started
    assert elapsed_s < 4.0
    assert status["topic"] == "drift" and "is down or not answering" in status["error"]
    assert drift_lines(status)[0].startswith(f"drift      unavailable: Kafka at 127.0.0.1:{settings.kafka.port} is down")


def test_an_engine_member_name_says_which_process_it_is():
    named = parse_member_name(member_name("default", "127.0.0.1:8090"))
    assert named["http"] == "127.0.0.1:8090" and isinstance(named["pid"], int) and named["host"]
    assert parse_member_name("rdkafka") == {}


def test_the_engines_are_listed_active_first_and_a_handover_is_said():
    engines = {"engine_id": "default", "group": "signalml-lease-default", "engines": [
        {"role": "active", "pid": 11, "host": "a", "http": "127.0.0.1:8090"},
        {"role": "standby", "pid": 12, "host": "b", "http": "127.0.0.1:8091"}]}
    assert engine_lines(engines) == ["engine     default: active pid 11 on a (http 127.0.0.1:8090); "
                                     "standby pid 12 on b (http 127.0.0.1:8091)"]
    handover = {**engines, "engines": [{**engines["engines"][1]}]}
    assert engine_lines(handover)[0].startswith("engine     default: none active (a handover is under way); standby")
    assert engine_lines({**engines, "engines": []}) == ["engine     default: no engine running"]


def test_the_engines_with_kafka_down_say_so_within_the_timeout(tmp_path):
    settings = settings_with(tmp_path, port=free_port())
    started = time.monotonic()
    status = engine_status(settings, timeout_s=1.5)
    assert time.monotonic() - started < 4.0
    assert engine_lines(status)[0].startswith("engine     default: unknown: Kafka at 127.0.0.1:")
