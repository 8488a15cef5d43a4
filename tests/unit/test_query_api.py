"""The query API without services: the committed view, parameter parsing,
the answers of each route, and the HTTP server's handling of methods,
errors and keep-alive."""

from __future__ import annotations

import http.client
import json
import math
from pathlib import Path

import jsonschema_rs
import msgspec
import numpy as np
import pytest
from hypothesis import example, given, settings as hsettings, strategies as st

from signalml.config import load_settings
from signalml.contracts import ManifestMember, ModelSetManifest, Signal, schema_hash
from stream.barrier import CrossSection
from stream.observability import EngineMetrics, HealthServer
from stream.pipeline import CrossSectionPipeline
from stream.query import BadRequest, CommittedState, QueryApi, parse_query, parse_symbols, query_routes
from stream.query_openapi import SYMBOLS_PARAM, openapi_document
from signalml.contracts import SYMBOL_PATTERN, Bar

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["AAA", "BBB", "CCC"]


@pytest.fixture(scope="module")
def config():
    return load_settings(REPO / "signalml.yaml")


class FakeModelSet:
    def __init__(self, names: list[str]):
        self.manifest = ModelSetManifest(
            model_set="ms-20260101000000-0123abcd", created_at=0,
            members=[ManifestMember("lightgbm", 1, "lightgbm", "tabular")], ensemble_method="average",
            feature_names=names, feature_schema_hash=schema_hash(names), horizon_bars=5)

    @property
    def id(self) -> str:
        return self.manifest.model_set


def cross_section(ts: int, symbols=SYMBOLS, price: float = 10.0) -> CrossSection:
    """Prices and volumes that move from bar to bar (constant ones leave
    correlations and R² undefined)."""
    t = ts / 1000.0
    bars = []
    for i, s in enumerate(symbols):
        close = price * (1 + 0.001 * i) * (1 + 0.02 * math.sin(0.7 * t + i))
        volume = 1000.0 + i + 300.0 * (1 + math.cos(1.3 * t + 2 * i))
        bars.append(Bar(s, ts, close, close * 1.01, close * 0.99, close, volume))
    bars = tuple(bars)
    return CrossSection(ts, bars, "watermark")


def signals_of(ts: int, symbols=SYMBOLS, model_set="ms-20260101000000-0123abcd") -> list[Signal]:
    return [Signal(ts, s, float(i), (i + 1) / len(symbols), {"lightgbm": float(i)}, model_set, len(symbols), 5)
            for i, s in enumerate(symbols)]


@pytest.fixture()
def world(config):
    """A pipeline, the committed state the engine would keep, and the API over it."""
    pipeline = CrossSectionPipeline(config)
    state = CommittedState("test-engine", clock=lambda: 1_700_000_000.0)
    api = QueryApi(state, consumer_lag=lambda: {"0": 3, "1": 4}, clock=lambda: 1_700_000_010.0)
    return pipeline, state, api


def commit(pipeline, state, ts: int, *, symbols=SYMBOLS, signals=True, model_set=None):
    prepared = pipeline.prepare(cross_section(ts, symbols))
    state.stage(prepared, pipeline.features)
    published = signals_of(ts, symbols) if signals else []
    state.publish([published], model_set or FakeModelSet(pipeline.names), ts)
    return prepared, published


def body(answer) -> dict:
    code, payload = answer
    return code, json.loads(payload if isinstance(payload, bytes) else msgspec.json.encode(payload))


# ---------------------------------------------------------------- parsing


def test_symbols_are_split_on_commas_merged_across_repeats_and_deduplicated_in_order():
    assert parse_symbols(["MSFT,AAPL", "AAPL,BRK.B"]) == ["MSFT", "AAPL", "BRK.B"]
    assert parse_symbols(None) is None


@pytest.mark.parametrize("value", ["", "AAPL,", ",AAPL", "AA PL", "A" * 33, "AAPL;DROP", "ÄPFEL"])
def test_a_malformed_symbol_is_a_bad_request_that_says_which(value):
    with pytest.raises(BadRequest, match="symbols"):
        parse_symbols([value])


def test_more_symbols_than_the_limit_is_a_bad_request():
    with pytest.raises(BadRequest, match="more than 3"):
        parse_symbols(["A,B,C,D"], max_symbols=3)


def test_an_unknown_parameter_or_undecodable_bytes_are_bad_requests():
    with pytest.raises(BadRequest, match="unknown parameter 'symbol'"):
        parse_query("symbol=AAPL", ("symbols",))
    with pytest.raises(BadRequest, match="malformed"):
        parse_query("symbols=%ff", ("symbols",))
    with pytest.raises(BadRequest, match="malformed"):
        parse_query("&".join(["symbols=A"] * 200), ("symbols",))
    assert parse_query("symbols=A&symbols=B", ("symbols",)) == {"symbols": ["A", "B"]}


