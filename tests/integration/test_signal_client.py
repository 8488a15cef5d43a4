"""The subscriber's client on the real broker: a reader killed and restarted
at random points while the engine publishes delivers exactly the engine's
committed cross-sections, each whole and once (again only the one it was
handing over when killed); an aborted transaction's signals never show;
drift events come filtered and resume after a restart; ``signalml tail``
prints every cross-section."""

from __future__ import annotations

import collections
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest
from confluent_kafka import Producer

from signalml.client import CrossSectionReader, DriftAlertReader
from signalml.client.cross_section import SignalCrossSection
from signalml.client.lines import cross_section_line
from signalml.contracts import DriftEvent, Signal, encode
from tests.integration.engine_world import (
    REPO,
    base_settings,
    committed_signals,
    delete_created_topics,
    engine_process,
    env_of,
    new_tag,
    published_world,
)

pytestmark = pytest.mark.integration

SEED = 20
KILLS = 4


@pytest.fixture(scope="module")
def world(stack, tmp_path_factory):
    with published_world(tmp_path_factory.mktemp("signal-client")) as world:
        yield world


@pytest.fixture(scope="module")
def engine(world):
    """The engine, started on the world's bars; it stops once idle."""
    log = world["tmp"] / "engine.log"
    process = engine_process(world["settings"], log, idle_exit_s=8.0)
    yield {"process": process, "log": log}
    if process.poll() is None:
        process.kill()
        process.wait()


def engine_finished(engine) -> None:
    assert engine["process"].wait(timeout=600) == 0, engine["log"].read_text()[-3000:]


def committed_cross_sections(settings) -> dict[tuple[str, int], dict[str, float]]:
    """(model_set, ts) -> {symbol: score} of every signal the engine committed."""
    out: dict[tuple[str, int], dict[str, float]] = collections.defaultdict(dict)
    for signal_ in committed_signals(settings).values():
        out[(signal_.model_set, signal_.ts)][signal_.symbol] = signal_.score
        assert signal_.cross_section_size >= 1
    return dict(out)


def as_scores(entry: dict) -> dict[str, float]:
    return dict(zip(entry["symbols"], entry["scores"]))


# ---------------------------------------------------------------- killed and restarted while the engine publishes


def lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def delivered_count(path: Path) -> int:
    return sum(1 for entry in lines(path) if entry["event"] == "delivered")


def reader_process(settings, group: str, out: Path, run: int, log: Path, *, until_caught_up: bool = False):
    command = [sys.executable, "-m", "tests.integration.signal_reader_process", "--group", group,
               "--out", str(out), "--run", str(run)] + (["--until-caught-up"] if until_caught_up else [])
    return subprocess.Popen(command, cwd=REPO, env=env_of(settings), stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT)


def test_a_reader_killed_at_random_points_while_the_engine_publishes_delivers_every_cross_section_whole_once(
        world, engine, tmp_path):
    settings = world["settings"]
    rng = random.Random(SEED)
    group, out, log = f"subscriber-{new_tag()}", tmp_path / "delivered.jsonl", tmp_path / "reader.log"
    counts_at_kill, engine_running = [], []
    for run in range(KILLS):
        target = delivered_count(out) + rng.randint(10, 60)
        process = reader_process(settings, group, out, run, log)
        deadline = time.monotonic() + 300
        while delivered_count(out) < target:
            assert process.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"the reader delivered no more than {delivered_count(out)}"
            time.sleep(rng.uniform(0.0, 0.02))
        process.send_signal(signal.SIGKILL)
        process.wait()
        counts_at_kill.append(delivered_count(out))
        engine_running.append(engine["process"].poll() is None)
    engine_finished(engine)
    final = reader_process(settings, group, out, KILLS, log, until_caught_up=True)
    assert final.wait(timeout=300) == 0, log.read_text()[-3000:]

    committed = committed_cross_sections(settings)
    entries = lines(out)
    deliveries: collections.Counter = collections.Counter()
    interrupted: collections.Counter = collections.Counter()  # recorded, killed before the acknowledgement was
    for run in range(KILLS + 1):
        of_run = [e for e in entries if e["run"] == run]
        assert of_run and of_run[0]["event"] == "started"
        for entry in of_run:
            if entry["event"] == "delivered":
                key = (entry["model_set"], entry["ts"])
                assert key in committed, f"delivered {key}, which the engine never committed"
                assert as_scores(entry) == committed[key], f"{key} delivered partial or altered"
                assert entry["size"] == len(committed[key])
                deliveries[key] += 1
        last = of_run[-1]
        if run < KILLS and last["event"] == "delivered":
            interrupted[(last["model_set"], last["ts"])] += 1
    assert of_run[-1]["event"] == "caught up"

    total = len(committed)
    assert all(0 < count < total for count in counts_at_kill), (counts_at_kill, total)
    assert engine_running[0], "the first kill landed after the engine had finished"
    assert counts_at_kill == sorted(set(counts_at_kill)), "a restart delivered nothing new before its kill"
    missing = sorted(set(committed) - set(deliveries))
    assert not missing, f"{len(missing)} of {total} committed cross-sections never delivered, e.g. {missing[:3]}"
    # Each once; a second time only the one being handed over when a kill landed
    # (recorded, not yet acknowledged: its commit may or may not have gone through).
    again = {key: n for key, n in deliveries.items() if n > 1}
    assert all(n - 1 <= interrupted[key] for key, n in again.items()), (again, dict(interrupted))
    assert len(deliveries) == total and sum(deliveries.values()) <= total + sum(interrupted.values())
    print(f"\n{total} cross-sections; kills after {counts_at_kill} deliveries; "
          f"{sum(deliveries.values()) - total} delivered twice ({sum(interrupted.values())} interrupted)")


