"""Publishing model sets to a real Triton and the real control topic: tiny
models of each type are served equal to their native predictions, a new
set replaces the running one under load with no failed request, rollback
works the same way, and a bad artifact leaves the running set serving.

A private Triton (free ports, temporary repository) per module; Kafka is
the stack's, with a scratch control topic.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from models.export.check import MemberCheck
from models.export.tolerance import compare
from models.publish import MANIFEST_KEY, ModelSetStore, PublishError, current_manifest, load_current, publish, rollback
from signalml.contracts import ModelSetManifest, decoder
from signalml.services.triton import TritonServer
from stream.inference import InferenceClient, SyncInferenceClient
from stream.topic_reader import read_topic
from tests.integration.kafka_helpers import scratch_topics
from tests.unit.serving.artifacts import N_FEATURES, build_lstm, cached_artifact, edit_spec, export_lstm, rows, sequences, train_lightgbm
from tests.unit.serving.servers import native_scores, private_settings, private_triton

pytestmark = pytest.mark.integration

X = rows(300, seed=5)
S = sequences(300, seed=6)


@pytest.fixture(scope="module")
def control(stack):
    with scratch_topics(stack.settings.kafka.bootstrap_servers, "control") as (topic,):
        yield topic


@pytest.fixture(scope="module")
def server(tmp_path_factory, stack):
    with private_triton(tmp_path_factory.mktemp("triton")) as srv:
        yield srv


@pytest.fixture(scope="module")
def served(server):
    """The settings of the private Triton (and the stack's Kafka)."""
    return server.settings


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    return {v: cached_artifact(tmp_path_factory, v) for v in (0, 1)}


@pytest.fixture(scope="module")
def natives(artifacts):
    return {v: native_scores(d, X, S) for v, d in artifacts.items()}


@pytest.fixture(scope="module")
def first(served, artifacts, control):
    return publish(served, artifacts[0], control_topic=control)


def score(served, manifest):
    with SyncInferenceClient.from_settings(served) as client:
        return client.score(manifest, X, S)


def assert_serves(served, manifest, native):
    scores = score(served, manifest)
    assert set(scores) == set(native)
    for member in manifest.members:
        problem, _ = compare(member.kind, "cpu", scores[member.name], native[member.name])
        assert problem is None, f"{member.name}: {problem}"


def repository_versions(served):
    repo = served.triton_repository
    return {name: sorted(int(p.name) for p in (repo / name).iterdir() if p.name.isdigit()) for name in ("lightgbm", "xgboost", "lstm")}


def test_tiny_models_of_each_type_are_published_and_served_equal_to_native(served, first, natives, control, stack):
    assert [(m.name, m.kind, m.version) for m in first.members] == [("lightgbm", "lightgbm", 1), ("xgboost", "xgboost", 1), ("lstm", "lstm", 1)]
    assert first.previous is None
    assert_serves(served, first, natives[0])
    # Beside the models: the manifest, its golden rows and the current pointer.
    store = ModelSetStore(served.triton_repository)
    assert store.read(first.model_set) == first and current_manifest(served) == first
    assert store.golden(first.model_set) is not None
    # On the control topic, under the fixed key.
    messages = read_topic(stack.settings.kafka.bootstrap_servers, control)
    assert messages[-1].key() == MANIFEST_KEY
    assert decoder(ModelSetManifest).decode(messages[-1].value()) == first
    # The deep model runs on ONNX Runtime here and says so in Triton's log.
    log = open(served.state_dir / "logs" / "triton.log").read()
    assert "lstm:1: onnx model.onnx input [5, 6] on onnxruntime-cpu (no CUDA device)" in log


def test_a_new_set_replaces_the_running_one_under_load_and_rollback_restores_it(served, first, artifacts, natives, control, stack):
    stop = threading.Event()
    responses: list[tuple[float, str, dict]] = []  # (request start, model set, scores)
    failures: list[str] = []

    async def engine_loop():
        async with InferenceClient.from_settings(served) as client:
            while not stop.is_set():
                started = time.monotonic()
                manifest = current_manifest(served)  # what an engine switches to at the next bar
                try:
                    responses.append((started, manifest.model_set, await client.score(manifest, X[:50], S[:50])))
                except Exception as exc:  # noqa: BLE001 - every failure counts
                    failures.append(f"{type(exc).__name__}: {exc}")

    def run():
        async def main():
            await asyncio.gather(*(engine_loop() for _ in range(4)))

        asyncio.run(main())

    loops = threading.Thread(target=run)
    loops.start()
    try:
        time.sleep(0.3)
        publish_from = time.monotonic()
        second = publish(served, artifacts[1], control_topic=control)
        published_at = time.monotonic()
        time.sleep(0.3)
        rollback_from = time.monotonic()
        back = rollback(served, control_topic=control)
        rolled_back_at = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        loops.join(timeout=60)
    assert failures == []
    assert second.previous == first.model_set and back == first
    # The switch is visible: requests started before publish get the old
    # set's scores, those started after it returned the new set's, and
    # those started after rollback returned the old set's again.
    during = [m for t, m, _ in responses if published_at < t < rollback_from]
    after = [m for t, m, _ in responses if t > rolled_back_at]
    before = [m for t, m, _ in responses if t < publish_from]
    assert before and set(before) == {first.model_set}
    assert during and set(during) == {second.model_set}
    assert after and set(after) == {first.model_set}
    expected = {first.model_set: natives[0], second.model_set: natives[1]}
    for _, model_set, scores in responses:
        for member, values in scores.items():
            problem, _ = compare(member, "cpu", values, expected[model_set][member][:50])
            assert problem is None, f"{model_set} {member}: {problem}"
    assert not np.allclose(natives[0]["lightgbm"], natives[1]["lightgbm"])  # the two sets really differ
    # The control topic saw publish, publish, rollback; the history says the same.
    sent = [decoder(ModelSetManifest).decode(m.value()).model_set for m in read_topic(stack.settings.kafka.bootstrap_servers, control)]
    assert sent[-3:] == [first.model_set, second.model_set, first.model_set]
    history = ModelSetStore(served.triton_repository).history()
    assert [h["action"] for h in history[-3:]] == ["publish", "publish", "rollback"]


def bad_copy(artifact_dir, tmp_path):
    import shutil

    return shutil.copytree(artifact_dir, tmp_path / "bad")


def corrupt_lightgbm(directory):
    path = directory / "model_set" / "lightgbm" / "model.txt"
    path.write_text(path.read_text()[: len(path.read_text()) // 2])


def wrong_feature_count(directory):
    spec = json.loads((directory / "model_set" / "model_set.json").read_text())
    spec["members"][1]["n_features"] = N_FEATURES + 2
    edit_spec(directory, members=spec["members"])


def float64_onnx(directory):
    network, config = build_lstm()
    export_lstm(network, config, directory / "model_set" / "lstm", dtype="float64")


def file_outside(directory):
    spec = json.loads((directory / "model_set" / "model_set.json").read_text())
    spec["members"][0]["files"]["model"] = "../../../etc/passwd"
    edit_spec(directory, members=spec["members"])


def missing_directory(directory):
    import shutil

    shutil.rmtree(directory / "model_set")


def test_after_a_restart_the_current_and_previous_sets_are_loaded_again(served, first, natives):
    server = TritonServer(served)
    for name in ("lightgbm", "xgboost", "lstm"):
        server.unload_model(name)  # as after a restart: explicit mode loads nothing
    current = load_current(served)
    assert current == current_manifest(served)
    with SyncInferenceClient.from_settings(served) as client:
        assert all(client.ready(current).values())
    assert_serves(served, current, natives[0] if current.model_set == first.model_set else natives[1])


@pytest.mark.parametrize("damage, message", [
    (corrupt_lightgbm, "member lightgbm: its model file crashed the native library"),
    (wrong_feature_count, "member xgboost: n_features is 8 but the model set has 6"),
    (float64_onnx, "member lstm: model.onnx input SEQUENCES is tensor\\(double\\), expected tensor\\(float\\)"),
    (file_outside, "member lightgbm: files.model: file path '../../../etc/passwd' must be relative and inside"),
    (missing_directory, "no model_set.json"),
])
def test_a_bad_artifact_is_refused_and_the_running_set_keeps_serving(served, first, artifacts, natives, control, tmp_path, damage, message):
    running = current_manifest(served)
    before = repository_versions(served)
    directory = bad_copy(artifacts[1], tmp_path)
    damage(directory)
    with pytest.raises(PublishError, match=f"publish refused .*{message}"):
        publish(served, directory, control_topic=control)
    assert current_manifest(served) == running
    assert repository_versions(served) == before
    assert_serves(served, running, natives[0] if running.model_set == first.model_set else natives[1])


def test_a_version_whose_served_scores_differ_is_withdrawn(served, first, artifacts, natives, control, tmp_path, monkeypatch):
    # A model file that loads in Triton but was trained on 8 features, with
    # the in-process check skipped: Triton must catch it, and publish must
    # take the new versions away again.
    running = current_manifest(served)
    before = repository_versions(served)
    directory = bad_copy(artifacts[1], tmp_path)
    train_lightgbm(n_features=N_FEATURES + 2).save_model(str(directory / "model_set" / "lightgbm" / "model.txt"))
    monkeypatch.setattr(
        "models.publish.publisher.check_artifact_isolated",
        lambda _dir: {m: MemberCheck(0.0, False) for m in ("lightgbm", "xgboost", "lstm")},
    )
    message = "warming lightgbm version \\d+ through Triton failed: .*FEATURES must have shape \\[N, 8\\], got \\[512, 6\\]"
    with pytest.raises(PublishError, match=message):
        publish(served, directory, control_topic=control)
    assert current_manifest(served) == running
    assert repository_versions(served) == before
    models = {(m["name"], m.get("version")): m.get("state") for m in TritonServer(served).models()}
    assert all(models[(m.name, str(m.version))] == "READY" for m in running.members)
    assert_serves(served, running, natives[0] if running.model_set == first.model_set else natives[1])


def test_an_unreachable_control_topic_withdraws_the_new_versions(served, first, artifacts, natives, tmp_path):
    from signalml.services.process import free_port

    running = current_manifest(served)
    before = repository_versions(served)
    offline = served.model_copy(update={"kafka": served.kafka.model_copy(update={"port": free_port()})})
    with pytest.raises(PublishError, match="control topic .*(no acknowledgement|refused|failed)"):
        publish(offline, artifacts[1], control_topic="control", control_timeout_s=2)
    assert current_manifest(served) == running
    assert repository_versions(served) == before
    stored = sorted(p.name for p in (served.triton_repository / "_model_sets").glob("ms-*.json"))
    assert stored == sorted(f"{h['model_set']}.json" for h in ModelSetStore(served.triton_repository).history() if h["action"] == "publish")
    assert_serves(served, running, natives[0] if running.model_set == first.model_set else natives[1])


def test_old_versions_are_retired_after_the_switch_keeping_three_and_the_previous_set(served, first, artifacts, control):
    manifests = []
    while max(repository_versions(served)["lightgbm"]) < 4:
        manifests.append(publish(served, artifacts[len(manifests) % 2], control_topic=control))
    current = current_manifest(served)
    present = repository_versions(served)
    newest = max(present["lightgbm"])
    assert present == {name: [newest - 2, newest - 1, newest] for name in present}
    assert {m.version for m in current.members} == {newest}
    state = {(m["name"], m.get("version")): m.get("state") for m in TritonServer(served).models()}
    assert state[("lightgbm", str(newest - 3))] != "READY"  # unloaded
    assert all(state[("lightgbm", str(v))] == "READY" for v in present["lightgbm"])
    # Rolling back walks back through the kept sets; a set whose versions
    # were retired is refused, and the refusal changes nothing.
    last = current
    while True:
        try:
            last = rollback(served, control_topic=control)
        except PublishError as exc:
            assert f"no longer in the repository: lightgbm version {newest - 3}" in str(exc)
            break
        assert min(m.version for m in last.members) >= newest - 2
    assert current_manifest(served) == last


def test_rollback_without_a_previous_set_is_refused(served, first, tmp_path):
    with pytest.raises(PublishError, match="rollback: no model set was published"):
        rollback(private_settings(tmp_path), control_topic="unused")
    store = ModelSetStore(served.triton_repository)
    oldest = store.read(store.history()[0]["model_set"])
    assert oldest.previous is None
