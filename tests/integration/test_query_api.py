"""The query API of a running engine against the real broker and a real
Triton: its answers equal the last committed signals on the signals topic
(read_committed) and the engine's model inputs; while bars arrive it never
shows a signal that was not published; schemathesis, driven by
/openapi.json, finds no server error."""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.error
import urllib.request

import msgspec
import pytest

from stream.engine import Engine
from stream.features.batch import compute_features
from stream.predict import PredictSummary, validated_cross_sections
from stream.pipeline import CrossSectionPipeline
from stream.replay import replay
from stream.topic_reader import read_topic
from tests.integration.engine_world import DATA, published_world, signals_by_key, with_output

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("query-api")) as world:
        yield world


def start_engine(settings) -> tuple[Engine, threading.Thread]:
    engine = Engine(settings)
    thread = threading.Thread(target=engine.run, name="test-engine", daemon=True)
    thread.start()
    return engine, thread


def wait_until(condition, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def live(world):
    """An engine that has processed every bar of the world and idles, HTTP on."""
    settings = with_output(world["settings"], "api")
    engine, thread = start_engine(settings)
    last_ts = int(world["bars"]["ts"].max())
    wait_until(lambda: engine.query.view.last_signal_ts == last_ts and not engine.uncommitted or not thread.is_alive(),
               300, "the engine to commit the last bar time")
    assert thread.is_alive()
    base = f"http://{settings.serving.http_host}:{settings.serving.http_port}"
    yield {"engine": engine, "settings": settings, "base": base, "last_ts": last_ts}
    engine.stop_event.set()
    thread.join(timeout=60)


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def committed_signals(settings) -> dict:
    return signals_by_key(read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name))