# ---------------------------------------------------------------- the committed view


def test_before_any_commit_every_route_answers_without_a_server_error(world):
    _, _, api = world
    assert body(api.signals("")) == (200, {"engine_id": "test-engine", "ts": None, "model_set": None, "count": 0,
                                           "signals": []})
    code, answer = body(api.signals("symbols=AAA"))
    assert code == 404 and answer["unknown"] == ["AAA"] and "unknown symbol(s): AAA" in answer["error"]
    assert body(api.features(""))[1]["count"] == 0
    assert body(api.model_set(""))[0] == 404
    code, position = body(api.position(""))
    assert code == 200 and position["last_bar_time_ms"] is None and position["commits"] == 0
    assert position["consumer_lag"] == {"0": 3, "1": 4} and position["consumer_lag_total"] == 7


def test_staged_inputs_and_signals_are_invisible_until_published(world):
    pipeline, state, api = world
    state.stage(pipeline.prepare(cross_section(1000)), pipeline.features)
    assert body(api.features(""))[1]["count"] == 0
    state.discard()  # the transaction aborted
    state.publish([], None, 1000)
    assert body(api.features(""))[1]["count"] == 0, "an aborted transaction's inputs became visible"


def test_published_signals_are_answered_exactly_for_all_symbols_or_a_list_in_the_order_asked(world):
    pipeline, state, api = world
    _, published = commit(pipeline, state, 1000)
    code, answer = body(api.signals(""))
    assert code == 200 and answer["ts"] == 1000 and answer["count"] == 3
    assert answer["model_set"] == "ms-20260101000000-0123abcd"
    assert answer["signals"] == [msgspec.to_builtins(s) for s in published]
    code, answer = body(api.signals("symbols=CCC,AAA"))
    assert [s["symbol"] for s in answer["signals"]] == ["CCC", "AAA"]
    assert answer["signals"][0] == msgspec.to_builtins(published[2])


def test_each_symbol_keeps_its_latest_committed_signal_when_it_misses_a_cross_section(world):
    pipeline, state, api = world
    commit(pipeline, state, 1000)
    commit(pipeline, state, 2000, symbols=["AAA", "BBB"])
    _, answer = body(api.signals(""))
    assert answer["ts"] == 2000
    assert {s["symbol"]: s["ts"] for s in answer["signals"]} == {"AAA": 2000, "BBB": 2000, "CCC": 1000}


def test_a_reader_holding_a_view_is_unaffected_by_the_next_commit_and_cached_bodies_follow_the_view(world):
    pipeline, state, api = world
    commit(pipeline, state, 1000)
    before = state.view
    first = api.signals("")[1]
    assert api.signals("")[1] is first, "the all-symbols body is built once per view"
    commit(pipeline, state, 2000)
    assert before.signals["AAA"].ts == 1000 and before.last_bar_ts == 1000
    assert json.loads(api.signals("")[1])["ts"] == 2000


def test_feature_vectors_are_the_model_inputs_with_readiness_from_the_bars_seen(world, config):
    pipeline, state, api = world
    prepared, _ = commit(pipeline, state, 1000)
    code, answer = body(api.features("symbols=BBB"))
    assert code == 200 and answer["feature_names"] == pipeline.names
    row = answer["symbols"][0]
    assert row["symbol"] == "BBB" and row["ts"] == 1000 and row["bars_seen"] == 1
    assert row["ready"] is False and answer["warmup_bars"] == pipeline.features.warmup_bars
    expected = [None if math.isnan(v) else v for v in prepared.features[1].tolist()]
    assert row["normalized"] == expected  # NaN is written as null
    assert row["raw"] == [None if math.isnan(v) else v for v in prepared.raw[1].tolist()]
    for ts in range(2, pipeline.features.warmup_bars + 2):
        commit(pipeline, state, ts * 1000)
    row = body(api.features("symbols=BBB"))[1]["symbols"][0]
    assert row["ready"] is True and row["bars_seen"] == pipeline.features.warmup_bars + 1
    assert all(v is not None for v in row["normalized"]), [n for n, v in zip(pipeline.names, row["normalized"]) if v is None]


def test_a_symbol_with_features_but_no_signal_yet_is_a_404_that_says_it_is_warming_up(world):
    pipeline, state, api = world
    commit(pipeline, state, 1000, signals=False)
    code, answer = body(api.signals("symbols=AAA,ZZZ"))
    assert code == 404 and answer["unknown"] == ["AAA", "ZZZ"]
    assert "unknown symbol(s): ZZZ" in answer["error"] and "no committed signal yet for AAA" in answer["error"]


