"""Progress bars (tqdm on stderr) that can be switched off."""

from __future__ import annotations

from collections.abc import Iterable


def progress_bar(items: Iterable, enabled: bool, **options):
    """``tqdm(items)`` when ``enabled``, else ``items`` unchanged."""
    if not enabled:
        return items
    from tqdm.auto import tqdm

    return tqdm(items, **options)
