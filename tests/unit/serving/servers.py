"""Helpers for the serving integration tests: a private Triton (free ports,
temporary repository and state) and the native scores to compare with."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from signalml.config import Settings, load_settings
from signalml.services.process import free_port
from signalml.services.triton import TritonServer

REPO_ROOT = Path(__file__).resolve().parents[3]
VENV = REPO_ROOT / ".venv-triton"


def private_settings(tmp: Path, **overrides) -> Settings:
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    triton = {"repository": str(tmp / "repo"), "venv": str(VENV), "startup_timeout_s": 60, **ports}
    data = {"paths": {"state_dir": str(tmp / "state")}, "triton": triton}
    for section, values in overrides.items():
        data[section] = {**data.get(section, {}), **values}
    return load_settings(REPO_ROOT / "signalml.yaml", overrides=data)


@contextmanager
def private_triton(tmp: Path, **overrides):
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup-triton.sh"), str(VENV)], check=True, timeout=900)
    server = TritonServer(private_settings(tmp, **overrides))
    server.start()
    try:
        yield server
    finally:
        server.stop()


def native_scores(artifact_dir: Path, tabular: np.ndarray, sequences: np.ndarray) -> dict[str, np.ndarray]:
    """Each member's scores computed in this process from its files
    (LightGBM, XGBoost, ONNX Runtime), float64 [N]."""
    from models.export import load_native, read_artifact

    artifact = read_artifact(artifact_dir)
    out = {}
    for member in artifact.members:
        x = tabular if member.input == "tabular" else sequences[:, -member.sequence_length :, :]
        out[member.name] = load_native(member)(np.ascontiguousarray(x))
    return out
