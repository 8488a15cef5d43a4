"""The engine's Triton client against a real Triton: members in parallel at
their pinned versions, equal to native predictions; errors of our own
classes; latency histograms per model. A private Triton serves two
versions of each member of the tiny model set (no Kafka needed)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from models.export import read_artifact
from models.export.tolerance import compare
from models.export.writer import export_model_set
from models.publish import build_manifest
from models.triton_backend import ServingOptions
from stream.inference import InferenceClient, InferenceTimeout, InvalidInput, ModelNotReady, SyncInferenceClient
from tests.unit.serving.artifacts import N_FEATURES, SEQUENCE_LENGTH, cached_artifact, rows, sequences
from tests.unit.serving.servers import native_scores, private_triton

pytestmark = pytest.mark.integration

X = rows(300, seed=21)
S = sequences(300, seed=22)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """Versions 1 (variant 0) and 2 (variant 1) of every member, loaded."""
    artifacts = {v: cached_artifact(tmp_path_factory, v) for v in (0, 1)}
    with private_triton(tmp_path_factory.mktemp("triton")) as server:
        repository = server.settings.triton_repository
        manifests = {}
        for variant, directory in artifacts.items():
            artifact = read_artifact(directory)
            exported = export_model_set(artifact, repository, "cpu", ServingOptions(max_batch_size=1024))
            manifests[variant] = build_manifest(artifact, {e.name: e.version for e in exported}, previous=None)
        for name in ("lightgbm", "xgboost", "lstm"):
            server.load_model(name)
        natives = {v: native_scores(d, X, S) for v, d in artifacts.items()}
        yield server.settings, manifests, natives


def assert_equal_to_native(scores, manifest, native, rows_=slice(None)):
    for member in manifest.members:
        assert scores[member.name].dtype == np.float64 and scores[member.name].ndim == 1
        problem, _ = compare(member.kind, "cpu", scores[member.name], native[member.name][rows_])
        assert problem is None, f"{member.name} v{member.version}: {problem}"


def test_every_member_is_scored_at_its_pinned_version(served):
    settings, manifests, natives = served
    registry = CollectorRegistry()
    with SyncInferenceClient.from_settings(settings, registry=registry) as client:
        for variant in (0, 1):
            scores = client.score(manifests[variant], X, S)
            assert set(scores) == {"lightgbm", "xgboost", "lstm"}
            assert_equal_to_native(scores, manifests[variant], natives[variant])
        assert client.ready(manifests[0]) == {"lightgbm": True, "xgboost": True, "lstm": True}
    for name in ("lightgbm", "xgboost", "lstm"):
        assert registry.get_sample_value("signalml_triton_latency_seconds_count", {"model": name}) == 2
    assert registry.get_sample_value("signalml_triton_fanout_seconds_count") == 2


def test_a_cross_section_larger_than_the_batch_limit_is_split(served):
    settings, manifests, natives = served
    with SyncInferenceClient.from_settings(settings, max_batch_size=64, registry=CollectorRegistry()) as client:
        assert_equal_to_native(client.score(manifests[1], X, S), manifests[1], natives[1])


def test_longer_sequences_are_cut_to_the_model_s_steps(served):
    settings, manifests, natives = served
    padded = np.concatenate([np.ones((len(S), 4, N_FEATURES), np.float32), S], axis=1)
    with SyncInferenceClient.from_settings(settings, registry=CollectorRegistry()) as client:
        scores = client.infer("lstm", 1, padded)
    problem, _ = compare("lstm", "cpu", scores, natives[0]["lstm"])
    assert problem is None and padded.shape[1] == SEQUENCE_LENGTH + 4


def test_float64_rows_are_sent_as_float32(served):
    settings, _, natives = served
    with SyncInferenceClient.from_settings(settings, registry=CollectorRegistry()) as client:
        scores = client.infer("xgboost", 1, X.astype(np.float64))
    assert compare("xgboost", "cpu", scores, natives[0]["xgboost"])[0] is None


def test_an_empty_cross_section_gives_empty_scores(served):
    settings, manifests, _ = served
    with SyncInferenceClient.from_settings(settings, registry=CollectorRegistry()) as client:
        scores = client.score(manifests[0], X[:0], S[:0])
    assert all(v.shape == (0,) for v in scores.values())


def test_a_version_that_is_not_loaded_is_model_not_ready(served):
    settings, _, _ = served
    with SyncInferenceClient.from_settings(settings, retries=0, registry=CollectorRegistry()) as client:
        with pytest.raises(ModelNotReady, match="model lightgbm version 9"):
            client.infer("lightgbm", 9, X[:2])
        with pytest.raises(ModelNotReady, match="model nothing_here version 1"):
            client.infer("nothing_here", 1, X[:2])


def test_a_request_the_model_rejects_is_invalid_input_and_not_retried(served):
    settings, _, _ = served
    registry = CollectorRegistry()
    with SyncInferenceClient.from_settings(settings, retries=3, registry=registry) as client:
        with pytest.raises(InvalidInput, match=f"FEATURES must have shape \\[N, {N_FEATURES}\\], got \\[2, {N_FEATURES + 1}\\]"):
            client.infer("lightgbm", 1, rows(2, n_features=N_FEATURES + 1))
    assert registry.get_sample_value("signalml_triton_errors_total", {"model": "lightgbm", "error": "InvalidInput"}) == 1


def test_a_deadline_shorter_than_the_model_needs_is_a_timeout(served):
    settings, manifests, _ = served
    big = np.concatenate([X] * 20)  # 6,000 rows: far more than half a millisecond of work
    options = dict(timeout_s=0.0005, retries=1, max_batch_size=1024, registry=CollectorRegistry())
    with SyncInferenceClient.from_settings(settings, **options) as client:
        with pytest.raises(InferenceTimeout, match="no answer within the timeout") as caught:
            client.infer("lightgbm", 1, big)
    assert "after 2 attempts" in "".join(caught.value.__notes__)


def test_the_async_client_scores_many_cross_sections_concurrently(served):
    settings, manifests, natives = served

    async def run():
        async with InferenceClient.from_settings(settings, registry=CollectorRegistry()) as client:
            return await asyncio.gather(*(client.score(manifests[i % 2], X[i : i + 40], S[i : i + 40]) for i in range(16)))

    for i, scores in enumerate(asyncio.run(run())):
        assert_equal_to_native(scores, manifests[i % 2], natives[i % 2], slice(i, i + 40))


def test_the_sync_client_works_inside_a_running_event_loop(served):
    settings, manifests, natives = served

    async def inside():
        with SyncInferenceClient.from_settings(settings, registry=CollectorRegistry()) as client:
            return client.score(manifests[0], X, S)

    assert_equal_to_native(asyncio.run(inside()), manifests[0], natives[0])


def registered_regions(settings) -> set[str]:
    """Names of the system shared-memory regions Triton has registered."""
    import tritonclient.grpc as grpc

    status = grpc.InferenceServerClient(settings.triton.grpc_url).get_system_shared_memory_status(as_json=True)
    return set(status.get("regions", {}))


def test_inputs_through_shared_memory_give_exactly_the_scores_of_inputs_in_the_request(served):
    settings, manifests, natives = served
    with SyncInferenceClient.from_settings(settings, shared_memory=False, registry=CollectorRegistry()) as wire:
        expected = wire.score(manifests[1], X, S)
        split = wire.score(manifests[1], X[:200], S[:200])
    with SyncInferenceClient.from_settings(settings, shared_memory=True, registry=CollectorRegistry()) as client:
        scores = client.score(manifests[1], X, S)
        name = client.client.endpoints[0]._inputs.name
        assert name in registered_regions(settings)  # the scores did come through the region
        for member in expected:
            np.testing.assert_array_equal(scores[member], expected[member])
        assert_equal_to_native(scores, manifests[1], natives[1])
        # A smaller cross-section after a larger one reads only its own rows.
        smaller = client.score(manifests[1], X[:200], S[:200])
        for member in split:
            np.testing.assert_array_equal(smaller[member], split[member])
    assert name not in registered_regions(settings)  # closing the client unregisters it


def test_the_region_grows_for_a_larger_cross_section_and_splits_still_apply(served):
    settings, manifests, natives = served
    tiles = 150  # 45,000 rows: more than the first 4 MiB region holds
    big_x, big_s = np.concatenate([X] * tiles), np.concatenate([S] * tiles)
    with SyncInferenceClient.from_settings(settings, shared_memory=True, max_batch_size=1024,
                                           registry=CollectorRegistry()) as client:
        client.score(manifests[0], X[:10], S[:10])
        first = client.client.endpoints[0]._inputs.capacity
        scores = client.score(manifests[0], big_x, big_s)
        assert big_s.nbytes > first and client.client.endpoints[0]._inputs.capacity > big_s.nbytes
    for member in scores:
        problem, _ = compare(member, "cpu", scores[member], np.tile(natives[0][member], tiles))
        assert problem is None, (member, problem)


def test_a_registration_triton_lost_is_made_again(served):
    """A restarted Triton knows no region: the client registers its region
    again and the request goes through."""
    import tritonclient.grpc as grpc

    settings, manifests, natives = served
    with SyncInferenceClient.from_settings(settings, shared_memory=True, registry=CollectorRegistry()) as client:
        client.score(manifests[0], X, S)
        grpc.InferenceServerClient(settings.triton.grpc_url).unregister_system_shared_memory()  # all regions
        assert client.client.endpoints[0]._inputs.name not in registered_regions(settings)
        assert_equal_to_native(client.score(manifests[0], X, S), manifests[0], natives[0])
        assert client.client.endpoints[0]._inputs.name in registered_regions(settings)
