"""The drift monitor: realised predictive power and score drift of the
model sets in service, from Kafka.

The flow, one small part per module:

* :mod:`.join`: the engine's cross-section records (closes, scores), each
  joined with the record ``h`` bar times later: the forward returns;
* :mod:`.ic`: rank IC of one cross-section; :mod:`.window`: the rolling IC;
* :mod:`.decay`, :mod:`.detectors`, :mod:`.score_psi`: the findings (IC
  decay against the training IC, ADWIN and Page-Hinkley, score PSI);
* :mod:`.analyzer`: all findings of one model set; :mod:`.monitor`: the
  wiring, state in one key-value store (a Faust table in the app);
* :mod:`.app`: the Faust app (``signalml monitor``), batch by batch;
  :mod:`.metrics` its Prometheus metrics, :mod:`.changelog` its table,
  whose writes a batch waits for before it is acknowledged;
  :mod:`.positions` the input positions that repair what the consumer
  skips.

Everything but :mod:`.app` runs in-process without Kafka.
"""

from stream.monitor.monitor import DriftMonitor

__all__ = ["DriftMonitor"]
