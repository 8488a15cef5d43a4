"""A small closed-loop HTTP/1.1 load generator for ``signalml bench api``.

``connections`` keep-alive connections each send the next GET as soon as
the previous answer is read, for ``warmup_s + duration_s``; only requests
started after the warm-up count. Latency is from writing the request to
reading the last byte of the body. Run it in its own process
(``python -m bench.http_load --url URL``) so that it does not share an
interpreter lock with the server it measures; it prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from urllib.parse import urlsplit

import numpy as np


async def _connection(host: str, port: int, request: bytes, warm_until: float, deadline: float,
                      latencies: list[float], statuses: Counter, sizes: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while True:
            started = time.perf_counter()
            if started >= deadline:
                return
            writer.write(request)
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b"\n", b""):
                    break
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            done = time.perf_counter()
            if not status_line:
                raise ConnectionError("the server closed the connection")
            if started >= warm_until:
                latencies.append(done - started)
                statuses[int(status_line.split()[1])] += 1
                sizes.append(len(body))
    finally:
        writer.close()


async def _run(url: str, connections: int, duration_s: float, warmup_s: float) -> dict:
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    request = (f"GET {target} HTTP/1.1\r\nHost: {parts.hostname}:{parts.port}\r\n"
               "Accept: application/json\r\n\r\n").encode()
    latencies: list[float] = []
    statuses: Counter = Counter()
    sizes: list[int] = []
    start = time.perf_counter()
    warm_until, deadline = start + warmup_s, start + warmup_s + duration_s
    results = await asyncio.gather(
        *(_connection(parts.hostname, parts.port, request, warm_until, deadline, latencies, statuses, sizes)
          for _ in range(connections)),
        return_exceptions=True,
    )
    measured_s = max(time.perf_counter(), deadline) - warm_until
    errors = [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    ms = np.array(latencies) * 1000
    return {
        "url_length": len(target),
        "connections": connections,
        "requests": len(latencies),
        "requests_per_s": round(len(latencies) / measured_s, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 3) if len(ms) else None,
        "p90_ms": round(float(np.percentile(ms, 90)), 3) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 3) if len(ms) else None,
        "max_ms": round(float(ms.max()), 3) if len(ms) else None,
        "body_bytes": int(np.median(sizes)) if sizes else None,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "errors": errors[:5],
    }


def run_load(url: str, *, connections: int = 8, duration_s: float = 5.0, warmup_s: float = 1.0) -> dict:
    """Drive ``url`` in this process (see the module docstring)."""
    return asyncio.run(_run(url, connections, duration_s, warmup_s))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    args = parser.parse_args(argv)
    print(json.dumps(run_load(args.url, connections=args.connections, duration_s=args.duration,
                              warmup_s=args.warmup)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
