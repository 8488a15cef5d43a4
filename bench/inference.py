"""Benchmark: scoring a cross-section through Triton against in-process
native predict, on the same rows, in the same run.

``run(settings)`` builds a model set of the configured sizes (LightGBM and
XGBoost with ``models.*.n_estimators`` trees on F = the configured feature
count, the LSTM with ``models.lstm`` hidden size, layers and sequence
length; random data: latency does not depend on what was learnt), serves
it from a private Triton on free ports (cpu target, Python backend, the
``serving`` batching settings) and times, for cross-sections of 500 and
5,000 rows:

* ``triton``: each member alone (gRPC aio client, pinned version) and the
  whole fan-out (all members in parallel, as the engine calls it);
* ``native``: each member's own library in this process (LightGBM
  ``predict``, XGBoost ``inplace_predict``, torch eager for the LSTM, and
  ONNX Runtime on the LSTM graph the server runs), and their sequential sum.

Figures are milliseconds (p50, p99 over ``rounds`` calls after warm-up;
every round runs each call once, in turn); ``ratio_p50`` is served /
native. Server and client share this machine's cores, as they would in the
one-machine deployment; the 1-minute load average at start and end says
how busy the machine was otherwise.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROWS = (500, 5000)


def _percentiles(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p99_ms": round(float(np.percentile(ms, 99)), 3)}


def _time_interleaved(calls: dict[str, Callable[[], object]], rounds: int, warmup: int = 3) -> dict[str, list[float]]:
    """Seconds per call of each labelled call. Each round runs every call
    once, in turn, so a change of load on the machine affects all of them
    alike instead of whichever block happened to run then."""
    for _ in range(warmup):
        for call in calls.values():
            call()
    samples: dict[str, list[float]] = {label: [] for label in calls}
    for _ in range(rounds):
        for label, call in calls.items():
            started = time.perf_counter()
            call()
            samples[label].append(time.perf_counter() - started)
    return samples


def _model_set(settings, directory: Path, n_features: int) -> dict:
    """Train/build the three members at the configured sizes and write them
    in the training pipeline's artifact layout."""
    import lightgbm
    import torch
    import xgboost
    from safetensors.numpy import save_file

    from models.deep.export import export_onnx, save_weights
    from models.deep.lstm import LSTMNetwork
    from signalml.contracts import schema_hash

    rng = np.random.default_rng(settings.training.seed)
    x = rng.normal(size=(20_000, n_features)).astype(np.float32)
    y = np.tanh(x[:, 0]) - 0.5 * x[:, 1] * x[:, 2] + 0.1 * rng.normal(size=len(x))
    lgb_cfg, xgb_cfg, lstm_cfg = settings.models.lightgbm, settings.models.xgboost, settings.models.lstm
    booster = lightgbm.train(
        {"objective": "regression", "num_leaves": lgb_cfg.num_leaves, "learning_rate": lgb_cfg.learning_rate,
         "min_data_in_leaf": 20, "verbose": -1, "seed": settings.training.seed},
        lightgbm.Dataset(x, y),
        num_boost_round=lgb_cfg.n_estimators,
    )
    (directory / "lightgbm").mkdir(parents=True)
    booster.save_model(str(directory / "lightgbm" / "model.txt"))
    xgb_booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": xgb_cfg.max_depth, "eta": xgb_cfg.learning_rate,
         "seed": settings.training.seed},
        xgboost.DMatrix(x, label=y),
        num_boost_round=xgb_cfg.n_estimators,
    )
    (directory / "xgboost").mkdir()
    xgb_booster.save_model(str(directory / "xgboost" / "model.json"))
    length = lstm_cfg.sequence_length
    torch.manual_seed(settings.training.seed)
    horizons = list(settings.training.horizons)
    target = horizons.index(settings.training.label_horizon_bars)
    network = LSTMNetwork(n_features, lstm_cfg.hidden_size, lstm_cfg.num_layers, 0.0, len(horizons)).eval()
    (directory / "lstm").mkdir()
    export_onnx(network, directory / "lstm" / "model.onnx", length=length, n_features=n_features, target=target)
    save_weights(network, directory / "lstm" / "model.safetensors")
    config = {"kind": "lstm", "n_features": n_features, "sequence_length": length, "horizons": horizons,
              "target": target, "architecture": {"hidden_size": lstm_cfg.hidden_size,
                                                 "num_layers": lstm_cfg.num_layers, "dropout": 0.0}}
    (directory / "lstm" / "config.json").write_text(json.dumps(config))

    tabular = rng.normal(size=(64, n_features)).astype(np.float32)
    sequence = rng.normal(size=(64, length, n_features)).astype(np.float32)
    with torch.inference_mode():
        lstm_golden = network(torch.from_numpy(sequence))[:, target].numpy()
    save_file(
        {"tabular": tabular, "sequence": sequence,
         "score.lightgbm": booster.predict(tabular).astype(np.float32),
         "score.xgboost": xgb_booster.inplace_predict(tabular).astype(np.float32),
         "score.lstm": lstm_golden.astype(np.float32)},
        str(directory / "golden.safetensors"),
    )
    names = [f"f{i}" for i in range(n_features)]
    spec = {
        "format_version": 1, "created_at": int(time.time() * 1000), "feature_names": names,
        "feature_schema_hash": schema_hash(names), "sequence_length": length,
        "horizon_bars": settings.training.label_horizon_bars, "horizons": horizons,
        "ensemble": {"method": "average", "weights": {}},
        "members": [
            {"name": "lightgbm", "kind": "lightgbm", "input": "tabular", "n_features": n_features,
             "files": {"model": "lightgbm/model.txt"}},
            {"name": "xgboost", "kind": "xgboost", "input": "tabular", "n_features": n_features,
             "files": {"model": "xgboost/model.json"}},
            {"name": "lstm", "kind": "lstm", "input": "sequence", "n_features": n_features, "sequence_length": length,
             "files": {"onnx": "lstm/model.onnx", "weights": "lstm/model.safetensors", "config": "lstm/config.json"}},
        ],
        "golden": "golden.safetensors",
    }
    (directory / "model_set.json").write_text(json.dumps(spec))
    return {"booster": booster, "xgb_booster": xgb_booster, "network": network, "target": target}


