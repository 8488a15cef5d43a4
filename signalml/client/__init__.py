"""Reading what the engine publishes: complete cross-sections of signals and drift alerts.

:class:`CrossSectionReader` hands over each complete cross-section of the
signals topic once (read-committed, resumable from its consumer group);
:class:`DriftAlertReader` hands over drift events, filtered. Both commit
their group's position only for what the caller has taken.
"""

from signalml.client.cross_section import SignalCrossSection
from signalml.client.drift_reader import DriftAlertReader
from signalml.client.signals_reader import CrossSectionReader

__all__ = ["CrossSectionReader", "DriftAlertReader", "SignalCrossSection"]
