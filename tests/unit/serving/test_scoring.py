"""The Python backend's scorers (scoring.py), run in-process: each format
scores like its native library, and deep models pick their runtime at load
from what the environment offers. The GPU branch is exercised by forcing
the selection with what this machine has: the CUDA provider list for ONNX
Runtime (which then runs on its CPU provider) and the torch runner on the
CPU with the same batch-bucket padding it uses before CUDA-graph replay."""

from __future__ import annotations


import numpy as np
import pytest

from models.export.torch_source import verified_torch_files
from models.triton_backend import scoring
from models.triton_backend.repository import write_version
from tests.unit.serving.artifacts import N_FEATURES, SEQUENCE_LENGTH, rows, sequences

CPU_ONLY = scoring.Availability(ort_providers=("CPUExecutionProvider",))
ORT_CUDA = scoring.Availability(ort_providers=("CUDAExecutionProvider", "CPUExecutionProvider"))
TORCH_CUDA = scoring.Availability(ort_providers=("CPUExecutionProvider",), torch_cuda=True, torch_installed=True)
TORCH_CPU = scoring.Availability(ort_providers=("CPUExecutionProvider",), torch_installed=True)


@pytest.fixture(scope="module")
def lstm_version(artifact, tmp_path_factory):
    """A version folder of the LSTM as the cpu target writes it, torch files included."""
    member = next(m for m in artifact.members if m.kind == "lstm")
    files = {"model.onnx": member.model_file, **verified_torch_files(artifact, member)}
    assert set(files) == {"model.onnx", "architecture.py", "config.json", "model.safetensors"}
    return write_version(tmp_path_factory.mktemp("repo") / "lstm", 1, files), member


@pytest.mark.parametrize(
    "available, has_torch_files, expected",
    [
        (CPU_ONLY, False, "onnxruntime-cpu"),
        (CPU_ONLY, True, "onnxruntime-cpu"),
        (TORCH_CPU, True, "onnxruntime-cpu"),
        (ORT_CUDA, False, "onnxruntime-cuda"),
        (ORT_CUDA, True, "onnxruntime-cuda"),
        (TORCH_CUDA, True, "torch-cuda"),
        (TORCH_CUDA, False, "onnxruntime-cpu"),
        (scoring.Availability(("CUDAExecutionProvider", "CPUExecutionProvider"), True, True), True, "torch-cuda"),
    ],
)
def test_auto_prefers_the_gpu_then_onnx_runtime(available, has_torch_files, expected):
    runtime, reason = scoring.choose_runtime("auto", available, has_torch_files=has_torch_files)
    assert runtime == expected and reason


@pytest.mark.parametrize("requested, available, message", [
    ("torch-cuda", TORCH_CPU, "torch sees no CUDA device"),
    ("onnxruntime-cuda", CPU_ONLY, "no CUDAExecutionProvider"),
    ("torch-cpu", CPU_ONLY, "torch is not installed"),
    ("tensorflow", CPU_ONLY, "unknown runtime"),
])
def test_an_explicit_runtime_the_environment_lacks_is_refused(requested, available, message):
    with pytest.raises(ValueError, match=message):
        scoring.choose_runtime(requested, available, has_torch_files=True)


def test_buckets_are_powers_of_two_up_to_the_maximum():
    assert scoring.batch_buckets(100) == (8, 16, 32, 64, 100)
    assert scoring.batch_buckets(8192)[-3:] == (2048, 4096, 8192)


def test_this_machine_runs_deep_models_on_onnx_runtime_cpu(lstm_version, artifact):
    folder, member = lstm_version
    logged: list[str] = []
    scorer = scoring.OnnxScorer(folder, {}, logged.append)
    assert scorer.runtime == "onnxruntime-cpu"  # no GPU here
    assert "onnxruntime-cpu" in logged[0] and "no CUDA device" in logged[0]
    out = scorer.run(artifact.golden_input(member))
    assert out["SCORE"].shape == (len(artifact.golden_input(member)), 1) and out["SCORE"].dtype == np.float32
    assert out["HORIZONS"].shape == (out["SCORE"].shape[0], 3)
    np.testing.assert_allclose(out["SCORE"][:, 0], artifact.golden_scores(member), rtol=1e-4, atol=1e-5)


