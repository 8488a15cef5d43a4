"""The configs built as Triton's ModelConfig protobuf say exactly what the
hand-written ``config.pbtxt`` text said before: ``config_reference/`` holds
that text, rendered for every member kind of both targets, and each case
parses to the same ModelConfig as what the renderers write now."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.triton_backend import (ServingOptions, Tensor, parse_config, render_config, render_cpu_config,
                                   render_fil_config, render_onnx_config, render_tensorrt_plan_config)
from models.triton_backend.configs import FEATURES, HORIZONS, SCORE, SEQUENCES, render_python_config

REFERENCE = Path(__file__).with_name("config_reference")
TUNED = ServingOptions(max_batch_size=6000, instance_count=3, max_queue_delay_us=750, preferred_batch_sizes=(500, 5000),
                       num_threads=2)
UNBATCHED = ServingOptions(max_batch_size=64, dynamic_batching=False)
SEQUENCE_IN = [Tensor(SEQUENCES, (20, 32))]
SEQUENCE_OUT = [Tensor(SCORE, (1,)), Tensor(HORIZONS, (3,))]
TABULAR_IN, TABULAR_OUT = [Tensor(FEATURES, (30,))], [Tensor(SCORE, (1,))]
OPTIONS = {"default": ServingOptions(), "tuned": TUNED, "unbatched": UNBATCHED}


def cases() -> dict[str, str]:
    """Case name -> the config text the renderers write now."""
    out = {}
    for kind in ("lightgbm", "xgboost", "ridge", "lstm", "tft"):
        for label, options in OPTIONS.items():
            out[f"cpu-{kind}-{label}"] = render_cpu_config(f"m_{kind}", kind, options)
    for kind in ("lightgbm", "xgboost"):
        out[f"gpu-fil-{kind}"] = render_fil_config(f"m_{kind}", 30, kind, TUNED)
        out[f"gpu-fil-{kind}-sparse"] = render_fil_config(f"m_{kind}", 30, kind, UNBATCHED, storage_type="SPARSE")
    out["gpu-onnx-ridge"] = render_onnx_config("m_ridge", TABULAR_IN, TABULAR_OUT, ServingOptions())
    out["gpu-onnx-lstm"] = render_onnx_config("m_lstm", SEQUENCE_IN, SEQUENCE_OUT, TUNED)
    out["gpu-onnx-tft-fp16"] = render_onnx_config("m_tft", SEQUENCE_IN, SEQUENCE_OUT, UNBATCHED, precision="FP16",
                                                  workspace_bytes=1 << 28, engine_cache_path="/cache/trt")
    out["gpu-plan-lstm"] = render_tensorrt_plan_config("m_lstm", SEQUENCE_IN, SEQUENCE_OUT, TUNED)
    out["cpu-tabular-helper"] = render_config("m_tab", 8, "xgboost", max_batch_size=1024,
                                              preferred_batch_sizes=(16, 256), num_threads=4)
    mask = Tensor("MASK", (-1,), "TYPE_BOOL", optional=True)
    out["cpu-python-parameters"] = render_python_config("m_opt", "onnx", [Tensor(FEATURES, (-1,)), mask], TABULAR_OUT,
                                                        TUNED, parameters={"extra": "x y"})
    return out


CASES = cases()


def test_every_reference_text_has_its_case_and_every_case_its_reference():
    assert sorted(p.stem for p in REFERENCE.glob("*.pbtxt")) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_built_config_equals_the_hand_written_text(case):
    reference = parse_config((REFERENCE / f"{case}.pbtxt").read_text())
    built = parse_config(CASES[case])
    assert built == reference, f"{case}:\n{built}\n!=\n{reference}"


def test_an_output_cannot_be_optional():
    with pytest.raises(ValueError, match="only inputs"):
        render_python_config("m", "onnx", TABULAR_IN, [Tensor(SCORE, (1,), optional=True)])
