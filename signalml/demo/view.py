"""The demo's terminal view of a :class:`~signalml.demo.feed.DemoFeed`: a
``rich`` panel refreshed in place, or one plain line at a time where the
output is not a terminal (CI, logs, ``--no-live``)."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Callable

from rich.console import Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from signalml.demo.feed import DemoFeed, Latency


def day(ts_ms: int | None) -> str:
    """The trading day of a bar close (epoch ms UTC; 16:00 New York is still that day in UTC)."""
    return "-" if ts_ms is None else datetime.fromtimestamp(ts_ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d")


def latency_text(latency: Latency) -> str:
    if latency.p50_s is None:
        return "-"
    return f"p50 ≤ {latency.p50_s * 1000:g} ms, p99 ≤ {latency.p99_s * 1000:g} ms"


def rate_text(feed: DemoFeed) -> str:
    now = "-" if feed.bars_per_s is None else f"{feed.bars_per_s:,.0f}"
    average = feed.tail_bars_per_s
    return now if average is None else f"{now} (tail average {average:,.0f})"


def ic_text(values: dict[str, float], order: list[str]) -> str:
    return "  ".join(f"{name} {values[name]:+.3f}" for name in order if name in values) or "-"


def ic_order(feed: DemoFeed) -> list[str]:
    names = set(feed.rolling_ic()) | set(feed.training_ic())
    return (["ensemble"] if "ensemble" in names else []) + sorted(names - {"ensemble"})


# ---------------------------------------------------------------- rich


def render(feed: DemoFeed, phase: str, title: str) -> Panel:
    """The whole view: the stream, the latest cross-section, the monitor."""
    stream = Table.grid(padding=(0, 2))
    stream.add_column(style="bold")
    stream.add_column()
    stream.add_row("phase", phase)
    stream.add_row("bars/s", rate_text(feed) + ", consumed by the engine")
    stream.add_row("bar → signal", latency_text(feed.latency) + " (engine: last bar consumed → signals committed)")
    stream.add_row("signals", f"{feed.signals:,} in {len(feed.complete_times)} complete cross-sections")

    monitor = Table.grid(padding=(0, 2))
    monitor.add_column(style="bold")
    monitor.add_column()
    order = ic_order(feed)
    window = feed.settings.monitor.ic_window_bars
    monitor.add_row("evaluated", f"{feed.monitor_released} cross-sections (returns matured "
                                 f"{feed.settings.training.label_horizon_bars} bars later)")
    monitor.add_row(f"rolling rank IC ({window})", ic_text(feed.rolling_ic(), order))
    monitor.add_row("training rank IC", ic_text(feed.training_ic(), order))
    counts = feed.drift_counts()
    monitor.add_row("drift events", ", ".join(f"{k} {n}" for k, n in counts.items()) or "none")
    for event in feed.drift_events[-4:]:
        monitor.add_row("", f"{day(event.ts)} {event.severity} {event.kind} {event.subject} "
                            f"{event.statistic:.3f} (threshold {event.threshold:.3f})")

    return Panel(
        Group(stream, Text(""), _cross_section(feed), Text(""), monitor),
        title=title, title_align="left", border_style="cyan",
    )


def _cross_section(feed: DemoFeed) -> Table:
    latest = feed.latest
    caption = "latest cross-section: none yet" if latest is None else (
        f"latest cross-section {day(latest.ts)}: {len(latest.signals)} symbols")
    table = Table(title=caption, title_justify="left", expand=False, box=None, padding=(0, 1))
    for header in ("top 5", "score", "rank", "", "bottom 5", "score", "rank"):
        table.add_column(header, justify="left" if header in ("top 5", "bottom 5", "") else "right")
    if latest is not None:
        for best, worst in zip(latest.top(), latest.bottom()):
            table.add_row(best.symbol, f"{best.score:+.4f}", f"{best.rank:.3f}", "",
                          worst.symbol, f"{worst.score:+.4f}", f"{worst.rank:.3f}")
    return table


# ---------------------------------------------------------------- plain


def plain_line(feed: DemoFeed, phase: str) -> str:
    """One line of the same figures, for logs."""
    parts = [phase, f"{rate_text(feed)} bars/s", f"bar→signal {latency_text(feed.latency)}",
             f"{feed.signals} signals / {len(feed.complete_times)} cross-sections"]
    if feed.latest is not None:
        top = " ".join(f"{s.symbol}{s.score:+.3f}" for s in feed.latest.top())
        bottom = " ".join(f"{s.symbol}{s.score:+.3f}" for s in feed.latest.bottom())
        parts.append(f"{day(feed.latest.ts)} top {top} | bottom {bottom}")
    rolling = feed.rolling_ic()
    if rolling:
        parts.append(f"rolling IC {ic_text(rolling, ic_order(feed))} ({feed.monitor_released} evaluated)")
    parts.append(f"drift events {len(feed.drift_events)}")
    return " | ".join(parts)


# ---------------------------------------------------------------- on screen


class Display:
    """``with Display(feed, title, live) as show``: ``show(phase)`` redraws
    the rich view in place (``live``), or prints a plain line at most every
    ``every_s`` seconds."""

    def __init__(self, feed: DemoFeed, title: str, live: bool, every_s: float = 2.0):
        self.feed, self.title, self.every_s = feed, title, every_s
        self.live = Live(render(feed, "starting", title), auto_refresh=False) if live else None
        self.phase, self.printed_at = "starting", 0.0

    def __enter__(self) -> Callable[[str], None]:
        if self.live is not None:
            self.live.__enter__()
        return self.show

    def show(self, phase: str) -> None:
        self.phase = phase
        if self.live is not None:
            self.live.update(render(self.feed, phase, self.title), refresh=True)
        elif time.monotonic() - self.printed_at >= self.every_s:
            self.printed_at = time.monotonic()
            print(f"demo: {plain_line(self.feed, phase)}", flush=True)

    def __exit__(self, *exc) -> None:
        if self.live is not None:
            self.live.update(render(self.feed, self.phase, self.title), refresh=True)
            self.live.__exit__(*exc)
        else:
            print(f"demo: {plain_line(self.feed, self.phase)}", flush=True)


def summary_lines(summary: dict) -> list[str]:
    """The closing screen: where things are and what happened."""
    tail, latency, monitor = summary["tail"], summary["latency_s"], summary["monitor"]
    ic = monitor["rolling_rank_ic"]
    training_ic = monitor["training_rank_ic"]
    ensemble = "-" if "ensemble" not in ic else f"{ic['ensemble']:+.3f}"
    trained = "-" if "ensemble" not in training_ic else f"{training_ic['ensemble']:+.3f}"
    p50, p99 = latency["p50_at_most"], latency["p99_at_most"]
    latency_line = "-" if p50 is None else (
        f"bar → signal p50 ≤ {p50 * 1000:g} ms, p99 ≤ {p99 * 1000:g} ms over the tail "
        "(engine histogram: last bar consumed → signals committed)")
    first, last = summary["training_dates"]
    members = ", ".join(f"{name} v{version}" for name, version in summary["members"].items())
    stopped = summary["stack_stopped"]
    drift = ", ".join(f"{k} {n}" for k, n in summary["drift_events"].items()) or "none"
    return [
        "",
        f"SignalML demo done in {summary['elapsed_s']:.0f} s",
        f"  report       {summary['report']}",
        f"  training     {first} → {last}: {summary['training_summary']}",
        f"  model set    {summary['model_set']} ({members})",
        f"  tail         {tail['first']} → {tail['last']}: {tail['bar_times']} bar times, {tail['bars']:,} bars "
        f"at {tail['speed']:g} bar times/s; the engine read {summary['tail_bars_per_s']:,.0f} bars/s",
        f"  signals      {summary['signals']:,} on the signals topic, {summary['complete_cross_sections']} complete "
        f"cross-sections, model_set={summary['model_set']}",
        f"  latency      {latency_line}",
        f"  monitor      {monitor['evaluated']} of {monitor['matured']} matured cross-sections evaluated; rolling "
        f"rank IC of the ensemble {ensemble} (training {trained})",
        *([f"               {monitor['not_evaluated']} NOT evaluated: {monitor['why_not']}"]
          if monitor["not_evaluated"] else []),
        f"  drift        {drift}",
        f"  logs         {', '.join(summary['logs'])}",
        f"  summary      {summary['out']}/demo.json",
        "  stack        " + (f"stopped: {', '.join(stopped)}" if stopped else
                            "left up: `signalml status` shows it and the model set; `signalml down` stops it"),
    ]
