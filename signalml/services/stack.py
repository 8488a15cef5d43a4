"""The embedded stack: Kafka and Triton started, stopped and reported together."""

from __future__ import annotations

from signalml.config import Settings


class Stack:
    """Both embedded services of one configuration (one state directory)."""

    def __init__(self, settings: Settings):
        from signalml.services.kafka import KafkaBroker
        from signalml.services.triton import TritonServer

        self.settings = settings
        self.services = {"kafka": KafkaBroker(settings), "triton": TritonServer(settings)}

    def _selected(self, only: str | None) -> dict:
        return {only: self.services[only]} if only else self.services

    def up(self, only: str | None = None) -> None:
        """Start what is not running yet; a running service is left alone.
        If a later service fails, the ones this call started are stopped."""
        started = []
        try:
            for name, service in self._selected(only).items():
                was_running = service.status().get("running", False)
                service.start()
                if not was_running:
                    started.append(service)
        except BaseException:
            for service in reversed(started):
                service.stop()
            raise
        if "triton" in self._selected(only):
            # Explicit model control loads nothing at start: bring back the
            # model set in service before anyone asks for it.
            from models.publish import load_current

            load_current(self.settings)

    def down(self, only: str | None = None) -> list[str]:
        """Stop services, Triton first (it has no clients after the engine
        stops; Kafka may). Returns the names of those that were running."""
        stopped = []
        for name, service in reversed(list(self._selected(only).items())):
            if service.stop():
                stopped.append(name)
        return stopped

    def status(self) -> dict[str, dict]:
        return {name: service.status() for name, service in self.services.items()}
