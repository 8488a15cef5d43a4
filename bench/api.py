"""``signalml bench api``: the engine's query API under load, "latest signals
of 500 symbols", against a bare HTTP server in the same run.

A private world (:func:`bench.e2e.private_world`: own topics, own
Triton, a small trained model set) and synthetic bars of ``symbols``
symbols: warm-up bar times plus a few scored ones are replayed, the engine
runs them in a thread of this process with its HTTP server on, until its
committed view holds a signal for every symbol. Then a load generator in a
separate process (:mod:`bench.http_load`: closed loop, keep-alive
connections) drives, in turn, for each number of connections and repeat:

* ``api_all``: ``GET /v1/signals`` (every symbol; the body is built once per
  committed view and cached);
* ``api_list``: ``GET /v1/signals?symbols=<all 500, listed>`` (the list is
  parsed and checked on every request, the body joined from the view's
  per-symbol encoded signals);
* ``baseline``: a bare ``http.server`` (same threading server, HTTP/1.1
  keep-alive) in this process, answering the same bytes as ``api_all`` from
  memory.

Figures are medians over the repeats; ratios are API / baseline.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from signalml.config import Settings
from signalml.errors import ServiceError
from bench.e2e import _fresh, private_world, synthetic_bars
from stream.replay import replay

REPO = Path(__file__).resolve().parents[1]


def bare_server(body: bytes) -> ThreadingHTTPServer:
    """The baseline: every GET answers ``body`` (JSON) from memory."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as the engine's server does

        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="bench-bare-http", daemon=True).start()
    return server


def load(url: str, connections: int, duration_s: float, warmup_s: float) -> dict:
    """One run of the load generator in its own process."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.http_load", "--url", url, "--connections", str(connections),
         "--duration", str(duration_s), "--warmup", str(warmup_s)],
        cwd=REPO, capture_output=True, text=True, timeout=duration_s + warmup_s + 60,
    )
    if out.returncode != 0:
        raise ServiceError(f"load generator failed: {out.stderr[-2000:]}")
    result = json.loads(out.stdout)
    if result["errors"] or set(result["statuses"]) != {"200"}:
        raise ServiceError(f"load generator against {url[:80]}: {result['statuses']} {result['errors']}")
    return result


def _wait_for_view(engine, thread: threading.Thread, last_ts: int, n_symbols: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        view = engine.query.view
        if view.last_signal_ts == last_ts and len(view.signals) == n_symbols:
            return
        if not thread.is_alive():
            raise ServiceError("the engine stopped before committing the bench's bars")
        time.sleep(0.05)
    raise ServiceError(f"the engine did not commit signals of bar time {last_ts} within {timeout_s:.0f} s")


def _median(runs: list[dict], key: str) -> float:
    return round(statistics.median(r[key] for r in runs), 3)


def run(
    settings: Settings,
    *,
    symbols: int = 500,
    warmup_bars: int = 25,
    scored_bar_times: int = 3,
    connections: tuple[int, ...] = (1, 8),
    duration_s: float = 5.0,
    warmup_s: float = 1.0,
    repeats: int = 3,
    quick: bool = False,
) -> dict:
    """Run the benchmark (see the module docstring); returns the figures."""
    from stream.engine import Engine

    if quick:
        connections, duration_s, warmup_s, repeats = (4,), 1.0, 0.3, 1
    result: dict = {"symbols": symbols}
    with private_world(settings, warmup_bars=warmup_bars, prefix="signalml-bench-api-") as pw:
        world = _fresh(pw.settings, "api", pw.created)
        result["setup_s"] = pw.setup_s
        result["model_set"] = pw.manifest.model_set
        frame = synthetic_bars(symbols, warmup_bars + scored_bar_times, seed=symbols)
        replay(world, frame, source_file="synthetic")
        engine = Engine(world)
        thread = threading.Thread(target=engine.run, name="bench-engine", daemon=True)
        thread.start()
        baseline = None
        try:
            _wait_for_view(engine, thread, int(frame["ts"].max()), symbols, timeout_s=300)
            api = f"http://{world.serving.http_host}:{world.serving.http_port}"
            listed = sorted(engine.query.view.signals)
            urls = {"api_all": f"{api}/v1/signals", "api_list": f"{api}/v1/signals?symbols={','.join(listed)}"}
            body = urllib.request.urlopen(urls["api_all"], timeout=30).read()
            if urllib.request.urlopen(urls["api_list"], timeout=30).read() != body:
                raise ServiceError("the listed and the all-symbols answers differ")
            if len(json.loads(body)["signals"]) != symbols:
                raise ServiceError("the API does not answer a signal for every symbol")
            baseline = bare_server(body)
            urls["baseline"] = f"http://127.0.0.1:{baseline.server_address[1]}/v1/signals"
            result["body_bytes"] = len(body)
            result["url_bytes_api_list"] = len(urls["api_list"])
            figures: dict = {}
            for n in connections:
                runs: dict[str, list[dict]] = {name: [] for name in urls}
                for _ in range(repeats):
                    for name, url in urls.items():  # interleaved, so drift in the machine's load hits all alike
                        runs[name].append(load(url, n, duration_s, warmup_s))
                summary = {
                    name: {
                        "p50_ms": _median(r, "p50_ms"),
                        "p99_ms": _median(r, "p99_ms"),
                        "requests_per_s": _median(r, "requests_per_s"),
                        "requests": sum(x["requests"] for x in r),
                    }
                    for name, r in runs.items()
                }
                for name in ("api_all", "api_list"):
                    summary[name]["rps_vs_baseline"] = round(
                        summary[name]["requests_per_s"] / summary["baseline"]["requests_per_s"], 2)
                    summary[name]["p50_vs_baseline"] = round(summary[name]["p50_ms"] / summary["baseline"]["p50_ms"], 2)
                figures[f"connections_{n}"] = summary
            result["figures"] = figures
            result["engine_commits"] = engine.query.view.commits
        finally:
            engine.stop_event.set()
            thread.join(timeout=60)
            if baseline is not None:
                baseline.shutdown()
                baseline.server_close()
    result["notes"] = (
        f"{symbols} symbols, one committed signal each (3 members). Closed-loop load from a separate process "
        f"(bench.http_load, asyncio, keep-alive), {duration_s:g} s measured after {warmup_s:g} s warm-up, median of "
        f"{repeats} interleaved runs. api_all: GET /v1/signals (body cached per committed view); api_list: the same "
        "500 symbols listed in ?symbols= (parsed per request, body joined from per-symbol encodings cached per view); baseline: bare http.server in the same "
        "process answering the api_all bytes from memory. The engine runs in the same process (idle, caught up). "
        "Latency: request written -> last body byte read, at the client."
    )
    return result
