"""The Triton metric names on the Grafana dashboard exist on a real Triton.

Per-model counters appear on Triton's /metrics only while a model is loaded
and after it served a request, so a throwaway LightGBM model (a
``test_*`` folder of the running stack's repository, ignored by git, removed
afterwards) is loaded into the running Triton and asked once.
"""

from __future__ import annotations

import shutil
import urllib.request
import uuid

import lightgbm as lgb
import numpy as np
import pytest
import tritonclient.grpc as grpcclient

from models.triton_backend import write_lightgbm_model
from signalml.services.triton import TritonServer
from tests.unit.test_dashboard import TRITON_METRICS

pytestmark = pytest.mark.integration

N_FEATURES = 4


def scrape_names(url: str) -> dict[str, set[str]]:
    """Metric name -> the ``model`` labels seen (empty for unlabelled ones)."""
    text = urllib.request.urlopen(url, timeout=10).read().decode()
    names: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name = line.split("{", 1)[0].split(" ", 1)[0]
        model = line.split('model="', 1)[1].split('"', 1)[0] if 'model="' in line else None
        names.setdefault(name, set()).update({model} if model else set())
    return names


@pytest.fixture
def served_once(stack, settings):
    """A model loaded into the running Triton that has answered one request."""
    name = f"test_dashboard_{uuid.uuid4().hex[:8]}"
    rng = np.random.default_rng(3)
    x = rng.normal(size=(200, N_FEATURES))
    booster = lgb.train({"objective": "regression", "verbose": -1, "num_leaves": 4}, lgb.Dataset(x, x[:, 0]), 5)
    write_lightgbm_model(settings.triton_repository, name, booster, max_batch_size=64)
    server = TritonServer(settings)
    try:
        server.load_model(name)
        client = grpcclient.InferenceServerClient(settings.triton.grpc_url)
        features = grpcclient.InferInput("FEATURES", [8, N_FEATURES], "FP32")
        features.set_data_from_numpy(x[:8].astype(np.float32))
        client.infer(name, [features], outputs=[grpcclient.InferRequestedOutput("SCORE")])
        yield name, f"http://{settings.triton.host}:{settings.triton.metrics_port}/metrics"
    finally:
        try:
            server.unload_model(name)
        finally:
            shutil.rmtree(settings.triton_repository / name, ignore_errors=True)


def test_every_triton_metric_on_the_dashboard_is_on_triton_s_metrics_endpoint(served_once):
    model, url = served_once
    scraped = scrape_names(url)
    missing = sorted(TRITON_METRICS - set(scraped))
    assert missing == [], f"not exported by Triton at {url}: {missing}"
    per_model = {name for name in TRITON_METRICS if name.startswith("nv_inference_")}
    assert all(model in scraped[name] for name in per_model), "per-model series carry the model label"
