"""``signalml bench scale``: engine throughput when Triton is slower than the
engine, against cross-sections in flight (``serving.max_in_flight``, K) and
the number of Triton endpoints (``triton.endpoints``).

A private world: its own topics on the configured broker and its own Triton
servers on free ports (one or two), each serving one model, ``slow``
(:file:`bench/triton_slow/model.py`, benchmark-only), that answers every
request after a fixed ``delay_s`` (50 ms), standing for a remote GPU. Each
server runs ``instances`` copies of it (4): a Python-backend instance
serves one request at a time, so a server serves up to 4 at once. The
model set has that one member; the engine is the real one
(:class:`~stream.engine.Engine`: features, transactions, snapshots).

Synthetic bars (500 symbols) are replayed once into a bars topic; each
configuration runs a fresh engine (own id, group and output topics) over
that backlog until idle, taking the same bars per step (one transaction
each) whatever K, so that only the requests in flight differ. Throughput = scored bar times (or bars) / (last
commit - first consumed bar), both timed inside the engine. The ideal for
a configuration is the K=1, one-endpoint rate measured in the same run
times min(K, requests the endpoints serve at once). Topics, consumer
groups and servers are removed at the end.

The last line printed (``--json``) is one JSON object.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka.admin import AdminClient

from bench.e2e import _delete_topics, _instrumented, _with, synthetic_bars
from models.publish.control import send_manifest
from signalml.config import Settings
from signalml.contracts import ManifestMember, ModelSetManifest, schema_hash
from signalml.services.kafka import KafkaBroker
from signalml.services.process import free_port
from signalml.services.triton import TritonServer
from stream.features import feature_names
from stream.lease import lease_group
from stream.replay import replay

SLOW_MODEL = Path(__file__).resolve().with_name("triton_slow") / "model.py"
TOPIC_BASES = (("bars", "bars"), ("bars_dlq", "bars.dlq"), ("signals", "signals"),
               ("signals_challenger", "signals.challenger"), ("cross_sections", "cross.sections"),
               ("drift", "drift"), ("control", "control"), ("engine_state", "engine.state"),
               ("engine_lease", "engine.lease"))
OUTPUTS = ("bars_dlq", "signals", "cross_sections", "drift", "engine_state", "engine_lease")


def slow_model_config(n_features: int, delay_s: float, instances: int, max_batch_size: int) -> str:
    return f"""name: "slow"
backend: "python"
max_batch_size: {max_batch_size}
input [{{ name: "FEATURES" data_type: TYPE_FP32 dims: [ {n_features} ] }}]
output [{{ name: "SCORE" data_type: TYPE_FP32 dims: [ 1 ] }}]
instance_group [{{ count: {instances} kind: KIND_CPU }}]
parameters {{ key: "delay_s" value {{ string_value: "{delay_s}" }} }}
"""


def _world_settings(settings: Settings, tmp: Path, tag: str, warmup_bars: int) -> Settings:
    topics = {key: {"name": f"bench.scale.{base}.{tag}"} for key, base in TOPIC_BASES}
    return _with(settings, {
        "paths": {"state_dir": str(tmp / "state")},
        "triton": {"repository": str(tmp / "repo")},
        "kafka": {"topics": topics},
        "serving": {"warmup_bars": warmup_bars, "engine_id": f"bench-scale-{tag}",
                    "consumer_group": f"bench-scale-{tag}", "barrier_timeout_s": 30.0},
    })


def _server(world: Settings, tmp: Path, index: int) -> TritonServer:
    """A Triton on free ports over the world's repository, ``slow`` loaded."""
    ports: dict[str, int] = {}
    while len(set(ports.values())) < 3:
        ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    server = TritonServer(_with(world, {"paths": {"state_dir": str(tmp / f"triton-{index}")}, "triton": ports}))
    server.start()
    server.load_model("slow")
    return server


def _manifest(names: list[str], tag: str) -> ModelSetManifest:
    return ModelSetManifest(
        model_set=f"ms-{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{tag}",
        created_at=int(time.time() * 1000),
        members=[ManifestMember("slow", 1, "ridge", "tabular")],
        ensemble_method="average",
        feature_names=names,
        feature_schema_hash=schema_hash(names),
        horizon_bars=1,
    )