def test_the_gpu_onnx_branch_builds_its_session_with_the_cuda_provider_first(lstm_version, artifact):
    folder, member = lstm_version
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):  # ONNX Runtime falls back to its CPU provider
        scorer = scoring.OnnxScorer(folder, {}, available=ORT_CUDA, device_id=0)
    assert scorer.runtime == "onnxruntime-cuda"
    assert scorer.runner.providers == ["CPUExecutionProvider"]
    out = scorer.run(artifact.golden_input(member))
    np.testing.assert_allclose(out["SCORE"][:, 0], artifact.golden_scores(member), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n", [1, 7, 8, 9, 64, 100])
def test_the_torch_branch_pads_to_its_bucket_and_returns_each_row(lstm_version, artifact, n):
    folder, member = lstm_version
    scorer = scoring.OnnxScorer(folder, {"runtime": "torch-cpu"}, available=TORCH_CPU, max_batch_size=128)
    assert scorer.runtime == "torch-cpu"
    assert isinstance(scorer.runner, scoring.TorchRunner) and scorer.runner.cuda_graphs is False
    x = np.concatenate([artifact.golden_input(member)] * 2)[:n]
    reference = scoring.OnnxScorer(folder, {}, available=CPU_ONLY).run(x)
    out = scorer.run(x)
    assert out["SCORE"].shape == (n, 1)
    np.testing.assert_allclose(out["SCORE"], reference["SCORE"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["HORIZONS"], reference["HORIZONS"], rtol=1e-4, atol=1e-5)


def test_a_batch_above_the_largest_bucket_is_refused(lstm_version):
    folder, _ = lstm_version
    scorer = scoring.OnnxScorer(folder, {"runtime": "torch-cpu"}, available=TORCH_CPU, max_batch_size=16)
    with pytest.raises(ValueError, match="exceed the largest batch bucket 16"):
        scorer.run(sequences(17))


def test_longer_sequences_keep_their_last_steps_and_shorter_ones_are_refused(lstm_version):
    folder, _ = lstm_version
    scorer = scoring.OnnxScorer(folder, {}, available=CPU_ONLY)
    assert scorer.input_dims == (SEQUENCE_LENGTH, N_FEATURES)
    long = sequences(4, length=SEQUENCE_LENGTH + 3)
    np.testing.assert_array_equal(scorer.adapt(long), long[:, -SEQUENCE_LENGTH:])
    with pytest.raises(ValueError, match=f"needs sequences of {SEQUENCE_LENGTH} steps"):
        scorer.adapt(sequences(4, length=SEQUENCE_LENGTH - 1))
    with pytest.raises(ValueError, match="must have shape"):
        scorer.adapt(rows(4))


@pytest.mark.parametrize("kind, file_name", [("lightgbm", "model.txt"), ("xgboost", "model.json")])
def test_gradient_boosting_scorers_equal_their_native_predictions(artifact, tmp_path, kind, file_name):
    member = next(m for m in artifact.members if m.kind == kind)
    folder = write_version(tmp_path / kind, 1, {file_name: member.model_file})
    scorer = scoring.SCORERS[kind](folder, {"num_threads": "1"})
    assert scorer.input_dims == (N_FEATURES,)
    out = scorer.run(artifact.golden["tabular"])
    np.testing.assert_allclose(out["SCORE"][:, 0], artifact.golden_scores(member), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match=f"must have shape \\[N, {N_FEATURES}\\]"):
        scorer.adapt(rows(3, n_features=N_FEATURES + 1))


def test_a_version_without_a_model_file_says_what_it_looked_for(tmp_path):
    (tmp_path / "1").mkdir()
    with pytest.raises(FileNotFoundError, match="model.txt"):
        scoring.LightGBMScorer(tmp_path / "1", {})
    with pytest.raises(ValueError, match="plain file name"):
        scoring.LightGBMScorer(tmp_path / "1", {"model_file": "../model.txt"})


def test_the_onnx_scorer_serves_the_ridge_members_tabular_graph(tmp_path):
    from tests.unit.serving.artifacts import build_ridge

    ridge = build_ridge()
    ridge.save(tmp_path)
    scorer = scoring.OnnxScorer(tmp_path, {}, available=CPU_ONLY)
    assert scorer.runtime == "onnxruntime-cpu" and scorer.input_dims == (N_FEATURES,)
    x = rows(40)
    x[3, 1] = np.nan  # a missing feature is the cross-section's mean, 0
    out = scorer.run(scorer.adapt(x))
    assert set(out) == {"SCORE"} and out["SCORE"].shape == (40, 1)
    np.testing.assert_allclose(out["SCORE"][:, 0], ridge.predict(x), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match=f"must have shape \\[N, {N_FEATURES}\\]"):
        scorer.adapt(x[:, :3])
