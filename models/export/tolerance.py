"""How far served scores may be from the trainer's native scores.

Scores cross the wire as float32. The golden scores are the trainer's
native predictions rounded to float32.

* Gradient boosting, Python backend (``cpu``) and in-process (``native``):
  the same library evaluates the same trees on the same float32 rows, so
  the two float32 roundings agree to a few ulps: ``rtol 1e-6, atol 1e-6``.
* Gradient boosting on FIL (``gpu``): FIL accumulates the trees in float32
  on the GPU, in another order: ``rtol 1e-4, atol 1e-5``.
* Deep models through ONNX Runtime (``cpu``, ``native``) against torch
  eager: the same float32 graph with other kernels and summation orders:
  ``rtol 1e-4, atol 1e-5``.
* Ridge through ONNX Runtime (``cpu``, ``native``): a float32 dot product
  against the float64 one of ``RidgeMember.predict``: ``rtol 1e-4, atol
  1e-5``; on TensorRT (``gpu``) as the deep models.
* Deep models on TensorRT with ``precision_mode FP32`` (``gpu``): the
  builder picks its own kernels and may use TF32 on Ampere and later GPUs
  (10-bit mantissa): ``rtol 5e-3, atol 5e-4``. Not measured here (no GPU);
  FP16 engines need looser bounds and are not the default.

A check passes when ``|served - native| <= atol + rtol * |native|`` for
every row (NumPy's ``allclose`` rule), NaN only where both are NaN.
"""

from __future__ import annotations

import numpy as np

TOLERANCES: dict[tuple[str, str], tuple[float, float]] = {}
for _kind in ("lightgbm", "xgboost"):
    TOLERANCES[(_kind, "cpu")] = TOLERANCES[(_kind, "native")] = (1e-6, 1e-6)
    TOLERANCES[(_kind, "gpu")] = (1e-4, 1e-5)
for _kind in ("lstm", "tft"):
    TOLERANCES[(_kind, "cpu")] = TOLERANCES[(_kind, "native")] = (1e-4, 1e-5)
    TOLERANCES[(_kind, "gpu")] = (5e-3, 5e-4)
# Ridge: one float32 dot product of F terms in ONNX against the float64
# native one; the terms are O(0.1) and F is a few hundred at most.
TOLERANCES[("ridge", "cpu")] = TOLERANCES[("ridge", "native")] = (1e-4, 1e-5)
TOLERANCES[("ridge", "gpu")] = (5e-3, 5e-4)


def tolerance(kind: str, target: str) -> tuple[float, float]:
    """``(rtol, atol)`` for a member ``kind`` served on ``target``
    (``cpu``, ``gpu``, or ``native`` for the in-process check)."""
    return TOLERANCES[(kind, target)]


def compare(kind: str, target: str, served: np.ndarray, native: np.ndarray) -> tuple[str | None, float]:
    """``(problem or None, largest absolute difference)``."""
    rtol, atol = tolerance(kind, target)
    served = np.asarray(served, dtype=np.float64).reshape(-1)
    native = np.asarray(native, dtype=np.float64).reshape(-1)
    if served.shape != native.shape:
        return f"{served.size} scores for {native.size} golden rows", float("inf")
    both_nan = np.isnan(served) & np.isnan(native)
    diff = np.where(both_nan, 0.0, np.abs(served - native))
    diff = np.where(np.isnan(diff), np.inf, diff)
    worst = float(diff.max()) if diff.size else 0.0
    bad = diff > atol + rtol * np.abs(np.nan_to_num(native))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        return (
            f"{int(bad.sum())} of {bad.size} rows differ beyond rtol {rtol:g}, atol {atol:g} "
            f"(row {i}: {served[i]!r} vs {native[i]!r}; largest difference {worst:.3g})",
            worst,
        )
    return None, worst
