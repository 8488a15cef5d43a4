"""SignalML's exceptions: one root, one class per kind of failure.

Library errors (confluent-kafka, tritonclient, subprocess) are translated to
the most specific class here, so callers catch ours and never a dependency's.
"""


class SignalMLError(Exception):
    """Root of every error SignalML raises on purpose."""


class ConfigError(SignalMLError):
    """The configuration is invalid; the message names the setting."""


class ServiceError(SignalMLError):
    """An embedded service (Kafka, Triton) failed to start, stop or answer."""


class PortInUseError(ServiceError):
    """A port the stack needs is taken by another process."""

    def __init__(self, service: str, setting: str, host: str, port: int):
        self.service, self.setting, self.host, self.port = service, setting, host, port
        super().__init__(
            f"{service}: port {port} on {host} is already in use by another process "
            f"(setting {setting}); stop that process or choose another port"
        )


class Interrupted(ServiceError):
    """A stop was requested while a call waited for a service."""


class SetupError(ServiceError):
    """A required install step was not done (missing venv, jars, binary)."""


class DataError(SignalMLError):
    """An input file cannot be read as bars (missing columns, bad format)."""
