"""Triton Python-backend model that serves a gradient-boosting model file.

This file is copied, unchanged, into ``<repository>/<model>/<version>/`` by
:func:`models.triton_backend.write_model`; it runs inside Triton's Python
backend stub (the server venv, numpy < 2), never in the project's process.

Contract (see ``config.pbtxt``):

* input ``FEATURES``: FP32, shape ``[N, F]``; ``F`` is read once from the
  config's ``dims``.
* output ``SCORE``: FP32, shape ``[N, 1]``, one score per row (config
  ``dims: [1]``; Triton cannot declare a batched output of shape ``[N]``).
* ``parameters { key: "format" ... }`` names the model file's format; each
  format has one scorer class below (``lightgbm``, ``xgboost``; ``onnx``
  slots in the same way). Files are native formats, never pickle.

``execute`` answers every request with exactly one response: a request whose
input is missing or mis-shaped gets an error response and the others in the
same batch are still scored. Valid requests of one batch are scored with one
``predict`` call on the stacked rows.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

INPUT = "FEATURES"
OUTPUT = "SCORE"


class LightGBMScorer:
    """LightGBM booster from ``model.txt`` (LightGBM's native text format)."""

    file_name = "model.txt"

    def __init__(self, folder: Path, n_features: int, params: dict[str, str]):
        import lightgbm  # imported here so other formats do not need it

        path = folder / params.get("model_file", self.file_name)
        self.booster = lightgbm.Booster(model_file=str(path))
        if self.booster.num_feature() != n_features:
            raise ValueError(
                f"{path.name} expects {self.booster.num_feature()} features but "
                f"config.pbtxt declares {INPUT} dims [{n_features}]"
            )
        # 0 = LightGBM's default (OpenMP decides); 1 is best for small batches.
        self.num_threads = int(params.get("num_threads", "0"))

    def predict(self, x: np.ndarray) -> np.ndarray:
        kwargs = {"num_threads": self.num_threads} if self.num_threads > 0 else {}
        return np.asarray(self.booster.predict(x, **kwargs))


class XGBoostScorer:
    """XGBoost booster from ``model.ubj`` (XGBoost's native UBJSON format;
    ``model.json`` works too, named by the ``model_file`` parameter)."""

    file_name = "model.ubj"

    def __init__(self, folder: Path, n_features: int, params: dict[str, str]):
        import xgboost

        path = folder / params.get("model_file", self.file_name)
        self.booster = xgboost.Booster(model_file=str(path))
        if self.booster.num_features() != n_features:
            raise ValueError(
                f"{path.name} expects {self.booster.num_features()} features but "
                f"config.pbtxt declares {INPUT} dims [{n_features}]"
            )
        if int(params.get("num_threads", "0")) > 0:
            self.booster.set_param({"nthread": int(params["num_threads"])})

    def predict(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x))


SCORERS = {
    "lightgbm": LightGBMScorer,
    "xgboost": XGBoostScorer,
    # "onnx": OnnxScorer,  (model.onnx, onnxruntime.InferenceSession) - next
}


def _error(message: str):
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))


class TritonPythonModel:
    def initialize(self, args: dict) -> None:
        config = json.loads(args["model_config"])
        self.name = config.get("name", args.get("model_name", "?"))
        inputs = {i["name"]: i for i in config.get("input", [])}
        if INPUT not in inputs:
            raise ValueError(f"model {self.name}: config.pbtxt has no input {INPUT}")
        dims = [int(d) for d in inputs[INPUT]["dims"]]
        if int(config.get("max_batch_size", 0)) > 0:
            dims = [-1, *dims]
        if len(dims) != 2 or dims[1] <= 0:
            raise ValueError(f"model {self.name}: {INPUT} must be [-1, F] with F > 0, got {dims}")
        self.n_features = dims[1]
        params = {k: v.get("string_value", "") for k, v in config.get("parameters", {}).items()}
        fmt = params.get("format", "lightgbm")
        if fmt not in SCORERS:
            raise ValueError(f"model {self.name}: unknown format {fmt!r}; known: {sorted(SCORERS)}")
        folder = Path(args["model_repository"]) / str(args["model_version"])
        self.scorer = SCORERS[fmt](folder, self.n_features, params)

    def execute(self, requests: list) -> list:
        responses: list = [None] * len(requests)
        rows: list[np.ndarray] = []
        index: list[int] = []
        for i, request in enumerate(requests):
            tensor = pb_utils.get_input_tensor_by_name(request, INPUT)
            if tensor is None:
                responses[i] = _error(f"model {self.name}: input {INPUT} is missing")
                continue
            x = tensor.as_numpy()
            if x.ndim != 2 or x.shape[1] != self.n_features:
                responses[i] = _error(
                    f"model {self.name}: {INPUT} must have shape [N, {self.n_features}], got {list(x.shape)}"
                )
                continue
            rows.append(x)
            index.append(i)
        if rows:
            try:
                scores = self.scorer.predict(np.concatenate(rows) if len(rows) > 1 else rows[0])
                scores = scores.astype(np.float32, copy=False).reshape(-1)
                if scores.size != sum(len(x) for x in rows):
                    raise ValueError(f"the model gives {scores.size} values for {sum(len(x) for x in rows)} rows")
                offset = 0
                for i, x in zip(index, rows):
                    part = scores[offset : offset + len(x)]
                    offset += len(x)
                    tensor = pb_utils.Tensor(OUTPUT, part.reshape(-1, 1))
                    responses[i] = pb_utils.InferenceResponse(output_tensors=[tensor])
            except Exception as exc:  # noqa: BLE001 - report it per request, keep serving
                for i in index:
                    responses[i] = _error(f"model {self.name}: scoring failed: {type(exc).__name__}: {exc}")
        return responses

    def finalize(self) -> None:
        self.scorer = None