# ---------------------------------------------------------------- signalml tail


def tail(settings, *args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-m", "signalml.cli", "tail", "signals", *args], cwd=REPO,
                            env=env_of(settings), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout.splitlines()


def test_signalml_tail_from_the_beginning_prints_every_committed_cross_section_as_json_and_for_a_person(
        world, engine):
    settings = world["settings"]
    engine_finished(engine)
    committed = committed_cross_sections(settings)

    printed = [json.loads(line) for line in tail(settings, "--json", "--from-beginning")]
    assert collections.Counter((p["model_set"], p["ts"]) for p in printed) == collections.Counter(list(committed))
    for entry in printed:
        assert as_scores(entry) == committed[(entry["model_set"], entry["ts"])]

    human = tail(settings, "--from-beginning")
    assert len(human) == len(committed)
    first = min(printed, key=lambda p: p["ts"])
    expected = SignalCrossSection.of([Signal(ts=first["ts"], symbol=s, score=first["scores"][i],
                                             rank=first["ranks"][i],
                                             members={m: v[i] for m, v in first["members"].items()},
                                             model_set=first["model_set"], cross_section_size=first["size"],
                                             horizon_bars=first["horizon_bars"])
                                      for i, s in enumerate(first["symbols"])])
    assert cross_section_line(expected) in human
    assert f"{first['size']:>4} symbols  top " in cross_section_line(expected)


# ---------------------------------------------------------------- aborted transactions


SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE", "FFF", "GGG", "HHH"]  # the i-th on partition i % 4


def cross_section(model_set: str, ts: int, scale: float, size: int = 5) -> list[Signal]:
    return [Signal(ts=ts, symbol=s, score=scale * (i + 1), rank=(i + 1) / size, members={"m": scale * i},
                    model_set=model_set, cross_section_size=size, horizon_bars=5)
            for i, s in enumerate(SYMBOLS[:size])]


def scores(scale: float, size: int = 5) -> dict[str, float]:
    return {s: scale * (i + 1) for i, s in enumerate(SYMBOLS[:size])}


@pytest.fixture
def private_world(stack, tmp_path):
    tag = new_tag()
    yield base_settings(tmp_path, tag)
    delete_created_topics(tag)


def test_a_reader_never_delivers_an_aborted_transactions_signals_and_resumes_where_its_group_left_off(
        private_world):
    """Committed and aborted transactions interleaved (an aborted cross-section
    and a committed one with the same key), then cross-section X written in two
    transactions around a whole cross-section Y, on every partition: Y
    completes first, and while X is handed over, Y's records lie after X's
    first ones (still needed) on every partition."""
    settings = private_world
    topic = settings.kafka.topics.signals.name
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "transactional.id": f"client-test-{topic}"})
    producer.init_transactions(30)

    def write(signals: list[Signal], commit: bool = True) -> None:
        producer.begin_transaction()
        for s in signals:
            producer.produce(topic, key=s.symbol.encode(), value=encode(s), partition=SYMBOLS.index(s.symbol) % 4)
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)

    committed: dict[tuple[str, int], dict[str, float]] = {}
    for ts in range(1, 13):
        for model_set in ("ms-a", "ms-b"):
            if ts % 3 == 0:
                write(cross_section(model_set, ts * 1000, -1.0), commit=False)
            write(cross_section(model_set, ts * 1000, 1.0 + ts))
            committed[(model_set, ts * 1000)] = scores(1.0 + ts)
    x, y = cross_section("ms-a", 100_000, 7.0, size=8), cross_section("ms-b", 100_000, 8.0, size=8)
    write(x[:4])  # one signal on each partition
    write(y)
    write(x[4:])  # one more on each partition
    committed[("ms-a", 100_000)], committed[("ms-b", 100_000)] = scores(7.0, 8), scores(8.0, 8)
    producer.begin_transaction()
    producer.produce(topic, key=b"AAA", value=b"not a signal", partition=0)
    producer.commit_transaction(30)

    group = f"subscriber-{new_tag()}"
    runs: list[list[SignalCrossSection]] = []
    stops = [lambda got: len(got) == 7, lambda got: (got[-1].model_set, got[-1].ts) == ("ms-a", 100_000),
             lambda got: False]
    for stop in stops:  # each run stops right after it was handed one, before acknowledging it
        got: list[SignalCrossSection] = []
        with CrossSectionReader(settings, group, from_beginning=True) as reader:
            for xs in reader.until_caught_up(timeout_s=60):
                got.append(xs)
                if stop(got):
                    break
        runs.append(got)
    for before, after in zip(runs, runs[1:]):
        assert (after[0].model_set, after[0].ts) == (before[-1].model_set, before[-1].ts), \
            "the one handed over and not acknowledged comes again"
    assert [(xs.model_set, xs.ts) for xs in runs[1][-2:]] == [("ms-b", 100_000), ("ms-a", 100_000)], [[(xs.model_set, xs.ts) for xs in run] for run in runs]
    assert [(xs.model_set, xs.ts) for xs in runs[2]] == [("ms-a", 100_000)], "Y is not delivered again"
    delivered = runs[0][:-1] + runs[1][:-1] + runs[2]
    keys = [(xs.model_set, xs.ts) for xs in delivered]
    assert sorted(keys) == sorted(committed), "each committed cross-section once, none aborted"
    for xs in delivered:
        assert dict(zip(xs.symbols, xs.scores.tolist())) == committed[(xs.model_set, xs.ts)]
        assert xs.size == len(committed[(xs.model_set, xs.ts)]) and xs.horizon_bars == 5

    with CrossSectionReader(settings, group, from_beginning=True) as reader:
        assert list(reader.until_caught_up(timeout_s=60)) == [], "a group read to its end delivers nothing again"
    with CrossSectionReader(settings, None, from_beginning=True, model_sets=["ms-b"]) as reader:
        only_b = [(xs.model_set, xs.ts) for xs in reader.until_caught_up(timeout_s=60)]
        assert reader.counts.undecodable == 1 and reader.counts.incomplete == 0 and \
            reader.filtered == sum(1 for k in committed if k[0] == "ms-a")
    assert sorted(only_b) == sorted(k for k in committed if k[0] == "ms-b")


