"""Publish: a trained model set into Triton (explicit model control) and
onto the control topic, atomically; rollback to the previous set.

``publish(settings, artifact_dir) -> ModelSetManifest`` and
``rollback(settings) -> ModelSetManifest`` are what ``signalml publish
DIR [--rollback]`` runs. Manifests live in ``<triton repository>/_model_sets/``.
"""

from models.publish.control import CHALLENGER_KEY, MANIFEST_KEY, send_manifest
from models.publish.manifest import build_manifest, model_set_id
from models.publish.publisher import KEEP_VERSIONS, current_manifest, load_current, promote, publish, rollback
from models.publish.store import ModelSetStore
from stream.inference.errors import PublishError

__all__ = [
    "CHALLENGER_KEY",
    "KEEP_VERSIONS",
    "MANIFEST_KEY",
    "ModelSetStore",
    "PublishError",
    "build_manifest",
    "current_manifest",
    "load_current",
    "model_set_id",
    "promote",
    "publish",
    "rollback",
    "send_manifest",
]
