"""Where and how reproducibly the deep models run.

Training and scoring use CUDA when torch sees a GPU and the CPU
otherwise. :func:`reproducible` pins what decides the result of a fit:
the seed (in a forked RNG, so the caller's random state is untouched),
the CPU thread count (a different count changes the order of float sums)
and deterministic kernels. On the CPU two fits with one seed give equal
weights; on CUDA they are equal up to the few kernels without a
deterministic implementation (torch warns about those).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator

import torch


def select_device(requested: str | None = None) -> torch.device:
    """``requested`` if given, else CUDA when available, else the CPU."""
    if requested:
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_threads() -> int:
    return max(1, os.cpu_count() or 1)


@contextmanager
def reproducible(seed: int, num_threads: int, device: torch.device) -> Iterator[None]:
    """Seeded, deterministic torch inside the block; previous settings restored after."""
    if device.type == "cuda":
        # cuBLAS reads this when its handle is created; without it,
        # deterministic matmuls on CUDA are not available.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    previous = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
        torch.backends.cudnn.deterministic,
        torch.backends.cudnn.benchmark,
    )
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_num_threads(num_threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
        torch.manual_seed(seed)
        try:
            yield
        finally:
            threads, deterministic, warn_only, cudnn_deterministic, cudnn_benchmark = previous
            torch.set_num_threads(threads)
            torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
            torch.backends.cudnn.deterministic = cudnn_deterministic
            torch.backends.cudnn.benchmark = cudnn_benchmark


@contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """``torch.set_num_threads`` inside the block only."""
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
