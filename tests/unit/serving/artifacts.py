"""Tiny model-set artifacts in the training pipeline's layout, built here
so the serving tests do not wait for a training run: a LightGBM and an
XGBoost booster trained directly, the project's ridge member with
coefficients set by hand (``RidgeMember.save``: ONNX and config.json),
and the project's LSTM network
(untrained, seeded) saved as the deep member saves it: ONNX (``SEQUENCES``
[N, T, F] -> ``SCORE`` [N, 1], ``HORIZONS`` [N, 3]), safetensors weights
and config.json. ``score.<member>`` in the golden file is each model's
own (native) prediction, as the trainer writes it.

``variant`` changes the training targets, so two artifacts built with
different variants score the same rows differently (a switch is visible).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from signalml.contracts import schema_hash

N_FEATURES = 6
SEQUENCE_LENGTH = 5
GOLDEN_ROWS = 64
FEATURE_NAMES = [f"feat_{i}" for i in range(N_FEATURES)]


def rows(n: int, seed: int = 11, n_features: int = N_FEATURES) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, n_features)).astype(np.float32)


def sequences(n: int, seed: int = 12, length: int = SEQUENCE_LENGTH, n_features: int = N_FEATURES) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, length, n_features)).astype(np.float32)


def _targets(x: np.ndarray, variant: int) -> np.ndarray:
    sign = 1.0 if variant % 2 == 0 else -1.0
    return sign * (x[:, 0] - 0.5 * x[:, 1] ** 2 + np.sin(3 * x[:, 2])) + 0.3 * variant * x[:, 3]


def train_lightgbm(variant: int = 0, n_features: int = N_FEATURES):
    import lightgbm as lgb

    x = rows(1500, seed=100 + variant, n_features=n_features)
    params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1, "seed": 7, "num_threads": 1}
    return lgb.train(params, lgb.Dataset(x, _targets(x, variant)), num_boost_round=40)


def train_xgboost(variant: int = 0, n_features: int = N_FEATURES):
    import xgboost as xgb

    x = rows(1500, seed=200 + variant, n_features=n_features)
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 3}
    return xgb.train(params, xgb.DMatrix(x, label=_targets(x, variant)), num_boost_round=30)


def build_ridge(variant: int = 0, n_features: int = N_FEATURES):
    """The project's ridge member with fixed coefficients, as if fitted."""
    from models.ridge_member import RidgeMember

    member = RidgeMember(n_features, name="ridge", feature_names=FEATURE_NAMES[:n_features])
    member.coefficients = np.linspace(-0.2, 0.3, n_features) * (1.0 if variant % 2 == 0 else -1.0)
    member.intercept, member.alpha, member.horizons, member.target = 0.01 * variant, 1.0, (1, 5, 20), 1
    return member


def build_lstm(variant: int = 0, n_features: int = N_FEATURES, length: int = SEQUENCE_LENGTH):
    """The project's LSTM network (``models.deep.lstm.LSTMNetwork``),
    randomly initialised, and its ``config.json`` as the deep member writes it."""
    import torch

    from models.deep.lstm import LSTMNetwork

    config = {
        "format_version": 1,
        "kind": "lstm",
        "name": "lstm",
        "n_features": n_features,
        "sequence_length": length,
        "horizons": [1, 5, 20],
        "target": 1,
        "architecture": {"hidden_size": 8, "num_layers": 2, "dropout": 0.0},
    }
    torch.manual_seed(1000 + variant)
    network = LSTMNetwork(n_features, 8, 2, 0.0, 3).eval()
    return network, config


def export_lstm(network, config: dict, folder: Path, *, dtype: str = "float32") -> dict[str, str]:
    """``model.onnx`` (the project's exporter; a float64 graph with torch's
    TorchScript exporter for the wrong-dtype test), ``model.safetensors``
    and ``config.json``, as ``SequenceMember.save`` writes them."""
    import torch

    from models.deep.export import ServingModule, export_onnx, save_weights

    folder.mkdir(parents=True, exist_ok=True)
    if dtype == "float64":
        module = ServingModule(network, config["target"]).double().eval()
        example = torch.zeros(2, config["sequence_length"], config["n_features"], dtype=torch.float64)
        torch.onnx.export(
            module, (example,), str(folder / "model.onnx"), input_names=["SEQUENCES"],
            output_names=["SCORE", "HORIZONS"], dynamic_axes={"SEQUENCES": {0: "batch"}}, dynamo=False,
        )
        network.float()
    else:
        export_onnx(network, folder / "model.onnx", length=config["sequence_length"],
                    n_features=config["n_features"], target=config["target"])
    save_weights(network, folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps(config))
    return {"onnx": "lstm/model.onnx", "weights": "lstm/model.safetensors", "config": "lstm/config.json"}


