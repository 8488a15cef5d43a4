"""The embedded Triton server, for real: an independent server on free ports
with a temporary repository and state directory, a LightGBM model trained
here, inference over gRPC and HTTP compared with the native booster.

Needs the server venv (``scripts/setup-triton.sh``; the fixture runs it, a
no-op when the venv is up to date).
"""

from __future__ import annotations

import socket
import subprocess
import threading
from functools import partial
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
import xgboost as xgb
from tritonclient.utils import InferenceServerException

from models.triton_backend import write_lightgbm_model, write_model, write_xgboost_model
from signalml.config import load_settings
from signalml.errors import PortInUseError, ServiceError, SetupError
from signalml.services.process import free_port
from signalml.services.triton import TritonServer

pytestmark = pytest.mark.integration

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV = REPO_ROOT / ".venv-triton"
N_FEATURES = 8
MODEL = "lgb_test"
# Served scores are float32; the native booster computes in float64 on the
# same float32 rows. Rounding to float32 is within half an ulp, so one ulp
# relative (2**-23 ~ 1.19e-7) bounds the difference.
RTOL = 2.0**-23
NUL = b"\0"


def _settings(tmp: Path, venv: Path = VENV, **triton):
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    return load_settings(
        overrides={
            "paths": {"state_dir": str(tmp / "state")},
            "triton": {
                "repository": str(tmp / "repo"),
                "venv": str(venv),  # absolute: the project's venv, not one under tmp
                "startup_timeout_s": 60,
                **ports,
                **triton,
            },
        }
    )


def _our_processes(server: TritonServer, pid: int | None) -> list[str]:
    """Live processes that are ours: the server (its marker in the command
    line), its process group, or a backend stub serving our repository."""
    repo = str(server.settings.triton_repository.resolve()).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if stat[0] == "Z":
            continue
        if server.marker.encode() in cmdline or repo in cmdline or (pid is not None and int(stat[2]) == pid):
            found.append(f"{entry.name}: {cmdline.replace(NUL, b' ').decode(errors='replace')[:160]}")
    return found


@pytest.fixture(scope="module")
def booster() -> lgb.Booster:
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, N_FEATURES))
    y = x[:, 0] - 0.5 * x[:, 1] ** 2 + np.sin(3 * x[:, 2]) + rng.normal(scale=0.1, size=len(x))
    params = {"objective": "regression", "num_leaves": 15, "learning_rate": 0.1, "verbose": -1, "seed": 7}
    model = lgb.train(params, lgb.Dataset(x, y), num_boost_round=60)
    assert np.std(model.predict(x)) > 0.5  # a real model, not a constant
    return model


@pytest.fixture(scope="module")
def rows() -> np.ndarray:
    return np.random.default_rng(11).normal(size=(300, N_FEATURES)).astype(np.float32)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    subprocess.run(["bash", str(REPO_ROOT / "scripts" / "setup-triton.sh"), str(VENV)], check=True, timeout=900)
    tmp = tmp_path_factory.mktemp("triton")
    srv = TritonServer(_settings(tmp))
    assert not srv.settings.triton_repository.exists()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def loaded(server, booster):
    """The test model, written once and loaded (a no-op when already loaded)."""
    if not (server.settings.triton_repository / MODEL / "1").exists():
        write_lightgbm_model(server.settings.triton_repository, MODEL, booster, max_batch_size=1024)
    server.load_model(MODEL)
    return MODEL


