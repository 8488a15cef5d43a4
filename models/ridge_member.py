"""Ridge regression of the target label on the cross-sectional features.

The sanity check of the model zoo and an ensemble member: a linear model
cannot fit noise the way trees can, so a GBM that does worse out of sample
than this has learnt noise. The features are already normalised across
symbols per bar time (mean 0, unit spread), so a missing value is replaced
by 0, the cross-section's mean; nothing else is scaled.

The penalty is chosen per window: every ``alphas`` value (a penalty per
fit row, so comparable across window sizes: ``(X'X + alpha n I) w = X'y``
on centred data) is fitted and the one with the best mean daily rank IC on
the validation dates is kept.

Files: ``model.onnx``, the served graph (input ``FEATURES`` float32
[N, F], NaN and ±inf → 0, ``SCORE`` float32 [N, 1] = X w + b), and ``config.json``
with the coefficients in float64, which :meth:`RidgeMember.load` reads.
No pickle. The graph is built with ``onnx.helper`` (no exporter), so the
served model is exactly the stored coefficients, rounded to float32.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from models.base import Member, ModelError, TabularData, feature_matrix, finite_target_rows, read_json
from models.rank_ic import RankIC
from signalml.jsonio import write_json

ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.json"
INPUT, SCORE = "FEATURES", "SCORE"
ONNX_OPSET = 17
DEFAULT_ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0)


class RidgeMember(Member):
    kind = "ridge"
    input = "tabular"

    def __init__(
        self,
        n_features: int,
        *,
        name: str | None = None,
        feature_names: list[str] | None = None,
        alphas: tuple[float, ...] = DEFAULT_ALPHAS,
        seed: int = 42,  # accepted like every member's; a ridge fit is deterministic
    ):
        super().__init__(n_features, name=name, feature_names=feature_names)
        alphas = tuple(float(a) for a in alphas)
        if not alphas or any(a <= 0 for a in alphas):
            raise ModelError(f"{self.name}: alphas must be positive, got {list(alphas)}")
        self.hyperparameters = {"alphas": list(alphas)}
        self.coefficients: np.ndarray | None = None
        self.intercept = 0.0
        self.alpha = float("nan")
        self.horizons: tuple[int, ...] = ()
        self.target = 0

    @staticmethod
    def inputs(data: TabularData | np.ndarray) -> np.ndarray:
        """float64 [n, F] features, NaN (and ±inf) → 0."""
        X = feature_matrix(data).astype(np.float64)
        X[~np.isfinite(X)] = 0.0
        return X

    def fit(self, train: TabularData, valid: TabularData) -> dict:
        started = time.perf_counter()
        self._check_n_features(train.X.shape[1])
        self._check_n_features(valid.X.shape[1])
        known = finite_target_rows(train.y, train.target)
        if not known.any():
            raise ModelError(f"{self.name}: no row with a known target")
        X, y = self.inputs(train.X[known]), train.target_returns[known]
        x_mean, y_mean = X.mean(axis=0), float(y.mean())
        centred = X - x_mean
        gram, moment = centred.T @ centred, centred.T @ (y - y_mean)
        valid_known = finite_target_rows(valid.y, valid.target)
        valid_X = self.inputs(valid.X[valid_known])
        rank_ic = RankIC(valid.target_returns[valid_known], valid.groups[valid_known])
        path = []
        for alpha in self.hyperparameters["alphas"]:
            w = np.linalg.solve(gram + alpha * len(y) * np.eye(self.n_features), moment)
            path.append((rank_ic(valid_X @ w), alpha, w))
        best_ic, self.alpha, self.coefficients = max(path, key=lambda item: item[0])
        self.intercept = y_mean - float(x_mean @ self.coefficients)
        self.horizons, self.target = tuple(train.horizons), int(train.target)
        return {
            "alpha": self.alpha,
            "metric": "rank_ic",
            "valid_metric": float(best_ic),
            "valid_rank_ic": float(best_ic),
            "path": {str(alpha): float(ic) for ic, alpha, _ in path},
            "n_train_rows": int(len(y)),
            "seconds": time.perf_counter() - started,
            "warm": False,
        }

    def _require_fit(self) -> np.ndarray:
        if self.coefficients is None:
            raise ModelError(f"{self.name}: not fitted")
        return self.coefficients

    def predict(self, data: TabularData | np.ndarray) -> np.ndarray:
        coefficients = self._require_fit()
        X = self.inputs(data)
        self._check_n_features(X.shape[1])
        return X @ coefficients + self.intercept

    def importance(self, data: TabularData | np.ndarray) -> dict[str, float]:
        """Mean |SHAP| of a linear model: |w_i (x_i − mean x_i)| averaged over rows."""
        coefficients = self._require_fit()
        X = self.inputs(data)
        values = np.abs((X - X.mean(axis=0)) * coefficients).mean(axis=0)
        return {name: float(v) for name, v in zip(self.resolved_feature_names(), values)}

    # ------------------------------------------------------------ files

    def save(self, directory: Path) -> dict[str, str]:
        coefficients = self._require_fit()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_onnx(directory / ONNX_FILE, coefficients, self.intercept)
        write_json(
            directory / CONFIG_FILE,
            {
                "kind": self.kind,
                "name": self.name,
                "n_features": self.n_features,
                "feature_names": self.resolved_feature_names(),
                "hyperparameters": self.hyperparameters,
                "alpha": self.alpha,
                "coefficients": [float(c) for c in coefficients],
                "intercept": float(self.intercept),
                "horizons": list(self.horizons),
                "target": self.target,
            },
            sort_keys=True,
        )
        return {"onnx": ONNX_FILE, "config": CONFIG_FILE}

    @classmethod
    def load(cls, directory: Path, files: dict[str, str]) -> "RidgeMember":
        config = read_json(Path(directory) / files.get("config", CONFIG_FILE))
        member = cls(config["n_features"], name=config["name"], feature_names=config["feature_names"],
                     **config["hyperparameters"])
        coefficients = np.asarray(config["coefficients"], dtype=np.float64)
        if coefficients.shape != (member.n_features,):
            raise ModelError(f"{directory}: {len(coefficients)} coefficients for {member.n_features} features")
        member.coefficients, member.intercept = coefficients, float(config["intercept"])
        member.alpha = float(config.get("alpha", float("nan")))
        member.horizons, member.target = tuple(config["horizons"]), int(config["target"])
        return member


def write_onnx(path: Path, coefficients: np.ndarray, intercept: float) -> None:
    """The served graph: FEATURES [N, F] → NaN, ±inf to 0 → MatMul w → Add b → SCORE [N, 1]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    n_features = len(coefficients)
    weights = numpy_helper.from_array(np.asarray(coefficients, dtype=np.float32).reshape(n_features, 1), "weights")
    bias = numpy_helper.from_array(np.asarray([intercept], dtype=np.float32), "intercept")
    zero = numpy_helper.from_array(np.zeros(1, dtype=np.float32), "zero")
    nodes = [
        helper.make_node("IsNaN", [INPUT], ["not_a_number"]),
        helper.make_node("IsInf", [INPUT], ["infinite"]),
        helper.make_node("Or", ["not_a_number", "infinite"], ["missing"]),
        helper.make_node("Where", ["missing", "zero", INPUT], ["filled"]),
        helper.make_node("MatMul", ["filled", "weights"], ["linear"]),
        helper.make_node("Add", ["linear", "intercept"], [SCORE]),
    ]
    graph = helper.make_graph(
        nodes,
        "ridge",
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", n_features])],
        [helper.make_tensor_value_info(SCORE, TensorProto.FLOAT, ["batch", 1])],
        initializer=[weights, bias, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET)], producer_name="signalml")
    model.ir_version = 8  # readable by the ONNX Runtime releases Triton images ship
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