def test_model_set_and_position_come_from_the_last_commit(world):
    pipeline, state, api = world
    commit(pipeline, state, 1_699_999_990_000)
    code, answer = body(api.model_set(""))
    assert code == 200 and answer["model_set"] == "ms-20260101000000-0123abcd"
    assert answer["manifest"]["feature_names"] == pipeline.names
    _, position = body(api.position(""))
    assert position["last_bar_time_ms"] == 1_699_999_990_000 and position["commits"] == 1
    assert position["last_bar_time"] == "2023-11-14T22:13:10.000Z"
    assert position["bar_time_lag_s"] == 20.0 and position["seconds_since_commit"] == 10.0
    assert position["symbols"] == 3


@pytest.mark.parametrize("route", ["/v1/model-set", "/v1/position", "/openapi.json"])
def test_routes_without_parameters_refuse_one(world, route):
    _, _, api = world
    code, answer = body(api.routes()[route]("symbols=AAA"))
    assert code == 400 and "unknown parameter 'symbols'" in answer["error"]


@hsettings(max_examples=300, deadline=None)
@given(query=st.text(max_size=80) | st.lists(st.sampled_from(["symbols=", "AAA", ",", "%", "&", "=", "ff", "x"]))
       .map("".join))
def test_no_query_string_makes_a_route_fail_or_answer_a_server_error(config, query):
    pipeline = CrossSectionPipeline(config)
    state = CommittedState("fuzz")
    commit(pipeline, state, 1000)
    for route in QueryApi(state).routes().values():
        code, _ = route(query)
        assert code in (200, 400, 404)


def test_the_openapi_document_describes_every_route():
    doc = openapi_document()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == set(QueryApi(CommittedState()).routes())
    for path in doc["paths"].values():
        assert "400" in path["get"]["responses"]


def answer_schema(route: str, code: int) -> dict:
    """The document's schema of ``route``'s answer with ``code``, with the
    components beside it so that its references resolve."""
    doc = openapi_document()
    schema = doc["paths"][route]["get"]["responses"][str(code)]["content"]["application/json"]["schema"]
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema, "components": doc["components"]}


def assert_described(route: str, answer) -> None:
    code, payload = body(answer)
    errors = [error.message for error in jsonschema_rs.Draft202012Validator(answer_schema(route, code)).iter_errors(payload)]
    assert errors == [], (route, code)


def test_every_answer_is_valid_against_the_schema_the_document_gives_for_its_route_and_status(world):
    pipeline, state, api = world
    routes = api.routes()
    for route in ("/v1/signals", "/v1/features", "/v1/position"):
        assert_described(route, routes[route](""))  # before any commit: empty lists, nulls
    assert_described("/v1/model-set", api.model_set(""))  # 404: no model set yet
    commit(pipeline, state, 1000)  # warm-up: features are NaN, written as null
    for route in ("/v1/signals", "/v1/features", "/v1/model-set", "/v1/position"):
        assert_described(route, routes[route](""))
        assert_described(route, routes[route]("unknown=1"))  # 400
    for route in ("/v1/signals", "/v1/features"):
        assert_described(route, routes[route]("symbols=CCC,AAA"))
        assert_described(route, routes[route]("symbols=AAA,ZZZ"))  # 404 with the unknown symbols


def test_the_schemas_reject_an_answer_that_breaks_the_contract(world):
    pipeline, state, api = world
    commit(pipeline, state, 1000)
    _, signals = body(api.signals(""))
    del signals["signals"][0]["score"]
    validator = jsonschema_rs.Draft202012Validator(answer_schema("/v1/signals", 200))
    assert not validator.is_valid(signals)
    _, position = body(api.position(""))
    assert not validator.is_valid(position)


@hsettings(max_examples=400, deadline=None)
@example(symbol="AAPL\n")
@example(symbol="BRK.B")
@example(symbol="A" * 33)
@given(symbol=st.text(max_size=40) | st.from_regex(SYMBOL_PATTERN, fullmatch=True))
def test_the_decoder_the_parameter_check_and_the_document_accept_the_same_symbols(symbol):
    bar = msgspec.json.encode({"symbol": symbol, "ts": 0, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 0})
    try:
        msgspec.json.decode(bar, type=Bar)
        decoded = True
    except msgspec.ValidationError:
        decoded = False
    try:
        parsed = parse_symbols([symbol]) == [symbol]
    except BadRequest:
        parsed = False
    documented = jsonschema_rs.is_valid(SYMBOLS_PARAM["schema"], symbol)
    signal = msgspec.to_builtins(Signal(0, symbol, 0.0, 1.0, {}, "m", 1))
    described = jsonschema_rs.Draft202012Validator(answer_schema("/v1/signals", 200)).is_valid(
        {"engine_id": "e", "ts": 0, "model_set": "m", "count": 1, "signals": [signal]})
    assert decoded == parsed == documented == described, symbol


