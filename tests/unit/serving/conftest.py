from __future__ import annotations

import shutil

import pytest

from models.export import read_artifact
from tests.unit.serving.artifacts import cached_artifact


@pytest.fixture(scope="session")
def artifact_dir(tmp_path_factory):
    return cached_artifact(tmp_path_factory, 0)


@pytest.fixture(scope="session")
def artifact(artifact_dir):
    return read_artifact(artifact_dir)


@pytest.fixture
def editable_artifact(artifact_dir, tmp_path):
    """A private copy of the artifact, to damage."""
    return shutil.copytree(artifact_dir, tmp_path / "artifact")
