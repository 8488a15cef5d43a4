"""The deep members' ONNX graph: the served contract, and ONNX Runtime
scoring exactly what torch scores."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime
import pytest

from .conftest import DEEP_KINDS, HORIZONS, N_FEATURES, TARGET, fitted, saved_fit

TOLERANCE = 1e-5


@pytest.fixture(scope="module", params=DEEP_KINDS)
def exported(request, market, tmp_path_factory):
    directory, files = saved_fit(request.param, market, tmp_path_factory)
    return fitted(request.param, market, "signal").member, directory / files["onnx"]


def test_graph_declares_sequences_in_and_score_and_horizons_out(exported):
    member, path = exported
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (sequences,) = session.get_inputs()
    assert sequences.name == "SEQUENCES" and sequences.type == "tensor(float)"
    assert isinstance(sequences.shape[0], str) and sequences.shape[1:] == [member.sequence_length, N_FEATURES]
    outputs = {o.name: o for o in session.get_outputs()}
    assert list(outputs) == ["SCORE", "HORIZONS"]
    assert outputs["SCORE"].shape[1:] == [1] and outputs["HORIZONS"].shape[1:] == [len(HORIZONS)]
    assert all(o.type == "tensor(float)" for o in outputs.values())


@pytest.mark.parametrize("batch", [1, 37])
def test_onnx_runtime_equals_torch(exported, market, batch):
    member, path = exported
    sequences = market.sequence("test").materialize(np.arange(batch))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    score, horizons = session.run(["SCORE", "HORIZONS"], {"SEQUENCES": sequences})
    expected = member.predict_horizons(sequences)
    assert score.shape == (batch, 1) and horizons.shape == (batch, len(HORIZONS))
    assert score.dtype == np.float32
    np.testing.assert_allclose(horizons, expected, rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(score[:, 0], expected[:, TARGET], rtol=0, atol=TOLERANCE)
    np.testing.assert_array_equal(score[:, 0], horizons[:, TARGET])


def test_the_graph_is_one_self_contained_file(exported):
    _, path = exported
    assert sorted(p.name for p in path.parent.iterdir()) == ["config.json", "model.onnx", "model.safetensors"]
