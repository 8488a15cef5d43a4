"""Reading what the engine publishes: complete cross-sections of signals and drift alerts."""
