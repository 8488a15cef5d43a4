"""Write the model set of the final window: ``DIR/model_set/``.

Layout (paths relative to ``model_set/``): ``model_set.json`` (the
manifest the publisher reads), one folder per member with its native files
(whatever ``Member.save`` writes: LightGBM text, XGBoost JSON, ONNX +
safetensors + config), and ``golden.safetensors``: ``tabular`` float32
[G, F] and ``sequence`` float32 [G, T, F] (G rows of the last test window)
plus ``score.<member>`` float32 [G], the native models' predictions on
those rows, which the publisher checks Triton's answers against.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np

from models.ensemble import manifest_entry
from signalml.config import Settings
from signalml.contracts import schema_hash
from signalml.jsonio import jsonable, read_json, write_json
from training.dataset import Dataset
from training.drift_reference import calibrate, drift_reference, full_windows
from training.window import WindowFit, member_input, sequence_length_of

FORMAT_VERSION = 1
MANIFEST = "model_set.json"
GOLDEN = "golden.safetensors"
GOLDEN_ROWS = 256
DRIFT_ROWS = 50_000


def golden_rows(dataset: Dataset, stop_bar: int, count: int = GOLDEN_ROWS) -> np.ndarray:
    """The last ``count`` rows before bar ``stop_bar`` (the end of the last
    test window): its latest cross-sections, and earlier bars' when the
    window holds fewer rows."""
    rows = np.arange(len(dataset))[dataset.rows_of_dates(0, stop_bar)]
    return rows[-count:]


def sequence_length_of_set(members, settings: Settings) -> int:
    lengths = [sequence_length_of(m, settings) for m in members if m.input == "sequence"]
    return max(lengths) if lengths else 0


def write_model_set(
    out_dir: str | os.PathLike[str],
    *,
    dataset: Dataset,
    settings: Settings,
    final: WindowFit,
    golden: np.ndarray,
    training_metrics: dict[str, dict[str, float]],
) -> dict:
    """Write ``out_dir/model_set/`` and return the manifest."""
    directory = Path(out_dir) / "model_set"
    staging = Path(out_dir) / ".model_set.partial"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)

    sequence_length = sequence_length_of_set(final.members, settings)
    member_entries = []
    for member in final.members:
        files = member.save(staging / member.name)
        entry = {
            "name": member.name,
            "kind": member.kind,
            "input": member.input,
            "n_features": int(member.n_features),
            "files": {role: f"{member.name}/{path}" for role, path in files.items()},
        }
        if member.input == "sequence":
            entry["sequence_length"] = sequence_length_of(member, settings)
        member_entries.append(entry)

    golden_length = sequence_length or settings.features.sequence_length
    golden_scores = _write_golden(staging / GOLDEN, dataset, final, golden, golden_length, settings)
    spread = np.linspace(0, len(final.fit_rows) - 1, min(DRIFT_ROWS, len(final.fit_rows)))
    drift_rows = final.fit_rows[spread.astype(np.int64)]
    reference = drift_reference(
        dataset.features[drift_rows],
        dataset.feature_names,
        {name: final.valid_scores[:, j] for j, name in enumerate(final.member_names)},
    )
    # Levels for the columns that move that much window to window in training,
    # over the windows their live PSI uses: the engine's for features, the
    # monitor's for scores.
    fit_windows = full_windows(dataset.date_index[final.fit_rows], settings.serving.psi_window_bars)
    valid_windows = full_windows(dataset.date_index[final.valid_rows], settings.monitor.score_psi_window_bars)
    columns = {name: (dataset.features[final.fit_rows, j], fit_windows) for j, name in enumerate(dataset.feature_names)}
    columns.update({f"score:{name}": (final.valid_scores[:, j], valid_windows)
                    for j, name in enumerate(final.member_names)})
    reference = calibrate(reference, columns)
    names = list(dataset.feature_names)
    manifest = {
        "format_version": FORMAT_VERSION,
        "created_at": int(time.time() * 1000),
        "feature_names": names,
        "feature_schema_hash": schema_hash(names),
        "normalization": settings.features.normalization,
        "clip_z": float(settings.features.clip_z),
        "sequence_length": int(sequence_length),
        "horizon_bars": int(dataset.horizon_bars),
        "label_entry_lag_bars": int(dataset.entry_lag_bars),
        "horizons": [int(h) for h in dataset.horizons],
        "ensemble": manifest_entry(
            final.ensembles[settings.ensemble.method], final.ensembles["ic_weighted"], final.ensembles["stacking"]
        ),
        "ensemble_sample": final.ensemble_sample,
        "members": member_entries,
        "drift_reference": reference,
        "drift_reference_space": "normalized_features",
        "training_metrics": training_metrics,
        "training_window": {
            "first_date": str(np.datetime_as_string(dataset.dates[final.fold.train_start], unit="D")),
            "last_date": str(np.datetime_as_string(dataset.dates[final.fold.train_stop - 1], unit="D")),
            # the last close a fit label read: from this bar on the set is out of sample
            "last_label_end": str(np.datetime_as_string(
                dataset.dates[min(final.fold.train_stop - 1 + dataset.label_span_bars, dataset.n_dates - 1)], unit="s"
            )),
        },
        "golden": GOLDEN,
        "golden_rows": int(len(golden)),
    }
    write_json(staging / MANIFEST, manifest)
    shutil.rmtree(directory, ignore_errors=True)
    staging.rename(directory)
    return {**jsonable(manifest), "_golden_scores": golden_scores}


def _write_golden(
    path: Path, dataset: Dataset, final: WindowFit, rows: np.ndarray, length: int, settings: Settings
) -> dict[str, np.ndarray]:
    from safetensors.numpy import save_file

    tensors = {
        "tabular": np.ascontiguousarray(dataset.features[rows], dtype=np.float32),
        "sequence": np.ascontiguousarray(dataset.sequences(rows, length), dtype=np.float32),
    }
    scores = {}
    for member in final.members:
        data = member_input(dataset, member, rows, label_cutoff_bar=-1, settings=settings)
        scores[member.name] = np.asarray(member.predict(data), dtype=np.float32)
        tensors[f"score.{member.name}"] = np.ascontiguousarray(scores[member.name])
    save_file(tensors, str(path))
    return scores


def default_member_loader(kind: str, directory: Path, files: dict[str, str]):
    from models.factory import load_member

    return load_member(kind, directory, files)


def verify_model_set(
    directory: str | os.PathLike[str], *, atol: float = 1e-5, member_loader=default_member_loader
) -> dict[str, float]:
    """Load every member from its saved files and score the golden rows;
    returns {member: max |loaded − golden|}. Raises when one exceeds
    ``atol`` (relative to the score scale) or a file is missing."""
    from safetensors.numpy import load_file

    from models.base import SequenceData, TabularData

    directory = Path(directory)
    manifest = read_json(directory / MANIFEST)
    golden = load_file(str(directory / manifest["golden"]))
    tabular, sequence = golden["tabular"], golden["sequence"]
    g = len(tabular)
    horizons = tuple(manifest["horizons"])
    target = horizons.index(manifest["horizon_bars"])
    y = np.full((g, len(horizons)), np.nan)
    groups = np.zeros(g, dtype=np.int64)
    differences = {}
    for entry in manifest["members"]:
        prefix = entry["name"] + "/"
        files = {role: path[len(prefix):] if path.startswith(prefix) else path for role, path in entry["files"].items()}
        member = member_loader(entry["kind"], directory / entry["name"], files)
        if entry["input"] == "sequence":
            length = int(entry.get("sequence_length", sequence.shape[1]))
            windows = sequence[:, -length:, :]
            panel = windows.reshape(g * length, -1)
            end_rows = np.arange(g, dtype=np.int64) * length + length - 1
            data = SequenceData(panel, end_rows, length, y, groups, horizons, target)
        else:
            data = TabularData(tabular, y, groups, horizons, target)
        loaded = np.asarray(member.predict(data), dtype=np.float64)
        expected = golden[f"score.{entry['name']}"].astype(np.float64)
        difference = float(np.max(np.abs(loaded - expected))) if g else 0.0
        scale = max(1.0, float(np.max(np.abs(expected))) if g else 1.0)
        if difference > atol * scale:
            raise AssertionError(f"{entry['name']}: loaded model differs from the golden scores by {difference:.3g}")
        differences[entry["name"]] = difference
    return differences