def lstm_scores(network, config: dict, x: np.ndarray) -> np.ndarray:
    """The network's native (torch eager) scores: the target horizon's head."""
    import torch

    with torch.inference_mode():
        return network(torch.from_numpy(x))[:, config["target"]].numpy().astype(np.float32)


def build_artifact(
    out_dir: Path,
    *,
    variant: int = 0,
    members: tuple[str, ...] = ("lightgbm", "xgboost", "lstm"),
    ensemble_method: str = "ic_weighted",
) -> Path:
    """Write ``out_dir/model_set/`` and return ``out_dir``."""
    from safetensors.numpy import save_file

    directory = Path(out_dir) / "model_set"
    directory.mkdir(parents=True, exist_ok=True)
    tabular = rows(GOLDEN_ROWS, seed=300)
    sequence = sequences(GOLDEN_ROWS, seed=301)
    golden = {"tabular": tabular, "sequence": sequence}
    entries = []
    if "lightgbm" in members:
        booster = train_lightgbm(variant)
        (directory / "lightgbm").mkdir(exist_ok=True)
        booster.save_model(str(directory / "lightgbm" / "model.txt"))
        golden["score.lightgbm"] = booster.predict(tabular).astype(np.float32)
        entries.append({"name": "lightgbm", "kind": "lightgbm", "input": "tabular", "n_features": N_FEATURES,
                        "files": {"model": "lightgbm/model.txt"}})
    if "xgboost" in members:
        booster = train_xgboost(variant)
        (directory / "xgboost").mkdir(exist_ok=True)
        booster.save_model(str(directory / "xgboost" / "model.json"))
        golden["score.xgboost"] = booster.inplace_predict(tabular).astype(np.float32)
        entries.append({"name": "xgboost", "kind": "xgboost", "input": "tabular", "n_features": N_FEATURES,
                        "files": {"model": "xgboost/model.json"}})
    if "ridge" in members:
        ridge = build_ridge(variant)
        files = ridge.save(directory / "ridge")
        golden["score.ridge"] = ridge.predict(tabular).astype(np.float32)
        entries.append({"name": "ridge", "kind": "ridge", "input": "tabular", "n_features": N_FEATURES,
                        "files": {role: f"ridge/{path}" for role, path in files.items()}})
    if "lstm" in members:
        network, config = build_lstm(variant)
        files = export_lstm(network, config, directory / "lstm")
        golden["score.lstm"] = lstm_scores(network, config, sequence)
        entries.append({"name": "lstm", "kind": "lstm", "input": "sequence", "n_features": N_FEATURES,
                        "sequence_length": SEQUENCE_LENGTH, "files": files})
    names = [e["name"] for e in entries]
    spec = {
        "format_version": 1,
        "created_at": int(time.time() * 1000),
        "feature_names": FEATURE_NAMES,
        "feature_schema_hash": schema_hash(FEATURE_NAMES),
        "normalization": "zscore",
        "clip_z": 5.0,
        "sequence_length": SEQUENCE_LENGTH if "lstm" in members else 0,
        "horizon_bars": 5,
        "horizons": [1, 5, 20],
        "ensemble": {
            "method": ensemble_method,
            "weights": {n: 1.0 / len(names) for n in names},
            "stacking": {"intercept": 0.01, "coefficients": {n: 0.5 for n in names}},
        },
        "members": entries,
        "drift_reference": {
            "feat_0": {"edges": [-1.0, 0.0, 1.0], "fractions": [0.5, 0.5]},
            **{f"score:{n}": {"edges": [-1.0, 1.0], "fractions": [1.0]} for n in names},
        },
        "training_metrics": {n: {"valid_rank_ic": 0.05 + 0.01 * i} for i, n in enumerate(names)},
        "golden": "golden.safetensors",
    }
    save_file({k: np.ascontiguousarray(v) for k, v in golden.items()}, str(directory / "golden.safetensors"))
    (directory / "model_set.json").write_text(json.dumps(spec, indent=2))
    return Path(out_dir)


def edit_spec(out_dir: Path, **changes) -> None:
    """Rewrite fields of ``model_set.json`` (for the bad-artifact tests)."""
    path = Path(out_dir) / "model_set" / "model_set.json"
    spec = json.loads(path.read_text())
    spec.update(changes)
    path.write_text(json.dumps(spec, indent=2))


_built: dict[tuple, Path] = {}


def cached_artifact(tmp_path_factory, variant: int = 0, members: tuple[str, ...] = ("lightgbm", "xgboost", "lstm")) -> Path:
    """One artifact per (variant, members) per test session; treat it as
    read-only (copy it before editing)."""
    key = (variant, members)
    if key not in _built:
        _built[key] = build_artifact(tmp_path_factory.mktemp(f"artifact{variant}"), variant=variant, members=members)
    return _built[key]
