"""``signalml demo``: train, publish, serve, replay and watch, on the bundled
data, in one command. :mod:`.plan` cuts the data, :mod:`.run` runs the
steps, :mod:`.feed` gathers what comes out, :mod:`.view` shows it."""

from signalml.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "run_demo"]