def _infer_grpc(server, name, x):
    client = grpcclient.InferenceServerClient(server.settings.triton.grpc_url)
    inp = grpcclient.InferInput("FEATURES", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    return client.infer(name, [inp], outputs=[grpcclient.InferRequestedOutput("SCORE")]).as_numpy("SCORE")


def _infer_http(server, name, x):
    client = httpclient.InferenceServerClient(server.settings.triton.http_url)
    inp = httpclient.InferInput("FEATURES", list(x.shape), "FP32")
    inp.set_data_from_numpy(x, binary_data=True)
    return client.infer(name, [inp], outputs=[httpclient.InferRequestedOutput("SCORE")]).as_numpy("SCORE")


def test_started_server_is_ready_and_created_the_repository(server):
    status = server.status()
    assert status["running"] and status["ready"]
    assert status["version"] == "2.51.0" == server.version()
    assert status["ports"] == {
        "http": server.settings.triton.http_port,
        "grpc": server.settings.triton.grpc_port,
        "metrics": server.settings.triton.metrics_port,
    }
    assert server.settings.triton_repository.is_dir()
    assert status["pid"] and _our_processes(server, status["pid"])


@pytest.mark.parametrize("transport", ["grpc", "http"])
@pytest.mark.parametrize("n_rows", [1, 300])
def test_served_scores_equal_native_predict(server, loaded, booster, rows, transport, n_rows):
    x = np.ascontiguousarray(rows[:n_rows])
    served = (_infer_grpc if transport == "grpc" else _infer_http)(server, loaded, x)
    assert served.dtype == np.float32
    assert served.shape == (n_rows, 1)
    native = booster.predict(x)  # float64 on the same float32 rows
    np.testing.assert_allclose(served.reshape(-1), native, rtol=RTOL, atol=0)


def test_concurrent_requests_batched_together_get_their_own_rows(server, loaded, booster, rows):
    # 24 requests in flight at once, of different sizes: the dynamic batcher
    # hands several to one execute(), which scores them with one predict and
    # must split the scores back per request.
    client = grpcclient.InferenceServerClient(server.settings.triton.grpc_url)
    results: dict[int, np.ndarray] = {}
    errors: list[str] = []
    done = threading.Event()
    lock = threading.Lock()
    slices = [(i * 7 % 250, i * 7 % 250 + 1 + i % 9) for i in range(24)]

    def callback(i, result, error):
        with lock:
            if error is not None:
                errors.append(str(error))
            else:
                results[i] = result.as_numpy("SCORE")
            if len(results) + len(errors) == len(slices):
                done.set()

    before = client.get_inference_statistics(loaded).model_stats[0]
    for i, (a, b) in enumerate(slices):
        inp = grpcclient.InferInput("FEATURES", [b - a, N_FEATURES], "FP32")
        inp.set_data_from_numpy(np.ascontiguousarray(rows[a:b]))
        client.async_infer(loaded, [inp], callback=partial(callback, i))
    assert done.wait(timeout=60), "not all responses arrived within 60 s"
    assert errors == []
    for i, (a, b) in enumerate(slices):
        np.testing.assert_allclose(results[i].reshape(-1), booster.predict(rows[a:b]), rtol=RTOL, atol=0)
    after = client.get_inference_statistics(loaded).model_stats[0]
    assert after.inference_count - before.inference_count == sum(b - a for a, b in slices)


def test_model_file_that_does_not_match_its_config_fails_to_load_clearly(server, loaded, booster, rows):
    write_model(
        server.settings.triton_repository,
        "lgb_bad",
        booster.model_to_string().encode(),
        n_features=N_FEATURES + 1,
    )
    with pytest.raises(ServiceError, match=f"expects {N_FEATURES} features.*dims \\[{N_FEATURES + 1}\\]"):
        server.load_model("lgb_bad")
    status = server.status()
    bad = {m["name"]: m for m in status["models"]}["lgb_bad"]
    assert bad["state"] == "UNAVAILABLE" and "expects 8 features" in bad["reason"]
    # Strict readiness: a failed version makes the server not ready until
    # that same version loads (Triton 2.51: unload_model, or loading another
    # version, does not clear it); the server still serves, and start()
    # still finds it.
    assert status["live"] and not status["ready"]
    assert server.start()["pid"] == status["pid"]
    assert _infer_grpc(server, MODEL, rows[:2]).shape == (2, 1)
    write_lightgbm_model(server.settings.triton_repository, "lgb_bad", booster, version=1, overwrite=True)
    server.load_model("lgb_bad")
    assert server.status()["ready"]
    server.unload_model("lgb_bad")
    assert server.status()["ready"]


def test_xgboost_model_served_equals_native_predict(server, rows):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(1000, N_FEATURES)).astype(np.float32)
    y = x[:, 0] * x[:, 1] + x[:, 3] + rng.normal(scale=0.1, size=len(x))
    params = {"objective": "reg:squarederror", "max_depth": 4, "eta": 0.2, "nthread": 1, "seed": 3}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=40)
    folder = write_xgboost_model(server.settings.triton_repository, "xgb_test", booster, max_batch_size=1024)
    assert (folder / "model.ubj").is_file()
    server.load_model("xgb_test")
    native = booster.inplace_predict(rows)
    assert np.std(native) > 0.5
    for infer in (_infer_grpc, _infer_http):
        served = infer(server, "xgb_test", rows)
        assert served.dtype == np.float32 and served.shape == (len(rows), 1)
        np.testing.assert_allclose(served.reshape(-1), native, rtol=RTOL, atol=0)
    server.unload_model("xgb_test")


