"""``signalml demo --quick --stop`` end to end, as the README's first command
runs it, on private topics, a private Triton and private engine and monitor
ports: it trains, publishes, serves and replays, every bar of the held-back
tail becomes exactly one signal of the demo's model set, the report is
written, and ``--stop`` stops only what the demo started (its Triton, not
the shared Kafka)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import msgspec
import pytest

from signalml.config import load_settings
from signalml.contracts import Signal
from signalml.demo.plan import QUICK, select_bars, split_tail
from signalml.services.process import free_port, port_answers
from stream.bars_file import read_bars
from stream.decode import BarValidator, Rejection
from stream.replay import encode_bars
from stream.topic_reader import read_topic
from tests.integration.engine_world import DATA, REPO, new_tag

pytestmark = pytest.mark.integration

TOPICS = {"bars": "bars", "bars_dlq": "bars.dlq", "signals": "signals", "signals_challenger": "signals.challenger",
          "cross_sections": "cross.sections", "drift": "drift", "control": "control", "engine_state": "engine.state"}


def demo_env(tmp, tag: str) -> dict[str, str]:
    """Private topics, state directory (so the demo starts its own Triton),
    Triton repository and ports, engine and monitor ports; the shared Kafka."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIGNALML")}
    env.update({
        "SIGNALML__PATHS__STATE_DIR": str(tmp / "state"),
        "SIGNALML__TRITON__REPOSITORY": str(tmp / "repo"),
        "SIGNALML__TRITON__HTTP_PORT": str(free_port()),
        "SIGNALML__TRITON__GRPC_PORT": str(free_port()),
        "SIGNALML__TRITON__METRICS_PORT": str(free_port()),
        "SIGNALML__SERVING__HTTP_PORT": str(free_port()),
        "SIGNALML__MONITOR__HTTP_PORT": str(free_port()),
    })
    for key, base in TOPICS.items():
        env[f"SIGNALML__KAFKA__TOPICS__{key.upper()}__NAME"] = f"{base}.demo-{tag}"
    return env


def tail_bars(warmup_bars: int) -> set[tuple[int, str]]:
    """(bar time, symbol) of every valid bar of the quick demo's tail."""
    tail = split_tail(select_bars(read_bars(DATA), QUICK), QUICK.tail_days, warmup_bars).tail
    validator = BarValidator()
    return {(int(ts), symbol) for ts, symbol, payload in zip(tail["ts"], tail["symbol"], encode_bars(tail))
            if not isinstance(validator.validate(payload), Rejection)}


@pytest.fixture
def demo_tag():
    """A tag for the demo's private topics, deleted at the end."""
    from confluent_kafka.admin import AdminClient

    tag = new_tag()
    yield tag
    settings = load_settings(REPO / "signalml.yaml")
    names = [f"{base}.demo-{tag}" for base in TOPICS.values()]
    admin = AdminClient({"bootstrap.servers": settings.kafka.bootstrap_servers})
    for future in admin.delete_topics(names, operation_timeout=30).values():
        try:
            future.result(60)
        except Exception:  # noqa: BLE001 - never created, or already gone
            pass


def test_the_quick_demo_scores_every_tail_bar_once_and_stops_only_what_it_started(stack, tmp_path, demo_tag):
    env = demo_env(tmp_path, demo_tag)
    settings = load_settings(REPO / "signalml.yaml", environ=env)
    out = tmp_path / "out"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "signalml.cli", "demo", "--quick", "--speed", "20", "--out", str(out), "--stop"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=400,
    )
    elapsed_s = time.monotonic() - started
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]

    summary = json.loads((out / "demo.json").read_text())
    expected = tail_bars(settings.serving.warmup_bars)
    signals = [msgspec.json.decode(m.value(), type=Signal)
               for m in read_topic(settings.kafka.bootstrap_servers, settings.kafka.topics.signals.name)]
    keys = [(s.ts, s.symbol) for s in signals]
    assert len(keys) == len(set(keys)), "a signal was published twice"
    assert set(keys) == expected
    assert {s.model_set for s in signals} == {summary["model_set"]}
    assert summary["signals"] == len(expected) and summary["complete_cross_sections"] == QUICK.tail_days
    # A subscriber's view of the same topic: every tail cross-section, whole, once.
    tailed = subprocess.run([sys.executable, "-m", "signalml.cli", "tail", "signals", "--from-beginning", "--json"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert tailed.returncode == 0, tailed.stderr[-3000:]
    cross_sections = [json.loads(line) for line in tailed.stdout.splitlines()]
    assert sorted((xs["ts"], symbol) for xs in cross_sections for symbol in xs["symbols"]) == sorted(expected)
    assert len(cross_sections) == QUICK.tail_days == len({xs["ts"] for xs in cross_sections})
    # The monitor started at the end of the topics (after the warm-up) and
    # evaluated every tail cross-section whose returns matured.
    horizon = settings.training.label_horizon_bars
    assert summary["monitor"]["evaluated"] == QUICK.tail_days - horizon, summary["monitor"]
    assert summary["monitor"]["matured"] == QUICK.tail_days - horizon and summary["monitor"]["not_evaluated"] == 0
    assert "producer buffer full" not in (out / "logs" / "monitor.log").read_text()

    assert (out / "report.html").is_file() and (out / "model_set").is_dir()
    assert summary["report"] == str(out / "report.html") and "report.html" in run.stdout
    # Not a terminal: plain lines, not the live view.
    assert "demo: tail:" in run.stdout and "\x1b[" not in run.stdout

    assert summary["stack_started"] == ["triton"] and summary["stack_stopped"] == ["triton"]
    assert not port_answers(settings.triton.host, settings.triton.http_port), "the demo's Triton still runs"
    assert not port_answers(settings.serving.http_host, settings.serving.http_port), "the engine still runs"
    assert not port_answers(settings.monitor.http_host, settings.monitor.http_port), "the monitor still runs"
    assert all(info["running"] for info in stack.status().values()), "the shared stack was stopped"
    print(f"demo --quick: {elapsed_s:.0f} s")
