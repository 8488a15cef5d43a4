"""Scorers that ``model.py`` runs inside Triton's Python backend.

Copied beside ``model.py`` into every version folder; it runs in the server
venv (numpy < 2) and imports no Triton module, so tests import it directly.
One class per model file format, all with the same shape:

* ``input_dims``: the non-batch dims the model accepts (``None`` = any);
* ``adapt(x)``: the request array the model can take, or ValueError saying
  why not (a sequence longer than the model's keeps its last steps);
* ``run(x)``: ``{"SCORE": float32 [N, 1], ...}`` for N rows.

Model files are native formats, never pickle: LightGBM text, XGBoost
UBJSON/JSON, ONNX, safetensors.

Deep models choose their runtime once, at load (:func:`choose_runtime`):
torch on CUDA with the safetensors weights when the version ships its
architecture (CUDA graphs per padded batch bucket), else ONNX Runtime with
the CUDA execution provider when the server's onnxruntime has it, else ONNX
Runtime on the CPU.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

SCORE, HORIZONS = "SCORE", "HORIZONS"
Log = Callable[[str], None]


def _no_log(message: str) -> None:
    pass


def _model_file(folder: Path, params: dict[str, str], candidates: tuple[str, ...]) -> Path:
    if params.get("model_file"):
        name = params["model_file"]
        if "/" in name or name.startswith("."):
            raise ValueError(f"model_file {name!r} must be a plain file name")
        return folder / name
    for name in candidates:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"no model file in {folder} (looked for {', '.join(candidates)})")


def _column(scores: np.ndarray, rows: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if scores.size != rows:
        raise ValueError(f"the model gives {scores.size} values for {rows} rows")
    return scores.reshape(-1, 1)


class TabularScorer:
    """Shared checks of the [N, F] gradient-boosting scorers."""

    n_features: int

    @property
    def input_dims(self) -> tuple[int, ...]:
        return (self.n_features,)

    def adapt(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise ValueError(f"must have shape [N, {self.n_features}], got {list(x.shape)}")
        return x


class LightGBMScorer(TabularScorer):
    """LightGBM booster from ``model.txt`` (LightGBM's native text format)."""

    def __init__(self, folder: Path, params: dict[str, str], log: Log = _no_log):
        import lightgbm  # imported here so the other formats do not need it

        path = _model_file(folder, params, ("model.txt",))
        self.booster = lightgbm.Booster(model_file=str(path))
        self.n_features = self.booster.num_feature()
        # 0 = LightGBM's default (OpenMP decides); 1 is best for small batches.
        threads = int(params.get("num_threads", "0"))
        self.kwargs = {"num_threads": threads} if threads > 0 else {}
        self.description = f"lightgbm {path.name}, {self.booster.num_trees()} trees, {self.n_features} features"

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {SCORE: _column(self.booster.predict(x, **self.kwargs), len(x))}


class XGBoostScorer(TabularScorer):
    """XGBoost booster from ``model.ubj`` or ``model.json`` (native formats)."""

    def __init__(self, folder: Path, params: dict[str, str], log: Log = _no_log):
        import xgboost

        path = _model_file(folder, params, ("model.ubj", "model.json", "xgboost.json"))
        self.booster = xgboost.Booster(model_file=str(path))
        self.n_features = self.booster.num_features()
        if int(params.get("num_threads", "0")) > 0:
            self.booster.set_param({"nthread": int(params["num_threads"])})
        self.description = f"xgboost {path.name}, {self.n_features} features"

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        return {SCORE: _column(self.booster.inplace_predict(x), len(x))}


# ---------------------------------------------------------------- deep models

RUNTIMES = ("onnxruntime-cpu", "onnxruntime-cuda", "torch-cuda", "torch-cpu")
TORCH_FILES = ("architecture.py", "config.json", "model.safetensors")


@dataclass(frozen=True)
class Availability:
    """What the server's environment offers a deep model."""

    ort_providers: tuple[str, ...] = ("CPUExecutionProvider",)
    torch_cuda: bool = False
    torch_installed: bool = False

    @classmethod
    def probe(cls) -> "Availability":
        try:
            import onnxruntime

            providers = tuple(onnxruntime.get_available_providers())
        except ImportError:
            providers = ()
        try:
            import torch

            return cls(providers, torch_cuda=bool(torch.cuda.is_available()), torch_installed=True)
        except ImportError:
            return cls(providers)


def choose_runtime(requested: str, available: Availability, *, has_torch_files: bool) -> tuple[str, str]:
    """``(runtime, reason)`` for a deep model.

    ``requested`` is ``auto`` or one of :data:`RUNTIMES`. ``auto`` prefers
    the GPU: torch on CUDA when the version ships its torch architecture and
    weights (CUDA graphs make the small per-bar batches cheap), else ONNX
    Runtime's CUDA provider, else ONNX Runtime on the CPU. An explicit
    request that the environment cannot honour raises ValueError."""
    has_ort_cuda = "CUDAExecutionProvider" in available.ort_providers
    has_ort = "CPUExecutionProvider" in available.ort_providers
    if requested == "auto":
        if available.torch_cuda and has_torch_files:
            return "torch-cuda", "CUDA is available to torch and the version ships safetensors weights"
        if has_ort_cuda:
            return "onnxruntime-cuda", "onnxruntime has the CUDA execution provider"
        if has_ort:
            why = "no CUDA device" if not available.torch_cuda else "no torch architecture in the version folder"
            return "onnxruntime-cpu", why
        if available.torch_installed and has_torch_files:
            return "torch-cpu", "onnxruntime is not installed"
        raise ValueError("no runtime for ONNX models: onnxruntime is not installed")
    missing = {
        "onnxruntime-cpu": None if has_ort else "onnxruntime is not installed",
        "onnxruntime-cuda": None if has_ort_cuda else "onnxruntime has no CUDAExecutionProvider",
        "torch-cuda": None
        if available.torch_cuda and has_torch_files
        else ("torch sees no CUDA device" if not available.torch_cuda else f"the version lacks {TORCH_FILES}"),
        "torch-cpu": None
        if available.torch_installed and has_torch_files
        else ("torch is not installed" if not available.torch_installed else f"the version lacks {TORCH_FILES}"),
    }
    if requested not in missing:
        raise ValueError(f"unknown runtime {requested!r}; known: auto, {', '.join(RUNTIMES)}")
    if missing[requested]:
        raise ValueError(f"runtime {requested} was requested but {missing[requested]}")
    return requested, "requested by the model's config"


def batch_buckets(max_batch_size: int, smallest: int = 8) -> tuple[int, ...]:
    """Padded batch sizes for captured CUDA graphs: powers of two from
    ``smallest`` up to and including ``max_batch_size``."""
    sizes, size = [], smallest
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return (*sizes, max_batch_size)


class OrtRunner:
    """An ``onnxruntime.InferenceSession`` on the given providers."""

    def __init__(self, path: Path, providers: list, num_threads: int = 0):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        if num_threads > 0:
            options.intra_op_num_threads = num_threads
        self.session = onnxruntime.InferenceSession(str(path), sess_options=options, providers=providers)
        graph_inputs = self.session.get_inputs()
        if len(graph_inputs) != 1:
            raise ValueError(f"{path.name} has {len(graph_inputs)} inputs; one float32 input is supported")
        if graph_inputs[0].type != "tensor(float)":
            raise ValueError(f"{path.name} input {graph_inputs[0].name} is {graph_inputs[0].type}, not tensor(float)")
        self.input_name = graph_inputs[0].name
        self.input_shape = [d if isinstance(d, int) and d > 0 else None for d in graph_inputs[0].shape]
        names = [o.name for o in self.session.get_outputs()]
        self.score_name = SCORE if SCORE in names else names[0]
        self.outputs = [self.score_name] + ([HORIZONS] if HORIZONS in names and HORIZONS != self.score_name else [])
        self.providers = self.session.get_providers()

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        values = self.session.run(self.outputs, {self.input_name: x})
        return dict(zip([SCORE, HORIZONS][: len(values)], values))


class TorchRunner:
    """The deep model as a torch module built by the version's
    ``architecture.py`` (``build_model(config) -> nn.Module``) from
    ``config.json``, with the ``model.safetensors`` weights.

    On CUDA each batch is padded up to a bucket of :func:`batch_buckets` and
    replayed from a CUDA graph captured the first time that bucket is seen,
    which removes the per-kernel launch cost that dominates small recurrent
    models; ``torch_compile`` additionally compiles the module. On the CPU
    (tests) the same padding path runs eagerly."""

    def __init__(
        self,
        folder: Path,
        device: str,
        max_batch_size: int,
        *,
        cuda_graphs: bool = True,
        torch_compile: bool = False,
    ):
        import importlib.util

        import torch
        from safetensors.torch import load_file

        spec = importlib.util.spec_from_file_location("signalml_deep_architecture", folder / "architecture.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        config = json.loads((folder / "config.json").read_text())
        model = module.build_model(config)
        model.load_state_dict(load_file(str(folder / "model.safetensors")), strict=True)
        self.torch = torch
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        if torch_compile:
            self.model = torch.compile(self.model, mode="reduce-overhead" if cuda_graphs else "default")
        self.cuda_graphs = cuda_graphs and self.device.type == "cuda" and not torch_compile
        self.buckets = batch_buckets(max_batch_size)
        self.graphs: dict[int, tuple] = {}
        self.input_shape = [None, config.get("sequence_length"), config.get("n_features")]

    def _bucket(self, rows: int) -> int:
        for size in self.buckets:
            if rows <= size:
                return size
        raise ValueError(f"{rows} rows exceed the largest batch bucket {self.buckets[-1]}")

    def _forward(self, x):
        out = self.model(x)
        if isinstance(out, (tuple, list)):
            return out[0], (out[1] if len(out) > 1 else None)
        return out, None

    def _graph(self, size: int, template: np.ndarray):
        torch = self.torch
        if size not in self.graphs:
            static_x = torch.zeros((size, *template.shape[1:]), dtype=torch.float32, device=self.device)
            stream = torch.cuda.Stream(self.device)
            stream.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(stream), torch.inference_mode():
                for _ in range(2):  # warm cuDNN/cuBLAS before capture
                    self._forward(static_x)
            torch.cuda.current_stream(self.device).wait_stream(stream)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph), torch.inference_mode():
                static_out = self._forward(static_x)
            self.graphs[size] = (graph, static_x, static_out)
        return self.graphs[size]

    def __call__(self, x: np.ndarray) -> dict[str, np.ndarray]:
        torch = self.torch
        rows = len(x)
        size = self._bucket(rows)
        with torch.inference_mode():
            if self.cuda_graphs:
                graph, static_x, (score, horizons) = self._graph(size, x)
                static_x[:rows].copy_(torch.from_numpy(x), non_blocking=False)
                static_x[rows:].zero_()
                graph.replay()
            else:
                padded = np.zeros((size, *x.shape[1:]), dtype=np.float32)
                padded[:rows] = x
                score, horizons = self._forward(torch.from_numpy(padded).to(self.device))
            out = {SCORE: score[:rows].float().cpu().numpy().reshape(rows, -1)[:, :1]}
            if horizons is not None:
                out[HORIZONS] = horizons[:rows].float().cpu().numpy()
        return out


class OnnxScorer:
    """A deep model (LSTM, TFT) from ``model.onnx``: input ``SEQUENCES``
    float32 [N, T, F] (or a tabular [N, F] graph), output ``SCORE`` [N, 1]
    and optionally ``HORIZONS`` [N, H]. The runtime is picked once, here."""

    def __init__(
        self,
        folder: Path,
        params: dict[str, str],
        log: Log = _no_log,
        *,
        available: Availability | None = None,
        device_id: int = 0,
        max_batch_size: int = 8192,
    ):
        path = _model_file(folder, params, ("model.onnx",))
        available = available or Availability.probe()
        has_torch_files = all((folder / f).is_file() for f in TORCH_FILES)
        self.runtime, reason = choose_runtime(params.get("runtime", "auto"), available, has_torch_files=has_torch_files)
        threads = int(params.get("num_threads", "0"))
        if self.runtime == "onnxruntime-cuda":
            cuda = ("CUDAExecutionProvider", {"device_id": device_id})
            runner = OrtRunner(path, [cuda, "CPUExecutionProvider"], threads)
        elif self.runtime == "onnxruntime-cpu":
            runner = OrtRunner(path, ["CPUExecutionProvider"], threads)
        else:
            device = f"cuda:{device_id}" if self.runtime == "torch-cuda" else "cpu"
            runner = TorchRunner(
                folder,
                device,
                max_batch_size,
                cuda_graphs=params.get("cuda_graphs", "1") == "1",
                torch_compile=params.get("torch_compile", "0") == "1",
            )
            if "CPUExecutionProvider" in available.ort_providers:
                # The ONNX graph stays the reference for the shapes accepted.
                runner.input_shape = OrtRunner(path, ["CPUExecutionProvider"], 1).input_shape
        self.runner = runner
        shape = runner.input_shape
        self.input_dims = tuple(-1 if d is None else d for d in shape[1:])
        if self.input_dims[-1] < 1:
            raise ValueError(f"{path.name}: the feature axis of the input must be fixed, got {shape}")
        self.n_features = self.input_dims[-1]
        self.description = f"onnx {path.name} input {list(self.input_dims)} on {self.runtime} ({reason})"
        log(self.description)

    def adapt(self, x: np.ndarray) -> np.ndarray:
        want = self.input_dims
        if x.ndim != len(want) + 1 or x.shape[-1] != self.n_features:
            dims = ", ".join("T" if d == -1 else str(d) for d in want)
            raise ValueError(f"must have shape [N, {dims}], got {list(x.shape)}")
        if len(want) == 2 and want[0] > 0 and x.shape[1] != want[0]:
            if x.shape[1] < want[0]:
                raise ValueError(f"needs sequences of {want[0]} steps, got {x.shape[1]}")
            x = np.ascontiguousarray(x[:, -want[0] :, :])  # the model looks at the last T steps
        return x

    def run(self, x: np.ndarray) -> dict[str, np.ndarray]:
        out = self.runner(x)
        result = {SCORE: _column(out[SCORE], len(x))}
        if HORIZONS in out:
            result[HORIZONS] = np.asarray(out[HORIZONS], dtype=np.float32).reshape(len(x), -1)
        return result


SCORERS = {"lightgbm": LightGBMScorer, "xgboost": XGBoostScorer, "onnx": OnnxScorer}
