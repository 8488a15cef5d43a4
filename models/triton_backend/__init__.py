"""Write Triton model directories served by the Python backend (CPU target).

Layout written for model ``NAME`` version ``V``::

    <repository>/NAME/config.pbtxt      backend "python", dynamic batching, KIND_CPU
    <repository>/NAME/V/model.py        this package's model.py, unchanged
    <repository>/NAME/V/model.txt       the model in its native format (never pickle):
                                        model.txt (LightGBM text), model.ubj (XGBoost UBJSON)

The version folder is built under a temporary name and renamed into place,
so a Triton that polls or is told to ``load_model`` never sees half a
version. ``model.py`` picks the scorer from the ``format`` parameter in
``config.pbtxt``; LightGBM and XGBoost are wired today (``FORMATS`` lists
the file each format uses, so ONNX adds one entry here and one scorer
class there).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any, Sequence

MODEL_PY = Path(__file__).with_name("model.py")
INPUT, OUTPUT = "FEATURES", "SCORE"
FORMATS: dict[str, str] = {"lightgbm": "model.txt", "xgboost": "model.ubj"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


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
    """``config.pbtxt`` text: ``FEATURES`` FP32 [-1, n_features] in,
    ``SCORE`` FP32 [-1, 1] out: one score per row. (A batched Triton output
    cannot be declared as plain [-1]; ``dims: [1]`` is the convention stock
    backends such as FIL use too, so clients flatten with ``reshape(-1)``.)

    ``max_queue_delay_us`` is microseconds; ``num_threads`` 0 leaves the
    library's default thread count."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown model format {fmt!r}; known: {sorted(FORMATS)}")
    if n_features < 1 or max_batch_size < 1 or instance_count < 1:
        raise ValueError("n_features, max_batch_size and instance_count must be >= 1")
    params = {"format": fmt, "num_threads": str(num_threads)}
    lines = [
        f'name: "{name}"',
        'backend: "python"',
        f"max_batch_size: {max_batch_size}",
        f'input [ {{ name: "{INPUT}" data_type: TYPE_FP32 dims: [ {n_features} ] }} ]',
        f'output [ {{ name: "{OUTPUT}" data_type: TYPE_FP32 dims: [ 1 ] }} ]',
        f"instance_group [ {{ count: {instance_count} kind: KIND_CPU }} ]",
    ]
    if dynamic_batching:
        preferred = "".join(f" preferred_batch_size: {b}" for b in preferred_batch_sizes)
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us}{preferred} }}")
    lines += [f'parameters {{ key: "{k}" value: {{ string_value: "{v}" }} }}' for k, v in params.items()]
    return "\n".join(lines) + "\n"


def next_version(model_dir: Path) -> int:
    """One more than the highest numeric version folder (1 when none)."""
    versions = [int(p.name) for p in model_dir.glob("*") if p.is_dir() and p.name.isdigit()]
    return max(versions, default=0) + 1


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
    of model ``name``; returns the version folder. ``config`` goes to
    :func:`render_config`. An existing version is replaced only with
    ``overwrite=True``."""
    if not _NAME.match(name):
        raise ValueError(f"invalid model name {name!r} (letters, digits, '_', '.', '-')")
    model_dir = Path(repository) / name
    model_dir.mkdir(parents=True, exist_ok=True)
    version = next_version(model_dir) if version is None else int(version)
    if version < 1:
        raise ValueError(f"model version must be >= 1, got {version}")
    target = model_dir / str(version)
    if target.exists() and not overwrite:
        raise FileExistsError(f"{target} exists; versions are immutable (pass overwrite=True to replace)")

    _write_atomic(model_dir / "config.pbtxt", render_config(name, n_features, fmt, **config).encode())
    staging = Path(tempfile.mkdtemp(prefix=f".{version}.", dir=model_dir))
    try:
        shutil.copyfile(MODEL_PY, staging / "model.py")
        (staging / FORMATS[fmt]).write_bytes(model_bytes)
        staging.chmod(0o755)
        if target.exists():
            old = model_dir / f".{version}.old"
            shutil.rmtree(old, ignore_errors=True)
            target.rename(old)
            staging.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


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
    text = booster.model_to_string()
    return write_model(
        repository,
        name,
        text.encode(),
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


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
