"""SignalML: streaming inference engine for trading signals."""

__version__ = "0.1.0"