# ---------------------------------------------------------------- over HTTP


@pytest.fixture()
def server(world):
    pipeline, state, _ = world
    commit(pipeline, state, 1000)
    metrics = EngineMetrics()
    metrics.consumer_lag.labels("0").set(5)
    routes = query_routes(state, metrics)
    routes["/boom"] = lambda query: 1 / 0
    http = HealthServer("127.0.0.1", 0, metrics, lambda: {"healthy": True, "ready": True}, routes).start()
    yield http
    http.stop()


def request(port: int, method: str, path: str, connection=None):
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request(method, path)
    response = conn.getresponse()
    return response.status, dict(response.getheaders()), response.read()


def test_the_server_answers_json_keeps_connections_alive_and_reports_the_consumer_lag(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    status, headers, data = request(server.port, "GET", "/v1/signals?symbols=AAA", conn)
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert json.loads(data)["signals"][0]["symbol"] == "AAA"
    status, _, data = request(server.port, "GET", "/v1/position", conn)  # same connection
    assert status == 200 and json.loads(data)["consumer_lag"] == {"0": 5}
    status, _, data = request(server.port, "GET", "/openapi.json", conn)
    assert json.loads(data) == json.loads(msgspec.json.encode(openapi_document()))
    conn.close()


def test_head_has_no_body_and_writing_methods_are_405_with_allow(server):
    status, headers, data = request(server.port, "HEAD", "/v1/signals")
    assert status == 200 and data == b"" and int(headers["Content-Length"]) > 0
    for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "QUERY", "BREW"):
        status, headers, data = request(server.port, method, "/v1/signals")
        assert status == 405 and headers["Allow"] == "GET, HEAD", method
        assert "read-only" in json.loads(data)["error"]


def test_unknown_paths_are_404_and_a_failing_route_is_a_500_with_the_reason_not_a_dropped_connection(server):
    status, _, data = request(server.port, "GET", "/v1/nothing")
    assert status == 404 and "no such path" in json.loads(data)["error"]
    status, _, data = request(server.port, "GET", "/boom")
    assert status == 500 and "ZeroDivisionError" in json.loads(data)["error"]


def test_health_bodies_are_still_json(server):
    status, _, data = request(server.port, "GET", "/health")
    assert status == 200 and json.loads(data) == {"healthy": True, "ready": True}
    status, headers, data = request(server.port, "GET", "/metrics")
    assert status == 200 and b"signalml_consumer_lag" in data


def test_a_commit_publishes_cross_section_columns_and_a_request_reads_the_signals_they_hold(world):
    """The engine hands over each cross-section's signals as columns: the
    commit builds no Signal object, a request gets the ones an independent
    Signal per symbol gives, and a later cross-section replaces only its own
    symbols."""
    from stream.signals import CrossSectionSignals

    pipeline, state, api = world
    first = CrossSectionSignals(1000, ["AAA", "BBB", "CCC"], np.array([0.5, -1.0, 2.0]), np.array([2 / 3, 1 / 3, 1.0]),
                                {"lightgbm": np.array([0.1, 0.2, 0.3])}, "ms-20260101000000-0123abcd", 5)
    second = CrossSectionSignals(2000, ["BBB"], np.array([3.0]), np.array([1.0]), {"lightgbm": np.array([0.4])},
                                 "ms-20260101000000-0123abcd", 5)
    state.publish([first, second], FakeModelSet(pipeline.names), 2000)
    assert first._signals is None and second._signals is None, "the commit built Signal objects"
    view = state.view
    assert view.last_signal_ts == 2000 and sorted(view.signals) == ["AAA", "BBB", "CCC"]
    assert view.signals["AAA"] == Signal(1000, "AAA", 0.5, 2 / 3, {"lightgbm": 0.1}, "ms-20260101000000-0123abcd", 3, 5)
    assert view.signals["BBB"] == Signal(2000, "BBB", 3.0, 1.0, {"lightgbm": 0.4}, "ms-20260101000000-0123abcd", 1, 5)
    answer = json.loads(api.signals("symbols=CCC,BBB")[1])
    assert [(s["symbol"], s["ts"], s["score"]) for s in answer["signals"]] == [("CCC", 1000, 2.0), ("BBB", 2000, 3.0)]
