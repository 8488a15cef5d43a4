"""The drift monitor: realised predictive power and score drift of the
model sets in service, from Kafka.

The flow, one small part per module:

* :mod:`.returns`: closes per symbol, linked bar to bar; the forward return
  of a signal matures when the symbol's bar ``h`` bars later has arrived;
* :mod:`.clock`: the bars topic's low watermark, which tells when a missing
  return is given up;
* :mod:`.book`: signals grouped by bar time, released in bar-time order
  once every return has matured (or was given up);
* :mod:`.ic`: rank IC of one cross-section; :mod:`.window`: the rolling IC;
* :mod:`.decay`, :mod:`.detectors`, :mod:`.score_psi`: the findings (IC
  decay against the training IC, ADWIN and Page-Hinkley, score PSI);
* :mod:`.analyzer`: all findings of one model set; :mod:`.monitor`: the
  wiring, state in one key-value store (a Faust table in the app);
* :mod:`.app`: the Faust app (``signalml monitor``), :mod:`.metrics` its
  Prometheus metrics, :mod:`.changelog` its table, whose writes a message
  waits for before it is acknowledged.

Everything but :mod:`.app` runs in-process without Kafka.
"""

from stream.monitor.monitor import DriftMonitor

__all__ = ["DriftMonitor"]
