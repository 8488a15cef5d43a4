"""Several cross-sections in flight and several Triton endpoints: the engine
scores up to ``serving.max_in_flight`` cross-sections at once and still
commits them in bar-time order, exactly the signals ``signalml predict``
writes; with two endpoints, one of them stopped mid-stream, it goes on
through the other without rewinding, and commits the same signals."""

from __future__ import annotations

import threading
import time

import msgspec
import pytest
import tritonclient.grpc as grpcclient

from models.publish import load_current
from signalml.contracts import CrossSectionRecord
from signalml.services.process import free_port
from signalml.services.triton import TritonServer
from stream.engine import Engine
from stream.inference import SyncInferenceClient
from stream.topic_reader import read_topic
from tests.integration.engine_world import (
    assert_signals_equal_predict,
    committed_signals,
    predicted,
    published_world,
    with_output,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("scale")) as world:
        world["expected"] = predicted(world["settings"], world["tmp"], symbols=sorted(set(world["bars"]["symbol"])),
                                      start="2018-01-01")
        yield world


@pytest.fixture
def second_triton(world, tmp_path):
    """Another Triton on free ports, serving the same repository and model sets."""
    settings = world["settings"]
    triton = settings.triton.model_copy(update={"http_port": free_port(), "grpc_port": free_port(),
                                                "metrics_port": free_port()})
    paths = settings.paths.model_copy(update={"state_dir": str(tmp_path / "state-b")})
    other = settings.model_copy(update={"triton": triton, "paths": paths})
    server = TritonServer(other)
    server.start()
    try:
        load_current(other)
        yield server
    finally:
        server.stop()


class CountingScorer:
    """Triton scoring that records the most requests it had outstanding at once."""

    def __init__(self, client: SyncInferenceClient):
        self.client = client
        self.lock = threading.Lock()
        self.outstanding = 0
        self.most = 0

    def __call__(self, model_set, tabular, sequences):
        with self.lock:
            self.outstanding += 1
            self.most = max(self.most, self.outstanding)
        try:
            time.sleep(0.02)  # a slower server: requests overlap when the engine lets them
            return self.client.score(model_set.manifest, tabular, sequences)
        finally:
            with self.lock:
                self.outstanding -= 1


def cross_section_times(settings) -> list[int]:
    """The bar times of the committed cross-section records, in topic order."""
    topic = settings.kafka.topics.cross_sections.name
    return [msgspec.json.decode(m.value(), type=CrossSectionRecord).ts
            for m in read_topic(settings.kafka.bootstrap_servers, topic)]


def test_four_cross_sections_in_flight_commit_in_bar_time_order_exactly_the_signals_of_predict(world):
    settings = with_output(world["settings"], "k4", max_in_flight=4)
    with SyncInferenceClient.from_settings(settings) as client:
        scorer = CountingScorer(client)
        Engine(settings, scorer=scorer).run(idle_exit_s=3.0, serve_http=False)
    assert scorer.most == 4  # the window was used, never exceeded
    times = cross_section_times(settings)
    assert times == sorted(set(times)) and len(times) == world["bars"]["ts"].nunique()
    assert_signals_equal_predict(committed_signals(settings), world["expected"])


def served_requests(url: str) -> int:
    """Successful inferences a Triton has answered, all models together."""
    client = grpcclient.InferenceServerClient(url)
    try:
        stats = client.get_inference_statistics(as_json=True)
    finally:
        client.close()
    return sum(int(m.get("inference_stats", {}).get("success", {}).get("count", 0))
               for m in stats.get("model_stats", []))


def test_a_triton_endpoint_stopped_mid_stream_leaves_the_engine_scoring_through_the_other(world, second_triton):
    first_url = world["settings"].triton.grpc_url
    second_url = second_triton.cfg.grpc_url
    settings = with_output(world["settings"], "failover", max_in_flight=2)
    settings = settings.model_copy(update={"triton": settings.triton.model_copy(
        update={"endpoints": (first_url, second_url)})})
    engine = Engine(settings)
    at_stop: dict = {}
    publish = engine._publish

    def publish_then_stop_the_second(pending):
        publish(pending)
        if not at_stop and engine.metrics.signals_out._value.get() >= 300:
            at_stop["signals"] = engine.metrics.signals_out._value.get()
            at_stop["served"] = served_requests(second_url)
            second_triton.stop()

    engine._publish = publish_then_stop_the_second
    thread = threading.Thread(target=engine.run, kwargs={"idle_exit_s": 3.0, "serve_http": False})
    thread.start()
    thread.join(timeout=300)
    engine.stop_event.set()
    thread.join(timeout=30)
    assert not thread.is_alive()

    assert at_stop, "the engine never committed 300 signals"
    assert at_stop["served"] > 0, "the second endpoint took no requests before it was stopped"
    total = engine.metrics.signals_out._value.get()
    assert 0 < at_stop["signals"] < total  # committed before the stop and after it
    assert engine.client.healthy() == {first_url: True, second_url: False}
    assert engine.metrics.rewinds.labels("triton")._value.get() == 0  # failed over, never waited for Triton
    assert engine.status()["triton_available"]
    assert_signals_equal_predict(committed_signals(settings), world["expected"])