def test_status_lists_the_loaded_model(server, loaded):
    models = {m["name"]: m for m in server.status()["models"]}
    assert models[loaded]["state"] == "READY" and models[loaded]["version"] == "1"


def test_loading_unchanged_files_again_is_a_no_op(server, loaded):
    # Every test so far called load_model; only the first one loaded. (A
    # __pycache__ written by the stub into the version folder would count as
    # a change and make the next load_model reload.)
    log = Path(server.status()["log"])
    server.load_model(loaded)
    assert log.read_text().count(f"loading: {loaded}:1") == 1
    assert not (server.settings.triton_repository / loaded / "1" / "__pycache__").exists()


def test_wrong_shape_is_an_error_response_and_the_model_keeps_serving(server, loaded, rows):
    bad = np.zeros((4, N_FEATURES + 1), dtype=np.float32)
    with pytest.raises(InferenceServerException, match="shape"):
        _infer_grpc(server, loaded, bad)
    with pytest.raises(InferenceServerException, match="shape"):
        _infer_http(server, loaded, bad)
    assert _infer_grpc(server, loaded, rows[:3]).shape == (3, 1)


def test_second_start_is_harmless(server):
    pid = server.status()["pid"]
    status = server.start()
    assert status["pid"] == pid and status["ready"]
    assert TritonServer(server.settings).start()["pid"] == pid  # a fresh handle finds it too


def test_unloaded_model_is_not_available(server, loaded, rows):
    server.unload_model(loaded)
    for infer in (_infer_grpc, _infer_http):
        with pytest.raises(InferenceServerException, match=f"{loaded}.*has no available versions"):
            infer(server, loaded, rows[:2])
    models = {m["name"]: m for m in server.status()["models"]}
    assert models[loaded]["state"] == "UNAVAILABLE"
    server.load_model(loaded)  # back for later tests
    assert _infer_http(server, loaded, rows[:2]).shape == (2, 1)


def test_port_in_use_names_the_port_and_setting(server, tmp_path):
    # The running server holds its gRPC port.
    taken = server.settings.triton.grpc_port
    other = TritonServer(_settings(tmp_path / "a", grpc_port=taken))
    with pytest.raises(PortInUseError) as err:
        other.start()
    assert err.value.port == taken and err.value.setting == "triton.grpc_port"
    assert str(taken) in str(err.value) and "triton.grpc_port" in str(err.value)
    assert not other.running()

    # Some unrelated listener on the HTTP port.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        other = TritonServer(_settings(tmp_path / "b", http_port=port))
        with pytest.raises(PortInUseError, match=f"port {port}.*triton.http_port"):
            other.start()
    assert not other.running()


def test_missing_server_venv_says_how_to_set_it_up(tmp_path):
    srv = TritonServer(_settings(tmp_path, venv=tmp_path / "no-venv"))
    with pytest.raises(SetupError, match="setup-triton.sh"):
        srv.start()
    assert not srv.running()


def test_stop_leaves_no_process_of_ours(server, loaded):
    pid = server.status()["pid"]
    assert any("triton_python_backend_stub" in p for p in _our_processes(server, pid))  # the model's stub
    assert server.stop(timeout_s=30) is True
    assert _our_processes(server, pid) == []
    status = server.status()
    assert status["running"] is False and status["pid"] is None
    assert server.stop() is False  # nothing left to stop
