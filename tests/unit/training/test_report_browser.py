"""The training report as a person sees it: opened in real headless Chromium,
alone in its folder (it is self-contained), its headings and tables render,
every embedded plot loads, and the browser reports no console error and no
failed request. The full-page screenshot is kept as a test artifact in
``artifacts/test-report/`` (beside the report it shows)."""

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
PLOTS = ("ic_per_period.png", "cumulative_spread.png", "quantile_returns.png", "ic_decay.png", "feature_importance.png")


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
    shutil.copy2(out / "report.html", ARTIFACT_DIR / "report.html")  # the page alone, no PNG beside it
    return ARTIFACT_DIR / "report.html", metrics, out


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels from the PNG's IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def test_report_renders_in_headless_chromium_with_every_plot_loaded(report):
    html_path, metrics, out = report
    screenshot = ARTIFACT_DIR / "report-screenshot.png"
    page = load_page(html_path.as_uri(), screenshot=screenshot)
    print(f"report screenshot: {screenshot}")

    assert page.title == "SignalML training report"
    default = metrics["default_ensemble"]
    assert page.headings == [
        "SignalML walk-forward training report",
        "Out-of-sample metrics over all test windows",
        "Against the 1-bar forward return",
        "Against the 20-bar forward return",
        f"Paired tests, 1-bar return: ensemble {default} against each score",
        f"Paired tests, 5-bar return: ensemble {default} against each score",
        f"Paired tests, 20-bar return: ensemble {default} against each score",
        "Quantile returns, 5-bar, less the date's mean (bps)",
        "Long-short spread, rebalanced every 5 bars, 5.0 bps one way",
        f"Per test window: ensemble {default}",
        *PLOTS,
        "Timing",
    ]
    # Header row, then one row per model, ensemble and baseline (three horizons);
    # paired tests against the members and the baseline; quantiles and spreads
    # of every score; then one row per test window.
    scores = sum(len(metrics[section]) for section in ("models", "ensembles", "baseline"))
    paired = len(metrics["models"]) + len(metrics["baseline"])
    assert page.table_rows == [1 + scores] * 3 + [1 + paired] * 3 + [1 + scores] * 2 + [1 + len(metrics["folds"])]

    assert len(page.images) == len(PLOTS)
    for image, name in zip(page.images, PLOTS):
        assert image.src.startswith("data:image/png;base64,")
        assert (image.natural_width, image.natural_height) == png_size(out / name), name
    assert page.console_errors == []
    assert page.page_errors == []
    assert page.failed_requests == []
    assert png_size(screenshot)[0] == 1280 and screenshot.stat().st_size > 10_000


def test_a_damaged_embedded_plot_is_seen_as_broken(report, tmp_path):
    """The checks above can fail: a report whose first embedded PNG is
    damaged shows a broken image in the same browser."""
    html_path, _, _ = report
    text = html_path.read_text()
    start = text.index("data:image/png;base64,") + len("data:image/png;base64,")
    (tmp_path / "report.html").write_text(text[:start] + "AAAA" + text[start + 400:])

    page = load_page((tmp_path / "report.html").as_uri())

    assert len(page.broken_images) == 1 and page.broken_images[0].startswith("data:image/png;base64,AAAA")
