"""config.pbtxt of both targets parses against Triton's ModelConfig protobuf
(tritonclient's generated model_config_pb2) and says what each target needs."""

from __future__ import annotations

import pytest
from tritonclient.grpc import model_config_pb2

from models.triton_backend import (
    ServingOptions,
    Tensor,
    parse_config,
    render_config,
    render_cpu_config,
    render_fil_config,
    render_onnx_config,
    render_tensorrt_plan_config,
)
from signalml.config import load_settings

GPU = model_config_pb2.ModelInstanceGroup.KIND_GPU
CPU = model_config_pb2.ModelInstanceGroup.KIND_CPU


def params(config) -> dict[str, str]:
    return {k: v.string_value for k, v in config.parameters.items()}


@pytest.mark.parametrize("kind, model_type, file_name", [("lightgbm", "lightgbm", "model.txt"), ("xgboost", "xgboost_json", "xgboost.json")])
def test_fil_config_serves_a_regressor_on_the_gpu(kind, model_type, file_name):
    config = parse_config(render_fil_config("ranker", 32, kind, ServingOptions(max_batch_size=4096, instance_count=2)))
    assert config.backend == "fil" and config.platform == ""
    assert params(config)["model_type"] == model_type
    assert params(config)["output_class"] == "false"
    assert config.default_model_filename == file_name
    assert [(t.name, list(t.dims), t.data_type) for t in config.input] == [("input__0", [32], model_config_pb2.TYPE_FP32)]
    assert [(t.name, list(t.dims)) for t in config.output] == [("output__0", [1])]
    assert config.max_batch_size == 4096
    assert [(g.kind, g.count) for g in config.instance_group] == [(GPU, 2)]
    assert config.version_policy.HasField("all")


def test_onnx_config_uses_onnx_runtime_with_the_tensorrt_accelerator():
    options = ServingOptions(max_batch_size=8192, preferred_batch_sizes=(500, 5000))
    text = render_onnx_config(
        "lstm", [Tensor("SEQUENCES", (20, 32))], [Tensor("SCORE", (1,)), Tensor("HORIZONS", (3,))], options
    )
    config = parse_config(text)
    assert config.platform == "onnxruntime_onnx"
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert [a.name for a in accelerators] == ["tensorrt"]
    trt = dict(accelerators[0].parameters)
    assert trt["precision_mode"] == "FP32"
    assert trt["trt_profile_min_shapes"] == "SEQUENCES:1x20x32"
    assert trt["trt_profile_opt_shapes"] == "SEQUENCES:5000x20x32"
    assert trt["trt_profile_max_shapes"] == "SEQUENCES:8192x20x32"
    assert trt["trt_engine_cache_enable"] == "1"
    assert [(t.name, list(t.dims)) for t in config.input] == [("SEQUENCES", [20, 32])]
    assert [(t.name, list(t.dims)) for t in config.output] == [("SCORE", [1]), ("HORIZONS", [3])]
    assert list(config.dynamic_batching.preferred_batch_size) == [500, 5000]
    assert config.instance_group[0].kind == GPU


def test_onnx_config_needs_fixed_dims_for_tensorrt_profiles():
    with pytest.raises(ValueError, match="fixed input dims"):
        render_onnx_config("lstm", [Tensor("SEQUENCES", (-1, 32))], [Tensor("SCORE", (1,))])


def test_tensorrt_plan_config_parses():
    config = parse_config(
        render_tensorrt_plan_config("lstm", [Tensor("SEQUENCES", (20, 32))], [Tensor("SCORE", (1,))])
    )
    assert config.platform == "tensorrt_plan" and config.default_model_filename == "model.plan"


@pytest.mark.parametrize("kind, fmt, tensor", [
    ("lightgbm", "lightgbm", "FEATURES"), ("xgboost", "xgboost", "FEATURES"), ("ridge", "onnx", "FEATURES"),
    ("lstm", "onnx", "SEQUENCES"), ("tft", "onnx", "SEQUENCES"),
])
def test_cpu_config_is_a_python_model_whose_versions_check_their_own_shapes(kind, fmt, tensor):
    config = parse_config(render_cpu_config(kind, kind))
    assert config.backend == "python"
    assert params(config)["format"] == fmt
    assert config.input[0].name == tensor and all(d == -1 for d in config.input[0].dims)
    assert config.output[0].name == "SCORE" and list(config.output[0].dims) == [1]
    assert config.instance_group[0].kind == CPU
    assert config.version_policy.HasField("all")


def test_batching_and_instances_come_from_the_serving_settings():
    settings = load_settings(
        overrides={
            "serving": {
                "max_batch_size": 6000,
                "instance_count": 3,
                "dynamic_batching": {"enabled": True, "max_queue_delay_us": 750, "preferred_batch_sizes": [500, 5000]},
            }
        }
    )
    config = parse_config(render_cpu_config("lightgbm", "lightgbm", ServingOptions.from_settings(settings)))
    assert config.max_batch_size == 6000
    assert config.instance_group[0].count == 3
    assert config.dynamic_batching.max_queue_delay_microseconds == 750
    assert list(config.dynamic_batching.preferred_batch_size) == [500, 5000]
    off = load_settings(overrides={"serving": {"dynamic_batching": {"enabled": False}}})
    assert not parse_config(render_cpu_config("x", "xgboost", ServingOptions.from_settings(off))).HasField("dynamic_batching")


def test_preferred_batch_sizes_above_the_maximum_are_refused():
    with pytest.raises(ValueError, match="preferred batch sizes"):
        ServingOptions(max_batch_size=100, preferred_batch_sizes=(500,))


def test_the_tabular_helper_still_declares_an_explicit_feature_count():
    config = parse_config(render_config("lgb", 8, max_batch_size=1024))
    assert list(config.input[0].dims) == [8] and config.max_batch_size == 1024


@pytest.mark.parametrize("name", ["", "a/b", "../x", "a.b", "x" * 65, "naïve", "a b", "model\n"])
def test_configs_refuse_unsafe_model_names(name):
    with pytest.raises(ValueError, match="invalid model name"):
        render_cpu_config(name, "lightgbm")


def test_a_config_that_does_not_parse_says_so():
    with pytest.raises(ValueError, match="does not parse as Triton's ModelConfig"):
        parse_config('name: "x" backend: "fil" no_such_field: 1')
