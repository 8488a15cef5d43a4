"""``config.pbtxt`` for the two deployment targets of one artifact, built as
Triton's ``ModelConfig`` protobuf (the ``model_config_pb2`` tritonclient
ships) and written in protobuf text format.

* **cpu** (this machine, CI): every member is a ``backend: "python"`` model
  running ``model.py``; the ``format`` parameter picks the scorer (LightGBM
  text, XGBoost UBJSON/JSON, ONNX through ONNX Runtime).
* **gpu** (stock Triton on GPU hosts): GBMs on the FIL backend
  (``input__0``/``output__0`` are the names FIL requires), deep models and
  the ridge member's linear graph as ``onnxruntime_onnx`` with the
  TensorRT execution accelerator, or as a ``tensorrt_plan`` where a plan
  was built.

Every config declares ``version_policy { all { } }``: publish keeps the
versions of the running, the new and the previous model sets loaded side by
side, and clients pin the version they want. A config belongs to the model,
not to a version, so the cpu target declares the non-batch dims ``-1`` and
each version checks its own feature count when it loads (a new feature set
must not re-declare the dims of the versions still serving).

Batching, instance counts and batch sizes come from ``settings.serving``
(:meth:`ServingOptions.from_settings`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from models.triton_backend.names import validate_model_name

FEATURES, SEQUENCES, SCORE, HORIZONS = "FEATURES", "SEQUENCES", "SCORE", "HORIZONS"
FIL_INPUT, FIL_OUTPUT = "input__0", "output__0"
PYTHON_FORMATS = ("lightgbm", "xgboost", "onnx")
FIL_MODEL_TYPES = {"lightgbm": "lightgbm", "xgboost": "xgboost_json"}
FIL_FILE_NAMES = {"lightgbm": "model.txt", "xgboost": "xgboost.json"}


@dataclass(frozen=True)
class ServingOptions:
    """What ``settings.serving`` says about one served model.

    ``max_queue_delay_us`` is microseconds; ``num_threads`` 0 leaves the
    library's default thread count (Python backend only)."""

    max_batch_size: int = 8192
    instance_count: int = 1
    dynamic_batching: bool = True
    max_queue_delay_us: int = 200
    preferred_batch_sizes: tuple[int, ...] = ()
    num_threads: int = 0

    def __post_init__(self) -> None:
        if self.max_batch_size < 1 or self.instance_count < 1:
            raise ValueError("max_batch_size and instance_count must be >= 1")
        if any(b < 1 or b > self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError(
                f"preferred batch sizes {list(self.preferred_batch_sizes)} must lie in [1, {self.max_batch_size}]"
            )

    @classmethod
    def from_settings(cls, settings, **overrides) -> "ServingOptions":
        serving = settings.serving
        values = dict(
            max_batch_size=serving.max_batch_size,
            instance_count=serving.instance_count,
            dynamic_batching=serving.dynamic_batching.enabled,
            max_queue_delay_us=serving.dynamic_batching.max_queue_delay_us,
            preferred_batch_sizes=tuple(serving.dynamic_batching.preferred_batch_sizes),
        )
        values.update(overrides)
        return cls(**values)


@dataclass(frozen=True)
class Tensor:
    """One input or output: name, Triton data type, dims without the batch axis."""

    name: str
    dims: tuple[int, ...]
    data_type: str = "TYPE_FP32"
    optional: bool = field(default=False, compare=False)

    def as_input(self) -> model_config_pb2.ModelInput:
        return model_config_pb2.ModelInput(name=self.name, data_type=self.data_type, dims=self.dims,
                                           optional=self.optional)

    def as_output(self) -> model_config_pb2.ModelOutput:
        if self.optional:
            raise ValueError(f"output {self.name!r}: only inputs can be optional")
        return model_config_pb2.ModelOutput(name=self.name, data_type=self.data_type, dims=self.dims)


def _model_config(
    name: str,
    inputs: Iterable[Tensor],
    outputs: Iterable[Tensor],
    options: ServingOptions,
    kind: str,
    parameters: dict[str, str] | None = None,
    **fields,
) -> model_config_pb2.ModelConfig:
    """What every config holds: name, batching, tensors, instances, and
    ``version_policy { all { } }``; ``fields`` are ModelConfig's own (backend,
    platform, default_model_filename)."""
    validate_model_name(name)
    config = model_config_pb2.ModelConfig(
        name=name,
        max_batch_size=options.max_batch_size,
        input=[t.as_input() for t in inputs],
        output=[t.as_output() for t in outputs],
        instance_group=[model_config_pb2.ModelInstanceGroup(count=options.instance_count, kind=kind)],
        version_policy=model_config_pb2.ModelVersionPolicy(all=model_config_pb2.ModelVersionPolicy.All()),
        **fields,
    )
    if options.dynamic_batching:
        config.dynamic_batching.max_queue_delay_microseconds = options.max_queue_delay_us
        config.dynamic_batching.preferred_batch_size.extend(options.preferred_batch_sizes)
    for key, value in (parameters or {}).items():
        config.parameters[key].string_value = value
    return config


def _text(config: model_config_pb2.ModelConfig) -> str:
    return text_format.MessageToString(config)


# ---------------------------------------------------------------- cpu target


def render_python_config(
    name: str,
    fmt: str,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    options: ServingOptions = ServingOptions(),
    *,
    parameters: dict[str, str] | None = None,
) -> str:
    """A Python-backend model running ``model.py`` with scorer ``fmt``."""
    if fmt not in PYTHON_FORMATS:
        raise ValueError(f"unknown model format {fmt!r}; known: {list(PYTHON_FORMATS)}")
    params = {"format": fmt, "num_threads": str(options.num_threads), **(parameters or {})}
    return _text(_model_config(name, inputs, outputs, options, "KIND_CPU", params, backend="python"))


def render_config(
    name: str,
    n_features: int,
    fmt: str = "lightgbm",
    *,
    max_batch_size: int = 8192,
    instance_count: int = 1,
    dynamic_batching: bool = True,
    max_queue_delay_us: int = 200,
    preferred_batch_sizes: Sequence[int] = (),
    num_threads: int = 0,
) -> str:
    """Python-backend config of a tabular model: ``FEATURES`` FP32
    ``[-1, n_features]`` in, ``SCORE`` FP32 ``[-1, 1]`` out, one score per row
    (a batched output cannot be declared ``[-1]``; ``dims: [1]`` is the
    convention stock backends such as FIL use too, so clients flatten with
    ``reshape(-1)``). ``n_features`` -1 leaves the feature count to each
    version's model file."""
    if n_features < 1 and n_features != -1:
        raise ValueError("n_features must be >= 1 (or -1: read from each version's model file)")
    options = ServingOptions(
        max_batch_size=max_batch_size,
        instance_count=instance_count,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=tuple(preferred_batch_sizes),
        num_threads=num_threads,
    )
    return render_python_config(name, fmt, [Tensor(FEATURES, (n_features,))], [Tensor(SCORE, (1,))], options)


def render_cpu_config(name: str, kind: str, options: ServingOptions = ServingOptions()) -> str:
    """The cpu target's config of one model-set member of ``kind``
    (lightgbm, xgboost: tabular; ridge: tabular ONNX; lstm, tft: sequence
    ONNX). Dims other than the batch are ``-1``: each version checks its
    own shapes at load."""
    if kind in ("lightgbm", "xgboost"):
        return render_python_config(name, kind, [Tensor(FEATURES, (-1,))], [Tensor(SCORE, (1,))], options)
    if kind == "ridge":
        return render_python_config(name, "onnx", [Tensor(FEATURES, (-1,))], [Tensor(SCORE, (1,))], options)
    if kind in ("lstm", "tft"):
        outputs = [Tensor(SCORE, (1,)), Tensor(HORIZONS, (-1,))]
        return render_python_config(name, "onnx", [Tensor(SEQUENCES, (-1, -1))], outputs, options)
    raise ValueError(f"unknown member kind {kind!r}")


# ---------------------------------------------------------------- gpu target


def render_fil_config(
    name: str,
    n_features: int,
    kind: str,
    options: ServingOptions = ServingOptions(),
    *,
    storage_type: str = "AUTO",
) -> str:
    """Stock Triton's FIL backend on the GPU: a regressor/ranker (one raw
    score per row, ``output_class`` false). ``kind`` is ``lightgbm`` (LightGBM
    text, ``model.txt``) or ``xgboost`` (XGBoost JSON, ``xgboost.json``)."""
    if kind not in FIL_MODEL_TYPES:
        raise ValueError(f"FIL serves lightgbm or xgboost, not {kind!r}")
    if n_features < 1:
        raise ValueError("n_features must be >= 1")
    params = {
        "model_type": FIL_MODEL_TYPES[kind],
        "output_class": "false",
        "predict_proba": "false",
        "storage_type": storage_type,
    }
    return _text(_model_config(name, [Tensor(FIL_INPUT, (n_features,))], [Tensor(FIL_OUTPUT, (1,))], options,
                               "KIND_GPU", params, backend="fil", default_model_filename=FIL_FILE_NAMES[kind]))


def _trt_profile(tensor: Tensor, batch: int) -> str:
    return f"{tensor.name}:" + "x".join(str(d) for d in (batch, *tensor.dims))


def render_onnx_config(
    name: str,
    inputs: Sequence[Tensor],
    outputs: Sequence[Tensor],
    options: ServingOptions = ServingOptions(),
    *,
    precision: str = "FP32",
    workspace_bytes: int = 1 << 30,
    engine_cache_path: str = "/tmp/signalml-trt-cache",
) -> str:
    """Stock Triton's ONNX Runtime backend on the GPU with the TensorRT
    execution accelerator. The TensorRT optimisation profile spans batch 1
    to ``max_batch_size`` (optimum at the largest preferred batch size, else
    512); engines are cached so a reload does not rebuild them. ``precision``
    FP32 keeps served scores within the deep models' stated tolerance;
    FP16 is faster and needs a looser one."""
    if precision not in ("FP32", "FP16"):
        raise ValueError(f"precision must be FP32 or FP16, not {precision!r}")
    if any(d < 1 for t in inputs for d in t.dims):
        raise ValueError("the gpu target needs fixed input dims (TensorRT profiles)")
    opt = max(options.preferred_batch_sizes, default=min(512, options.max_batch_size))
    trt = {
        "precision_mode": precision,
        "max_workspace_size_bytes": str(workspace_bytes),
        "trt_engine_cache_enable": "1",
        "trt_engine_cache_path": engine_cache_path,
        "trt_profile_min_shapes": ",".join(_trt_profile(t, 1) for t in inputs),
        "trt_profile_opt_shapes": ",".join(_trt_profile(t, opt) for t in inputs),
        "trt_profile_max_shapes": ",".join(_trt_profile(t, options.max_batch_size) for t in inputs),
    }
    config = _model_config(name, inputs, outputs, options, "KIND_GPU", platform="onnxruntime_onnx",
                           default_model_filename="model.onnx")
    config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt", parameters=trt)
    return _text(config)


def render_tensorrt_plan_config(
    name: str, inputs: Sequence[Tensor], outputs: Sequence[Tensor], options: ServingOptions = ServingOptions()
) -> str:
    """Stock Triton's TensorRT backend serving ``model.plan`` (a plan is
    tied to the GPU model and TensorRT version it was built with)."""
    return _text(_model_config(name, inputs, outputs, options, "KIND_GPU", platform="tensorrt_plan",
                               default_model_filename="model.plan"))


def parse_config(text: str):
    """``text`` parsed into Triton's ``ModelConfig`` protobuf (the generated
    ``model_config_pb2`` that tritonclient ships); raises ValueError with the
    parser's message when it does not parse."""
    try:
        return text_format.Parse(text, model_config_pb2.ModelConfig())
    except text_format.ParseError as exc:
        raise ValueError(f"config.pbtxt does not parse as Triton's ModelConfig: {exc}") from None
