"""Triton Python-backend model serving one model file of a SignalML model set.

Copied, unchanged, with ``scoring.py`` into ``<repository>/<model>/<version>/``
by :mod:`models.triton_backend`; it runs inside Triton's Python backend stub
(the server venv, numpy < 2), never in the project's process.

Contract (see ``config.pbtxt``):

* one input, ``FEATURES`` FP32 ``[N, F]`` (gradient boosting) or
  ``SEQUENCES`` FP32 ``[N, T, F]`` (deep models). The config may leave the
  non-batch dims at ``-1``: each version then checks requests against its
  own model file, so versions trained on different features share a config;
* output ``SCORE`` FP32 ``[N, 1]``, one score per row (config ``dims: [1]``;
  a batched output cannot be declared ``[N]``), and ``HORIZONS`` ``[N, H]``
  for deep models whose graph has it;
* ``parameters``: ``format`` picks the scorer (``lightgbm``, ``xgboost``,
  ``onnx``); ``num_threads``; for ``onnx``, ``runtime`` (``auto`` by default:
  see ``scoring.choose_runtime``), ``cuda_graphs``, ``torch_compile``.

``initialize`` parses the config and loads the model once. ``execute``
answers every request with exactly one response: a request whose input is
missing or mis-shaped gets an error response and the other requests of the
batch are still scored, all valid rows in one call of the model.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils


def _load_scoring():
    """``scoring.py`` from this file's folder, by path (the stub's sys.path
    order must not let an installed module of the same name win)."""
    name = "signalml_triton_scoring"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("scoring.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _error(message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        scoring = _load_scoring()
        config = json.loads(args["model_config"])
        self.name = f'{config.get("name", args.get("model_name", "?"))}:{args["model_version"]}'
        inputs = config.get("input", [])
        if len(inputs) != 1:
            raise ValueError(f"model {self.name}: config.pbtxt must declare one input, got {len(inputs)}")
        self.input_name = inputs[0]["name"]
        declared = tuple(int(d) for d in inputs[0]["dims"])
        self.outputs = {o["name"] for o in config.get("output", [])}
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        fmt = params.get("format", "lightgbm")
        if fmt not in scoring.SCORERS:
            raise ValueError(f"model {self.name}: unknown format {fmt!r}; known: {sorted(scoring.SCORERS)}")
        folder = Path(args["model_repository"]) / str(args["model_version"])
        log = pb_utils.Logger.log_info
        if fmt == "onnx":
            device_id = int(args.get("model_instance_device_id", 0) or 0)
            batch = max(1, int(config.get("max_batch_size", 0)) or 1)
            self.scorer = scoring.OnnxScorer(folder, params, log, device_id=device_id, max_batch_size=batch)
        else:
            self.scorer = scoring.SCORERS[fmt](folder, params, log)
        have = self.scorer.input_dims
        if len(declared) != len(have) or any(d not in (-1, h) for d, h in zip(declared, have)):
            if len(declared) == 1 and len(have) == 1:
                message = f"expects {have[0]} features but config.pbtxt declares {self.input_name} dims [{declared[0]}]"
            else:
                message = f"accepts dims {list(have)} but config.pbtxt declares {self.input_name} dims {list(declared)}"
            raise ValueError(f"model {self.name}: the model file {message}")
        log(f"model {self.name}: {self.scorer.description}")

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        arrays: list[np.ndarray] = []
        index: list[int] = []
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, self.input_name)
            if tensor is None:
                responses[i] = _error(f"model {self.name}: input {self.input_name} is missing")
                continue
            try:
                arrays.append(self.scorer.adapt(tensor.as_numpy()))
            except ValueError as exc:
                responses[i] = _error(f"model {self.name}: {self.input_name} {exc}")
                continue
            index.append(i)
        if not arrays:
            return responses
        try:
            same_shape = all(a.shape[1:] == arrays[0].shape[1:] for a in arrays)
            if same_shape:
                results = self._split(self.scorer.run(np.concatenate(arrays) if len(arrays) > 1 else arrays[0]), arrays)
            else:
                results = [self.scorer.run(a) for a in arrays]
            for i, request, out in zip(index, (requests[j] for j in index), results):
                wanted = request.requested_output_names() or self.outputs
                tensors = [pb_utils.Tensor(k, v) for k, v in out.items() if k in wanted and k in self.outputs]
                responses[i] = pb_utils.InferenceResponse(output_tensors=tensors)
        except Exception as exc:  # noqa: BLE001 - report it per request, keep serving
            for i in index:
                responses[i] = _error(f"model {self.name}: scoring failed: {type(exc).__name__}: {exc}")
        return responses

    @staticmethod
    def _split(outputs: dict[str, np.ndarray], arrays: list[np.ndarray]) -> list[dict[str, np.ndarray]]:
        """Cut one batched result back into each request's rows."""
        results, offset = [], 0
        for a in arrays:
            results.append({k: np.ascontiguousarray(v[offset : offset + len(a)]) for k, v in outputs.items()})
            offset += len(a)
        return results

    def finalize(self) -> None:
        self.scorer = None