def listening_addresses(port: int) -> set[str]:
    """The local addresses a TCP socket of this machine listens on at ``port``
    (from /proc/net/tcp and tcp6: the bound sockets themselves)."""
    import ipaddress
    import socket
    import struct

    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state != "0A" or int(hex_port, 16) != port:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(address)
            words = struct.unpack("<" + "I" * (len(raw) // 4), raw)  # the kernel prints each 32-bit word in host order
            ip = ipaddress.ip_address(b"".join(struct.pack(">I", w) for w in words))
            found.add(str(getattr(ip, "ipv4_mapped", None) or ip))
    return found


def test_the_server_is_bound_to_loopback_by_default(live):
    assert listening_addresses(live["settings"].serving.http_port) == {"127.0.0.1"}


def test_latest_signals_equal_the_last_committed_signal_of_each_symbol_on_the_signals_topic(live, world):
    on_topic = committed_signals(live["settings"])
    latest: dict[str, object] = {}
    for (ts, symbol), signal in sorted(on_topic.items()):
        latest[symbol] = signal
    code, answer = get(live["base"] + "/v1/signals")
    assert code == 200
    assert answer["ts"] == live["last_ts"] and answer["model_set"] == world["manifest"].model_set
    assert answer["count"] == len(latest) == world["bars"]["symbol"].nunique()
    assert {s["symbol"]: s for s in answer["signals"]} == {k: msgspec.to_builtins(v) for k, v in latest.items()}

    some = sorted(latest)[3:7][::-1]
    code, answer = get(live["base"] + "/v1/signals?symbols=" + ",".join(some))
    assert code == 200 and [s["symbol"] for s in answer["signals"]] == some
    assert answer["signals"] == [msgspec.to_builtins(latest[s]) for s in some]


def test_feature_vectors_are_the_engines_model_inputs_of_the_last_bar_time(live, world):
    settings = live["settings"]
    summary = PredictSummary("", "", "")
    pipeline = CrossSectionPipeline(settings)
    for xs in validated_cross_sections(world["bars"], summary):
        prepared = pipeline.prepare(xs)
    code, answer = get(live["base"] + "/v1/features")
    assert code == 200 and answer["feature_names"] == pipeline.names
    assert answer["warmup_bars"] == pipeline.features.warmup_bars
    rows = {row["symbol"]: row for row in answer["symbols"]}
    assert set(rows) == set(prepared.symbols)
    bars_per_symbol = world["bars"].groupby("symbol").size()
    batch = compute_features(world["bars"], settings.features, adjust=False)  # `signalml features`
    batch = batch[batch["date"] == batch["date"].max()].set_index("symbol")
    for i, symbol in enumerate(prepared.symbols):
        row = rows[symbol]
        assert row["ts"] == prepared.ts
        assert row["normalized"] == [None if v != v else v for v in prepared.features[i].tolist()], symbol
        assert row["raw"] == [None if v != v else v for v in batch.loc[symbol, pipeline.names].tolist()], symbol
        assert row["bars_seen"] == bars_per_symbol[symbol]
        assert row["ready"] == (row["bars_seen"] >= answer["warmup_bars"])


def test_model_set_and_position_are_the_engines(live, world):
    code, answer = get(live["base"] + "/v1/model-set")
    assert code == 200 and answer["model_set"] == world["manifest"].model_set
    assert answer["manifest"] == json.loads(msgspec.json.encode(world["manifest"]))
    wait_until(lambda: get(live["base"] + "/v1/position")[1]["consumer_lag"], 15, "librdkafka's lag statistics")
    code, position = get(live["base"] + "/v1/position")
    assert code == 200 and position["last_bar_time_ms"] == live["last_ts"] == position["last_signal_ts"]
    assert position["consumer_lag_total"] == 0 and position["model_set"] == world["manifest"].model_set
    assert position["bar_time_lag_s"] > 0 and position["commits"] >= 1


def test_an_unknown_symbol_or_a_bad_parameter_is_a_4xx_with_a_reason(live):
    code, answer = get(live["base"] + "/v1/signals?symbols=NOPE")
    assert code == 404 and answer["unknown"] == ["NOPE"] and "unknown symbol" in answer["error"]
    code, answer = get(live["base"] + "/v1/features?symbols=A%20B")
    assert code == 400 and "not a ticker" in answer["error"]
    code, answer = get(live["base"] + "/v1/signals?limit=5")
    assert code == 400 and "unknown parameter 'limit'" in answer["error"]
    request = urllib.request.Request(live["base"] + "/v1/signals", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 405


def test_while_bars_arrive_every_answer_is_a_published_signal(world):
    settings = with_output(world["settings"], "api-live", own_bars=True)
    engine, thread = start_engine(settings)
    base = f"http://{settings.serving.http_host}:{settings.serving.http_port}"
    seen: dict[tuple[int, str], dict] = {}
    answer_ts: list[int] = []
    try:
        wait_until(lambda: engine.model_set is not None, 120, "the model set")
        feeder = threading.Thread(target=replay, args=(settings, world["bars"]),
                                  kwargs={"source_file": DATA, "speed": 40.0})
        feeder.start()
        while feeder.is_alive() or engine.uncommitted or engine.query.view.last_bar_ts != int(world["bars"]["ts"].max()):
            code, answer = get(base + "/v1/signals")
            assert code == 200
            if answer["ts"] is not None:
                answer_ts.append(answer["ts"])
            for signal in answer["signals"]:
                seen[(signal["ts"], signal["symbol"])] = signal
            time.sleep(0.01)
        feeder.join()
    finally:
        engine.stop_event.set()
        thread.join(timeout=60)
    published = committed_signals(settings)
    assert len({ts for ts, _ in seen}) >= 20, "the test did not observe the engine move"
    assert answer_ts == sorted(answer_ts), "an answer went back in time"
    unpublished = [key for key in seen if key not in published]
    assert not unpublished, f"answered but never published: {unpublished[:5]}"
    assert all(seen[key] == msgspec.to_builtins(published[key]) for key in seen)


def test_schemathesis_driven_by_the_openapi_description_finds_no_server_error_and_no_mismatch(live, tmp_path):
    """Every check schemathesis has (no 5xx, status codes, content types and
    bodies as described, bad input rejected, valid input accepted, 405 with
    Allow for other methods) over generated and mutated requests."""
    import subprocess
    import sys
    from pathlib import Path

    cli = Path(sys.executable).with_name("schemathesis")
    run = subprocess.run(
        [str(cli), "run", live["base"] + "/openapi.json", "--checks", "all", "--phases", "examples,coverage,fuzzing",
         "--max-examples", "100", "--seed", "9", "--workers", "2", "--no-color", "--generation-database", "none",
         "--report", "junit", "--report-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    generated = re.search(r"(\d+) generated", run.stdout)
    assert generated and int(generated.group(1)) >= 100, run.stdout[-3000:]
