"""The Grafana dashboard asks only for metrics that exist, and shows all of ours.

Every panel's PromQL is parsed for the metric names it selects. Each name
must be exposed by the code: the engine's (``EngineMetrics`` and the Triton
client's ``InferenceMetrics`` on the engine's registry, read from the
registry itself), the drift monitor's (``MonitorMetrics``' registry),
the retraining loop's (``RetrainMetrics``), or Triton's own (fixed names, ``TRITON_METRICS``, which
``tests/integration/test_dashboard_triton.py`` checks against a real Triton
scrape). A renamed metric, or a panel typed by hand with a typo, fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from stream.inference.metrics import InferenceMetrics
from stream.monitor.metrics import MonitorMetrics
from stream.observability import EngineMetrics
from training.retrain import RetrainMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "signalml.json"

# The drift monitor's families every dashboard must show: realised rank IC per
# member of a model set, and the drift events it published.
MONITOR_SHOWN = {"signalml_monitor_rank_ic", "signalml_monitor_drift_events", "signalml_monitor_input_bar_time_ms"}

# The retraining loop's (``signalml retrain --watch``): every family it exposes.
RETRAIN_SHOWN = {"signalml_retrain_runs", "signalml_retrain_drift_events", "signalml_retrain_rank_ic",
                 "signalml_retrain_duration_seconds"}

# Triton's own metrics (per model and version) that the dashboard uses; each
# appears on Triton's /metrics once a model has served a request.
TRITON_METRICS = {
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
    "nv_cpu_utilization",
    "nv_cpu_memory_used_bytes",
    "nv_cpu_memory_total_bytes",
}

# The series names each metric type exposes (prometheus_client's text format).
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
}
_PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}


def exposed_names(registry: CollectorRegistry) -> dict[str, str]:
    """Series name -> metric family name, for every metric registered on
    ``registry`` (labelled metrics included, before any label is used)."""
    return {
        family.name + suffix: family.name
        for family in registry.collect()
        for suffix in _SUFFIXES[family.type]
    }


def engine_registry() -> CollectorRegistry:
    """The registry as the engine fills it: its own metrics and the Triton client's."""
    metrics = EngineMetrics()
    InferenceMetrics.of(metrics.registry)
    return metrics.registry


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers left once
    strings, label matchers, ranges and grouping clauses are removed, that
    are neither a function call nor a keyword."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", "", expr)
    expr = re.sub(r"\[[^\]]*\]", "", expr)
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = set()
    for match in re.finditer(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?", expr):
        name, call = match.groups()
        if call is None and name not in _PROMQL_WORDS:
            names.add(name)
    return names


def dashboard_panels() -> list[dict]:
    def walk(panels):
        for panel in panels:
            yield panel
            yield from walk(panel.get("panels", []))

    return [p for p in walk(json.loads(DASHBOARD.read_text())["panels"]) if p["type"] != "row"]


def panel_metric_names(panel: dict) -> set[str]:
    return set().union(*(promql_metric_names(t["expr"]) for t in panel["targets"]))


# ---------------------------------------------------------------- the parser


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("sum(rate(signalml_bars_in_total[$__rate_interval]))", {"signalml_bars_in_total"}),
        (
            "histogram_quantile(0.99, sum by (stage, le) (rate(signalml_stage_latency_seconds_bucket[5m])))",
            {"signalml_stage_latency_seconds_bucket"},
        ),
        (
            'sum by (model) (rate(nv_inference_queue_duration_us{model="lstm"}[1m])) / '
            "clamp_min(sum by (model) (rate(nv_inference_request_success[1m])), 1e-9)",
            {"nv_inference_queue_duration_us", "nv_inference_request_success"},
        ),
        ("max(up) > bool 0 or on (job) absent(node_load1)", {"up", "node_load1"}),
    ],
)
def test_promql_parser_finds_exactly_the_selected_metrics(expr, names):
    assert promql_metric_names(expr) == names


def test_exposed_names_cover_labelled_metrics_before_first_use():
    names = exposed_names(engine_registry())
    assert names["signalml_bars_rejected_total"] == "signalml_bars_rejected"
    assert names["signalml_stage_latency_seconds_bucket"] == "signalml_stage_latency_seconds"
    assert names["signalml_triton_latency_seconds_bucket"] == "signalml_triton_latency_seconds"
    assert "signalml_model_set_info" in names  # a gauge named *_info, not an Info metric


# ---------------------------------------------------------------- the dashboard


def test_every_panel_queries_only_metrics_that_exist():
    known = (set(exposed_names(engine_registry())) | set(exposed_names(MonitorMetrics().registry))
             | set(exposed_names(RetrainMetrics().registry)) | TRITON_METRICS)
    unknown = {
        panel["title"]: sorted(panel_metric_names(panel) - known)
        for panel in dashboard_panels()
        if panel_metric_names(panel) - known
    }
    assert unknown == {}, f"panels query metrics nothing exposes: {unknown}"


def test_every_engine_client_monitor_and_listed_triton_metric_has_a_panel():
    used = set().union(*(panel_metric_names(p) for p in dashboard_panels()))
    engine = exposed_names(engine_registry())
    families_shown = {engine[name] for name in used if name in engine}
    missing = sorted(set(engine.values()) - families_shown)
    assert missing == [], f"engine or client metrics with no panel: {missing}"
    monitor = exposed_names(MonitorMetrics().registry)
    monitor_shown = {monitor[name] for name in used if name in monitor}
    assert MONITOR_SHOWN <= monitor_shown, sorted(MONITOR_SHOWN - monitor_shown)
    retrain = exposed_names(RetrainMetrics().registry)
    retrain_shown = {retrain[name] for name in used if name in retrain}
    assert RETRAIN_SHOWN <= retrain_shown, sorted(RETRAIN_SHOWN - retrain_shown)
    assert TRITON_METRICS <= used, sorted(TRITON_METRICS - used)


def test_panels_sit_on_the_grid_without_overlapping():
    cells: dict[tuple[int, int], str] = {}
    all_panels = json.loads(DASHBOARD.read_text())["panels"]
    for panel in all_panels:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']!r} overlaps {cells[(x, y)]!r}"
                cells[(x, y)] = panel["title"]
