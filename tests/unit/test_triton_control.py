"""Triton's control calls when no server answers: a clear ServiceError
(or False from a probe), never a hang or a library exception."""

from __future__ import annotations

import pytest

from signalml.config import load_settings
from signalml.errors import ServiceError
from signalml.services.process import free_port
from signalml.services.triton import TritonServer


@pytest.fixture()
def silent(tmp_path) -> TritonServer:
    settings = load_settings(environ={}, overrides={
        "paths": {"state_dir": str(tmp_path / "state")},
        "triton": {"http_port": free_port(), "repository": str(tmp_path / "repo")},
    })
    return TritonServer(settings)


def test_probes_of_a_server_that_does_not_answer_are_false(silent):
    assert silent._probe(ready=True) is False
    assert silent._probe(ready=False) is False


@pytest.mark.parametrize("call, what", [
    (lambda t: t.load_model("lightgbm"), "load of model 'lightgbm'"),
    (lambda t: t.unload_model("lightgbm", timeout_s=1.0), "unload of model 'lightgbm'"),
    (lambda t: t.models(), "repository index"),
    (lambda t: t.version(), "server metadata"),
])
def test_a_control_call_to_a_server_that_does_not_answer_says_which_call_and_where(silent, call, what):
    with pytest.raises(ServiceError, match=f"triton: {what}: no answer from 127.0.0.1:{silent.cfg.http_port}"):
        call(silent)
