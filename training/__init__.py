"""Offline training: history → the engine's features → walk-forward /
purged CV → members and ensembles → evaluation report → model-set export.

Entry points: :func:`run_training` (``signalml train``) and
:func:`bench_train` (``signalml bench train``).
"""

from __future__ import annotations


def run_training(*args, **kwargs):
    from training.run import run_training as run

    return run(*args, **kwargs)


def bench_train(*args, **kwargs):
    from training.bench import bench_train as bench

    return bench(*args, **kwargs)


__all__ = ["bench_train", "run_training"]
