"""The model-set manifest of a published artifact (``ModelSetManifest``)."""

from __future__ import annotations

import hashlib
import math
import time
from datetime import datetime, timezone

from models.export.artifact import ModelSetArtifact
from signalml.contracts import ManifestMember, ModelSetManifest, ReferenceBins


def model_set_id(artifact: ModelSetArtifact, versions: dict[str, int], now_s: float | None = None) -> str:
    """``ms-<yyyymmddHHMMSS UTC>-<hash8>``; the hash covers the artifact's
    files and the versions it was published as."""
    now = datetime.fromtimestamp(time.time() if now_s is None else now_s, tz=timezone.utc)
    digest = hashlib.sha256(artifact.content_hash().encode())
    digest.update(repr(sorted(versions.items())).encode())
    return f"ms-{now:%Y%m%d%H%M%S}-{digest.hexdigest()[:8]}"


def build_manifest(
    artifact: ModelSetArtifact, versions: dict[str, int], *, previous: str | None, now_s: float | None = None
) -> ModelSetManifest:
    spec = artifact.spec
    ensemble = spec["ensemble"]
    weights = {k: float(v) for k, v in (ensemble.get("weights") or {}).items()}
    stacking = ensemble.get("stacking") or {}
    coefficients = {k: float(v) for k, v in (stacking.get("coefficients") or {}).items()}
    now_s = time.time() if now_s is None else now_s
    return ModelSetManifest(
        model_set=model_set_id(artifact, versions, now_s),
        created_at=int(now_s * 1000),
        members=[
            ManifestMember(m.name, versions[m.name], m.kind, m.input, weights.get(m.name, 1.0))
            for m in artifact.members
        ],
        ensemble_method=ensemble["method"],
        feature_names=artifact.feature_names,
        feature_schema_hash=spec["feature_schema_hash"],
        horizon_bars=int(spec.get("horizon_bars", 0)),
        sequence_length=artifact.sequence_length,
        ensemble_weights=weights,
        stacking_coefficients=coefficients,
        stacking_intercept=float(stacking.get("intercept") or 0.0),
        drift_reference=_reference(spec.get("drift_reference") or {}),
        training_metrics=_metrics(spec.get("training_metrics") or {}),
        previous=previous,
        training_window={str(k): str(v) for k, v in (spec.get("training_window") or {}).items()},
    )


def _reference(raw: dict) -> dict[str, ReferenceBins]:
    """Bins of every feature and score; entries without edges/fractions
    (or with non-finite values) are left out."""
    out = {}
    for name, bins in raw.items():
        if not isinstance(bins, dict) or "edges" not in bins or "fractions" not in bins:
            continue
        edges = [float(e) for e in bins["edges"]]
        fractions = [float(f) for f in bins["fractions"]]
        levels = {k: float(bins[k]) for k in ("warning_psi", "critical_psi")
                  if bins.get(k) is not None and math.isfinite(float(bins[k]))}
        if all(math.isfinite(v) for v in edges + fractions):
            out[str(name)] = ReferenceBins(edges=edges, fractions=fractions, **levels)
    return out


def _metrics(raw: dict) -> dict[str, dict[str, float]]:
    """``{group: {metric: value}}`` with the finite numbers of the
    artifact's metrics; deeper nesting is flattened with dots."""
    out: dict[str, dict[str, float]] = {}
    for group, values in raw.items():
        if isinstance(values, dict):
            flat = _flatten(values)
            if flat:
                out[str(group)] = flat
        elif _number(values):
            out.setdefault("model_set", {})[str(group)] = float(values)
    return out


def _flatten(values: dict, prefix: str = "") -> dict[str, float]:
    flat = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif _number(value):
            flat[name] = float(value)
    return flat


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