def _engine_run(world: Settings, urls: list[str], k: int, step_bars: int, tag: str, created: list[str],
                groups: list[str]) -> dict:
    """One engine over the world's bars backlog with its own outputs, taking
    ``step_bars`` bars per step (and so per commit) whatever ``k``."""
    from stream.engine import Engine

    topics = {key: {"name": f"{getattr(world.kafka.topics, key).name}.{tag}"} for key in OUTPUTS}
    engine_id = f"{world.serving.engine_id}-{tag}"
    settings = _with(world, {"kafka": {"topics": topics}, "triton": {"endpoints": urls},
                             "serving": {"engine_id": engine_id, "consumer_group": engine_id, "max_in_flight": k,
                                         "consume_batch": max(1, step_bars // k)}})
    KafkaBroker(settings).ensure_topics()
    created += [t["name"] for t in topics.values()]
    groups += [engine_id, lease_group(engine_id)]
    engine = Engine(settings)
    marks = _instrumented(engine)
    engine.run(idle_exit_s=1.0, serve_http=False)
    return {"busy_s": marks["last_commit"] - marks["first_bar"],
            "signals": int(engine.metrics.signals_out._value.get())}


def run(
    settings: Settings,
    *,
    n_symbols: int = 500,
    bar_times: int = 60,
    warmup_bars: int = 2,
    delay_s: float = 0.05,
    instances: int = 4,
    ks: tuple[int, ...] = (1, 2, 4, 8),
    endpoint_counts: tuple[int, ...] = (1, 2),
    quick: bool = False,
) -> dict:
    """Run the benchmark in a private world; returns the figures (see the module docstring)."""
    if quick:
        n_symbols, bar_times, ks = 40, 12, (1, 4)
    tag = uuid.uuid4().hex[:8]
    tmp = Path(tempfile.mkdtemp(prefix="signalml-bench-scale-"))
    world = _world_settings(settings, tmp, tag, warmup_bars)
    created = [t.name for t in world.kafka.topics.all().values()]
    groups: list[str] = []
    servers: list[TritonServer] = []
    names = list(feature_names(world.features))
    try:
        KafkaBroker(world).ensure_topics()
        version = world.triton_repository / "slow" / "1"
        version.mkdir(parents=True)
        shutil.copy(SLOW_MODEL, version / "model.py")
        (version.parent / "config.pbtxt").write_text(
            slow_model_config(len(names), delay_s, instances, world.serving.max_batch_size))
        servers = [_server(world, tmp, i) for i in range(max(endpoint_counts))]
        send_manifest(world.kafka.bootstrap_servers, world.kafka.topics.control.name, _manifest(names, tag))
        frame = synthetic_bars(n_symbols, warmup_bars + bar_times, seed=n_symbols)
        replay(world, frame, source_file="synthetic")

        runs = []
        for n_endpoints in endpoint_counts:
            urls = [s.cfg.grpc_url for s in servers[:n_endpoints]]
            for k in ks:
                got = _engine_run(world, urls, k, max(ks) * n_symbols, f"e{n_endpoints}k{k}", created, groups)
                runs.append({"endpoints": n_endpoints, "k": k,
                             "bar_times_per_s": round((warmup_bars + bar_times) / got["busy_s"], 2),
                             "bars_per_s": round(len(frame) / got["busy_s"], 1),
                             "busy_s": round(got["busy_s"], 3),
                             "all_signals": got["signals"] == n_symbols * bar_times})
        base = next(r for r in runs if r["endpoints"] == 1 and r["k"] == 1)["bar_times_per_s"]
        for r in runs:
            concurrency = min(r["k"], instances * r["endpoints"])
            r["ideal_bar_times_per_s"] = round(base * concurrency, 2)
            r["ratio"] = round(r["bar_times_per_s"] / base, 2)
            r["ideal_ratio"] = concurrency
        return {
            "symbols": n_symbols,
            "bar_times": warmup_bars + bar_times,
            "scored_bar_times": bar_times,
            "delay_ms": round(delay_s * 1000),
            "instances_per_endpoint": instances,
            "runs": runs,
            "ratio_k4_2_endpoints": next(r["ratio"] for r in runs if r["k"] == 4 and r["endpoints"] == 2)
            if 4 in ks and 2 in endpoint_counts else None,
            "notes": (
                f"private world (topics bench.scale.*.{tag}, own Triton servers on free ports); the served "
                f"member waits {delay_s * 1000:.0f} ms per request, {instances} instances per server. "
                "Throughput: bar times (or bars) / (last commit - first consumed bar), timed inside the engine, "
                f"warm-up bar times ({warmup_bars}, not scored) included. ratio: against K=1, 1 endpoint in "
                "this run; ideal = that rate x min(K, instances x endpoints). One commit per engine step; every "
                f"configuration takes {max(ks)} bar times per step (consume_batch = {max(ks)} x symbols / K), so "
                "the commits are the same and only the requests in flight differ. 2 shared cores: Kafka, Triton, the engine and the "
                "bench share them."
            ),
        }
    finally:
        for server in servers:
            try:
                server.stop()
            except Exception:  # noqa: BLE001 - cleanup is best effort
                pass
        _delete_groups(world.kafka.bootstrap_servers, groups)
        _delete_topics(world.kafka.bootstrap_servers, created)
        shutil.rmtree(tmp, ignore_errors=True)


def _delete_groups(bootstrap: str, groups: list[str]) -> None:
    if not groups:
        return
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_consumer_groups(sorted(set(groups))).values():
        try:
            future.result(30)
        except Exception:  # noqa: BLE001 - cleanup is best effort; a group never created is not there
            pass