# ---------------------------------------------------------------- drift alerts


def test_drift_alerts_come_filtered_by_severity_kind_and_model_set_and_resume_after_a_restart(private_world):
    settings = private_world
    topic = settings.kafka.topics.drift.name
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers})
    events = [DriftEvent(ts=1000 * i, kind=kind, subject=f"f{i}", statistic=0.1 * i, threshold=0.25,
                         severity=severity, model_set=model_set)
              for i, (kind, severity, model_set) in enumerate(
                  [(k, s, m) for k in ("feature_psi", "score_psi", "ic_decay")
                   for s in ("info", "warning", "critical") for m in ("ms-a", "ms-b")])]
    for i, event in enumerate(events):
        producer.produce(topic, key=event.key().encode(), value=encode(event))
        if i == 4:
            producer.produce(topic, key=b"x", value=b"{not json")
    producer.flush(30)
    aborting = Producer({"bootstrap.servers": settings.kafka.bootstrap_servers,
                         "transactional.id": f"client-test-{topic}"})
    aborting.init_transactions(30)
    aborting.begin_transaction()
    ghost = DriftEvent(ts=999_000, kind="score_psi", subject="ghost", statistic=9.0, threshold=0.25,
                       severity="critical", model_set="ms-a")
    aborting.produce(topic, key=ghost.key().encode(), value=encode(ghost))
    aborting.flush(30)
    aborting.abort_transaction(30)

    with DriftAlertReader(settings, None, from_beginning=True, min_severity="warning",
                          kinds=["score_psi", "ic_decay"], model_sets=["ms-a"]) as reader:
        got = list(reader.until_caught_up())
        assert reader.counts.undecodable == 1 and reader.counts.filtered == len(events) - len(got)
    assert got == [e for e in events if e.severity != "info" and e.kind != "feature_psi" and e.model_set == "ms-a"]

    group = f"pager-{new_tag()}"
    with DriftAlertReader(settings, group, from_beginning=True, min_severity="critical") as reader:
        first = [reader.poll(10.0), reader.poll(10.0)]  # the second is handed over, not acknowledged
    with DriftAlertReader(settings, group, from_beginning=True, min_severity="critical") as reader:
        rest = list(reader.until_caught_up())
    critical = [e for e in events if e.severity == "critical"]
    assert first == critical[:2] and rest == critical[1:]
    with DriftAlertReader(settings, group, from_beginning=True, min_severity="critical") as reader:
        assert list(reader.until_caught_up()) == []
    assert msgspec.json.decode(encode(critical[0]), type=DriftEvent) == critical[0]
