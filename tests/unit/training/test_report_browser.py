"""The training report as a person sees it: opened in real headless Chromium,
its headings and tables render, every plot loads, and the browser reports no
console error and no failed request. The full-page screenshot is kept as a
test artifact in ``artifacts/test-report/`` (beside the report it shows)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from tests.browser import load_page
from training.run import run_training

from .conftest import small_settings
from .synthetic import standin_factory, standin_loader, synthetic_bars

REPO = Path(__file__).resolve().parents[3]
ARTIFACT_DIR = REPO / "artifacts" / "test-report"
PLOTS = ("ic_per_period.png", "cumulative_spread.png", "feature_importance.png")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> tuple[Path, dict]:
    """A report of a small walk-forward run (stand-in members, about 2 s),
    copied with its plots into the artifact folder; returns (report.html, metrics)."""
    work = tmp_path_factory.mktemp("report")
    bars_file = work / "bars.parquet"
    synthetic_bars(n_symbols=20, n_days=260, signal=0.5, seed=4).to_parquet(bars_file)
    out = work / "train"
    metrics = run_training(
        small_settings(), bars_file, out, progress=False, member_factory=standin_factory, member_loader=standin_loader
    )
    shutil.rmtree(ARTIFACT_DIR, ignore_errors=True)
    ARTIFACT_DIR.mkdir(parents=True)
    for name in ("report.html", *PLOTS):
        shutil.copy2(out / name, ARTIFACT_DIR / name)
    return ARTIFACT_DIR / "report.html", metrics


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_report_renders_in_headless_chromium_with_every_plot_loaded(report):
    html_path, metrics = report
    screenshot = ARTIFACT_DIR / "report-screenshot.png"
    page = load_page(html_path.as_uri(), screenshot=screenshot)
    print(f"report screenshot: {screenshot}")

    assert page.title == "SignalML training report"
    default = metrics["default_ensemble"]
    assert page.headings == [
        "SignalML walk-forward training report",
        "Out-of-sample metrics over all test windows",
        f"Per test window: ensemble {default}",
        *PLOTS,
        "Timing",
    ]
    # Header row, then one row per model, ensemble and baseline; then one per test window.
    overall_rows = 1 + sum(len(metrics[section]) for section in ("models", "ensembles", "baseline"))
    assert page.table_rows == [overall_rows, 1 + len(metrics["folds"])]

    assert [image.src for image in page.images] == list(PLOTS)
    for image in page.images:
        assert (image.natural_width, image.natural_height) == png_size(ARTIFACT_DIR / image.src), image.src
    assert page.console_errors == []
    assert page.page_errors == []
    assert page.failed_requests == []
    assert png_size(screenshot)[0] == 1280 and screenshot.stat().st_size > 10_000


def test_a_plot_missing_beside_the_report_is_seen_as_broken(report, tmp_path):
    """The checks above can fail: a report whose PNG is gone shows a broken
    image and a failed request in the same browser."""
    html_path, _ = report
    shutil.copy2(html_path, tmp_path / "report.html")
    for name in PLOTS[1:]:
        shutil.copy2(html_path.parent / name, tmp_path / name)

    page = load_page((tmp_path / "report.html").as_uri())

    assert page.broken_images == [PLOTS[0]]
    assert len(page.failed_requests) == 1 and PLOTS[0] in page.failed_requests[0]
