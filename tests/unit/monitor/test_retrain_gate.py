"""The retraining loop's promotion gate and trigger rules, in-process."""

from signalml.config import load_settings
from signalml.contracts import DriftEvent
from training.retrain import RetrainLoop


def loop(**retrain) -> RetrainLoop:
    return RetrainLoop(load_settings(environ={}, overrides={"retrain": {"http_port": 0, **retrain}}))


def event(severity="critical", kind="ic_decay", model_set="ms-1") -> DriftEvent:
    return DriftEvent(ts=1, kind=kind, subject="ensemble", statistic=-0.1, threshold=0.0, severity=severity,
                      model_set=model_set)


def test_the_gate_publishes_only_a_positive_candidate_that_beats_the_current_set():
    gate = loop(min_improvement=0.01).gate
    assert gate(0.05, 0.02) is None
    assert gate(0.05, None) is None
    assert "does not beat the current set's 0.0450 by retrain.min_improvement 0.01" in gate(0.05, 0.045)
    assert "is not positive" in gate(-0.01, -0.2)
    assert "no rank IC" in gate(float("nan"), 0.0)


def test_only_qualifying_drift_events_about_the_set_in_service_trigger_a_retrain():
    retrain = loop(min_severity="critical", kinds=["ic_decay"])
    assert retrain.qualifies(event(), "ms-1") is None
    assert "below retrain.min_severity" in retrain.qualifies(event(severity="warning"), "ms-1")
    assert "not in retrain.kinds" in retrain.qualifies(event(kind="adwin"), "ms-1")
    assert "not the one in service" in retrain.qualifies(event(model_set="ms-0"), "ms-1")
    retrain.last_retrain_at = __import__("time").monotonic()
    assert "cooldown" in retrain.qualifies(event(), "ms-1")
