"""The Triton model repository side of serving: configs for the two
deployment targets, version folders written atomically, and the
Python-backend model (``model.py`` + ``scoring.py``) of the cpu target.

Layout written for model ``NAME`` version ``V`` on the cpu target::

    <repository>/NAME/config.pbtxt   backend "python", version_policy all, batching from settings
    <repository>/NAME/V/model.py     this package's model.py, unchanged
    <repository>/NAME/V/scoring.py   this package's scoring.py, unchanged
    <repository>/NAME/V/model.txt    the model in its native format (never pickle):
                                     model.txt (LightGBM text), model.ubj/model.json
                                     (XGBoost), model.onnx (deep models)

and on the gpu target (stock Triton)::

    <repository>/NAME/config.pbtxt   backend "fil" | platform "onnxruntime_onnx" (+ TensorRT)
    <repository>/NAME/V/model.txt | xgboost.json | model.onnx | model.plan

``models.export`` turns a trained model-set artifact into these folders;
``models.publish`` loads, checks and announces them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from models.triton_backend.configs import (
    FEATURES,
    HORIZONS,
    SCORE,
    SEQUENCES,
    ServingOptions,
    Tensor,
    parse_config,
    render_config,
    render_cpu_config,
    render_fil_config,
    render_onnx_config,
    render_python_config,
    render_tensorrt_plan_config,
)
from models.triton_backend.names import MODEL_NAME, contained_path, validate_model_name
from models.triton_backend.repository import (
    model_dir,
    next_version,
    remove_version,
    versions,
    write_config,
    write_version,
)

BACKEND_FILES = {"model.py": Path(__file__).with_name("model.py"), "scoring.py": Path(__file__).with_name("scoring.py")}
FORMATS: dict[str, str] = {"lightgbm": "model.txt", "xgboost": "model.ubj", "onnx": "model.onnx"}
INPUT, OUTPUT = FEATURES, SCORE

__all__ = [
    "BACKEND_FILES",
    "FEATURES",
    "FORMATS",
    "HORIZONS",
    "MODEL_NAME",
    "SCORE",
    "SEQUENCES",
    "ServingOptions",
    "Tensor",
    "contained_path",
    "model_dir",
    "next_version",
    "parse_config",
    "remove_version",
    "render_config",
    "render_cpu_config",
    "render_fil_config",
    "render_onnx_config",
    "render_python_config",
    "render_tensorrt_plan_config",
    "validate_model_name",
    "versions",
    "write_config",
    "write_lightgbm_model",
    "write_model",
    "write_onnx_model",
    "write_python_version",
    "write_version",
    "write_xgboost_model",
]


def write_python_version(
    repository: str | os.PathLike[str],
    name: str,
    files: dict[str, Any],
    config_text: str,
    *,
    version: int | None = None,
    overwrite: bool = False,
) -> Path:
    """Write a Python-backend version (``files`` plus ``model.py`` and
    ``scoring.py``) and the model's config; returns the version folder."""
    folder = model_dir(repository, name)
    folder.mkdir(parents=True, exist_ok=True)
    version = next_version(folder) if version is None else int(version)
    target = write_version(folder, version, {**BACKEND_FILES, **files}, overwrite=overwrite)
    write_config(folder, config_text)
    return target


def write_model(
    repository: str | os.PathLike[str],
    name: str,
    model_bytes: bytes,
    *,
    n_features: int,
    fmt: str = "lightgbm",
    version: int | None = None,
    overwrite: bool = False,
    **config: Any,
) -> Path:
    """Write ``config.pbtxt`` and version ``version`` (default: the next one)
    of a tabular model ``name`` in format ``fmt``; returns the version
    folder. ``config`` goes to :func:`render_config`. An existing version is
    replaced only with ``overwrite=True``."""
    validate_model_name(name)
    if fmt not in ("lightgbm", "xgboost"):
        raise ValueError(f"write_model writes tabular formats (lightgbm, xgboost), not {fmt!r}")
    text = render_config(name, n_features, fmt, **config)
    return write_python_version(
        repository, name, {FORMATS[fmt]: model_bytes}, text, version=version, overwrite=overwrite
    )


def write_lightgbm_model(
    repository: str | os.PathLike[str],
    name: str,
    booster: Any,
    *,
    version: int | None = None,
    overwrite: bool = False,
    **config: Any,
) -> Path:
    """Write a ``lightgbm.Booster`` (or an ``LGBMModel``, or the path of a
    saved ``model.txt``) as a Triton model; F comes from the model."""
    if isinstance(booster, (str, os.PathLike)):
        import lightgbm

        booster = lightgbm.Booster(model_file=str(booster))
    booster = getattr(booster, "booster_", booster)  # sklearn wrapper -> Booster
    return write_model(
        repository,
        name,
        booster.model_to_string().encode(),
        n_features=booster.num_feature(),
        fmt="lightgbm",
        version=version,
        overwrite=overwrite,
        **config,
    )


def write_xgboost_model(
    repository: str | os.PathLike[str],
    name: str,
    booster: Any,
    *,
    version: int | None = None,
    overwrite: bool = False,
    **config: Any,
) -> Path:
    """Write an ``xgboost.Booster`` (or an sklearn-API ``XGBModel``) as a
    Triton model, saved as UBJSON (``model.ubj``); F comes from the model."""
    booster = booster.get_booster() if hasattr(booster, "get_booster") else booster
    return write_model(
        repository,
        name,
        bytes(booster.save_raw("ubj")),
        n_features=booster.num_features(),
        fmt="xgboost",
        version=version,
        overwrite=overwrite,
        **config,
    )


def write_onnx_model(
    repository: str | os.PathLike[str],
    name: str,
    onnx_file: str | os.PathLike[str],
    *,
    kind: str = "lstm",
    options: ServingOptions = ServingOptions(),
    version: int | None = None,
    overwrite: bool = False,
    extra_files: dict[str, Any] | None = None,
) -> Path:
    """Write an ONNX deep model (``SEQUENCES`` [N, T, F] -> ``SCORE`` [N, 1])
    as a Python-backend model of the cpu target. ``extra_files`` (e.g. the
    torch runtime's ``architecture.py``, ``config.json``,
    ``model.safetensors``) go into the version folder too."""
    files = {"model.onnx": Path(onnx_file), **(extra_files or {})}
    text = render_cpu_config(name, kind, options)
    return write_python_version(repository, name, files, text, version=version, overwrite=overwrite)