def run(settings, *, rounds: int = 30, rows: tuple[int, ...] = ROWS, keep_dir: str | None = None) -> dict:
    """Run the benchmark; returns the figures (see the module docstring)."""
    import onnxruntime
    import torch

    from models.export import read_artifact
    from models.export.writer import export_model_set
    from models.publish import build_manifest
    from models.triton_backend import ServingOptions
    from signalml.config import load_settings
    from signalml.services.process import free_port
    from signalml.services.triton import TritonServer
    from stream.features.names import feature_names
    from stream.inference import SyncInferenceClient

    n_features = len(feature_names(settings.features))
    load_start = round(os.getloadavg()[0], 2)
    work = Path(keep_dir or tempfile.mkdtemp(prefix="signalml-bench-inference-"))
    started = time.perf_counter()
    natives = _model_set(settings, work / "model_set", n_features)
    build_s = time.perf_counter() - started
    artifact = read_artifact(work)

    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    private = load_settings(
        overrides={
            **settings.model_dump(exclude={"root"}, mode="json"),
            "paths": {"state_dir": str(work / "state"), "data": settings.paths.data},
            "triton": {**settings.triton.model_dump(mode="json"), "repository": str(work / "repo"),
                       "venv": str(settings.path(settings.triton.venv)), **ports},
        }
    )
    server = TritonServer(private)
    server.start()
    try:
        options = ServingOptions.from_settings(settings)
        exported = export_model_set(artifact, private.triton_repository, "cpu", options)
        for e in exported:
            server.load_model(e.name)
        manifest = build_manifest(artifact, {e.name: e.version for e in exported}, previous=None)
        length = artifact.sequence_length
        session = onnxruntime.InferenceSession(
            str(artifact.members[2].model_file), providers=["CPUExecutionProvider"]
        )
        rng = np.random.default_rng(7)
        results: dict = {}
        with SyncInferenceClient.from_settings(private, timeout_s=60) as client:
            for n in rows:
                x = rng.normal(size=(n, n_features)).astype(np.float32)
                s = rng.normal(size=(n, length, n_features)).astype(np.float32)
                calls = {
                    "native.lightgbm": lambda: natives["booster"].predict(x),
                    "native.xgboost": lambda: natives["xgb_booster"].inplace_predict(x),
                    "native.lstm": lambda: _torch_eager(torch, natives["network"], s),
                    "native.lstm_onnxruntime": lambda: session.run(["SCORE"], {"SEQUENCES": s}),
                }
                for m in manifest.members:
                    rows_of = x if m.input == "tabular" else s
                    calls[f"triton.{m.name}"] = lambda m=m, r=rows_of: client.infer(m.name, m.version, r)
                calls["triton.fanout"] = lambda: client.score(manifest, x, s)
                samples = _time_interleaved(calls, rounds)
                native = {k.split(".", 1)[1]: v for k, v in samples.items() if k.startswith("native.")}
                served = {k.split(".", 1)[1]: v for k, v in samples.items() if k.startswith("triton.")}
                members = [m.name for m in manifest.members]
                native_total = [sum(parts) for parts in zip(*(native[k] for k in members))]
                entry = {
                    "native": {k: _percentiles(v) for k, v in native.items()},
                    "triton": {k: _percentiles(v) for k, v in served.items()},
                }
                entry["native"]["all_members_sequential"] = _percentiles(native_total)
                entry["ratio_p50"] = {
                    k: round(entry["triton"][k]["p50_ms"] / entry["native"][k]["p50_ms"], 2) for k in members
                }
                entry["ratio_p50"]["fanout"] = round(
                    entry["triton"]["fanout"]["p50_ms"] / entry["native"]["all_members_sequential"]["p50_ms"], 2
                )
                results[str(n)] = entry
    finally:
        server.stop()
        if keep_dir is None:
            shutil.rmtree(work, ignore_errors=True)
    return {
        "model_set": {
            "n_features": n_features,
            "sequence_length": artifact.sequence_length,
            "lightgbm_trees": settings.models.lightgbm.n_estimators,
            "lightgbm_leaves": settings.models.lightgbm.num_leaves,
            "xgboost_trees": settings.models.xgboost.n_estimators,
            "xgboost_depth": settings.models.xgboost.max_depth,
            "lstm": f"hidden {settings.models.lstm.hidden_size} x {settings.models.lstm.num_layers} layers",
        },
        "serving": {
            "target": "cpu (Python backend)",
            "dynamic_batching": settings.serving.dynamic_batching.enabled,
            "instance_count": settings.serving.instance_count,
            "client": "tritonclient gRPC aio",
        },
        "rounds": rounds,
        "cpu_count": os.cpu_count(),
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "build_s": round(build_s, 1),
        "rows": results,
    }


def _torch_eager(torch, network, sequences: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return network(torch.from_numpy(sequences)).numpy()


if __name__ == "__main__":
    from signalml.config import load_settings

    print(json.dumps(run(load_settings()), indent=2))
