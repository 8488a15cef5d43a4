"""Offline training: history → the engine's features → walk-forward /
purged CV → members and ensembles → evaluation report → model-set export.

Entry point: :func:`run_training` (``signalml train``).
"""

from __future__ import annotations


def run_training(*args, **kwargs):
    from training.run import run_training as run

    return run(*args, **kwargs)


__all__ = ["run_training"]
