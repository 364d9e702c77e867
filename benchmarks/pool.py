"""Loopback benchmark of the myshell_sync client and its connection pool.

Cold calls (a new client each), warm calls (one reused connection), and 32
threads sharing one client with max_connections=8; every reply's text is
checked, and the exit status is 1 if any was wrong or any call failed. The
peer is LocalMyshellServer (python-socketio on aiohttp) in this process, so
every figure includes that server's cost; "connections opened" is how many
/chat connects that server accepted. ``--json`` for machine output.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

from myshell_sync import Myshell, MyshellError, __version__
from myshell_sync.local import LocalMyshellServer, reply_chunks

MODELS: tuple[str, ...] = ("samantha", "gpt-3.5-turbo", "gpt-4")
SAMPLE_EVERY = 0.002  # seconds between two thread-count samples
MAX_SHOWN = 5  # wrong replies and errors printed in full


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100), interpolated between closest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def latency_stats(samples: Sequence[float]) -> dict[str, Any]:
    return {"n": len(samples), "median_ms": percentile(samples, 50) * 1e3, "p90_ms": percentile(samples, 90) * 1e3}


class Checker:
    """Makes calls, and records wrong replies and errors (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checked = 0
        self.mismatches: list[str] = []
        self.errors: list[str] = []

    def call(self, client: Myshell, model: str, prompt: str) -> int | None:
        """One call; its chunk count, or None if it raised MyshellError."""
        try:
            chunks = list(client.generate(model, [{"role": "user", "content": prompt}]))
        except MyshellError as exc:
            with self._lock:
                self.errors.append(f"{model} {prompt!r}: {exc.__class__.__name__}: {exc}")
            return None
        expected, got = "".join(reply_chunks(model, prompt)), "".join(chunks)
        with self._lock:
            self.checked += 1
            if got != expected:
                self.mismatches.append(f"{model} {prompt!r}: expected {expected!r}, got {got!r}")
        return len(chunks)


def bench_cold(url: str, runs: int, checker: Checker) -> dict[str, Any]:
    """A new client per call; the call is timed, its close() apart."""
    calls: list[float] = []
    closes: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        client = Myshell(url, captcha_delay=0)
        try:
            if checker.call(client, "gpt-4", "hi") is not None:
                calls.append(time.perf_counter() - started)
        finally:
            closing = time.perf_counter()
            client.close()
            closes.append(time.perf_counter() - closing)
    return dict(latency_stats(calls), close_median_ms=percentile(closes, 50) * 1e3)


def bench_warm(server: LocalMyshellServer, runs: int, checker: Checker) -> dict[str, Any]:
    """One client, one warm-up call, then ``runs`` calls on its connection."""
    samples: list[float] = []
    connects = server.connects
    with Myshell(server.base_url, captcha_delay=0) as client:
        checker.call(client, "gpt-4", "hi")
        for _ in range(runs):
            started = time.perf_counter()
            if checker.call(client, "gpt-4", "hi") is not None:
                samples.append(time.perf_counter() - started)
    return dict(latency_stats(samples), connections_opened=server.connects - connects)


def bench_threads(
    server: LocalMyshellServer, threads: int, calls: int, max_connections: int, checker: Checker
) -> dict[str, Any]:
    """``threads`` threads share one client, each making ``calls`` calls."""
    chunk_counts = [0] * threads
    done = [0] * threads
    peak = threading.active_count()
    stop = threading.Event()
    start = threading.Barrier(threads + 1)

    def sample() -> None:
        nonlocal peak
        while not stop.wait(SAMPLE_EVERY):
            peak = max(peak, threading.active_count())

    def worker(client: Myshell, index: int) -> None:
        start.wait()
        for j in range(calls):
            model = MODELS[(index + j) % len(MODELS)]
            count = checker.call(client, model, f"thread {index} call {j}: hello there")
            if count is not None:
                chunk_counts[index] += count
                done[index] += 1

    connects = server.connects
    with Myshell(server.base_url, captcha_delay=0, max_connections=max_connections) as client:
        sampler = threading.Thread(target=sample, name="bench-sampler")
        workers = [threading.Thread(target=worker, args=(client, i), name=f"bench-{i}") for i in range(threads)]
        for thread in [sampler, *workers]:
            thread.start()
        start.wait()
        started = time.perf_counter()
        for thread in workers:
            thread.join()
        wall = time.perf_counter() - started
        stop.set()
        sampler.join()
    opened = server.connects - connects
    return {
        "threads": threads,
        "calls_per_thread": calls,
        "max_connections": max_connections,
        "calls": sum(done),
        "wall_s": wall,
        "calls_per_s": sum(done) / wall,
        "chunks": sum(chunk_counts),
        "chunks_per_s": sum(chunk_counts) / wall,
        "peak_threads": peak,
        "connections_opened": opened,
    }


def machine() -> dict[str, Any]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "date": now.isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu_count": os.cpu_count(),
        "myshell_sync": __version__,
    }


def report(r: dict[str, Any]) -> None:
    m, cold, warm, tp = r["machine"], r["cold"], r["warm"], r["threads"]
    print(f"myshell_sync {m['myshell_sync']} pool benchmark, {m['date']}")
    print(f"{m['platform']}, {m['python']}, {m['cpu_count']} CPUs")
    print("peer: LocalMyshellServer (python-socketio + aiohttp) on loopback, in this")
    print("process: every figure includes that server's own cost; it is not a fast peer.\n")
    print(f"{'latency':<28}{'n':>6}{'median ms':>11}{'p90 ms':>9}")
    for name, s in (("cold (new client per call)", cold), ("warm (reused connection)", warm)):
        print(f"{name:<28}{s['n']:>6}{s['median_ms']:>11.2f}{s['p90_ms']:>9.2f}")
    print(
        f"cold/warm median ratio: {r['cold_warm_ratio']:.1f}x (cold close(), not counted "
        f"above: median {cold['close_median_ms']:.2f} ms)\n"
    )
    print(
        f"throughput: {tp['threads']} threads x {tp['calls_per_thread']} calls, one client, "
        f"max_connections={tp['max_connections']}, models {', '.join(MODELS)}"
    )
    over = tp["connections_opened"] > tp["max_connections"]
    for label, value in (
        ("calls", tp["calls"]),
        ("wall time", f"{tp['wall_s']:.3f} s"),
        ("calls/s", f"{tp['calls_per_s']:.1f}"),
        ("chunks/s", f"{tp['chunks_per_s']:.1f}"),
        ("peak threads (process)", tp["peak_threads"]),
        ("connections opened", tp["connections_opened"]),
    ):
        print(f"  {label:<24}{value:>12}")
    if over:
        print(f"  NOTE: more connections opened than max_connections={tp['max_connections']}")
    print(f"\nthreads left after shutdown: {r['threads_after_shutdown']}")
    if not r["mismatches"] and not r["errors"]:
        print(f"replies checked: {r['replies_checked']}, all text correct, no errors")
        return
    print(f"WRONG RESULTS: {len(r['mismatches'])} replies with wrong text, {len(r['errors'])} failed calls")
    for line in r["mismatches"][:MAX_SHOWN] + r["errors"][:MAX_SHOWN]:
        print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", type=int, default=30, help="cold calls (default 30)")
    parser.add_argument("--warm", type=int, default=200, help="warm calls (default 200)")
    parser.add_argument("--threads", type=int, default=32, help="threads (default 32)")
    parser.add_argument("--calls", type=int, default=5, help="calls per thread (default 5)")
    parser.add_argument("--max-connections", type=int, default=8, help="pool size (default 8)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    if min(args.cold, args.warm, args.threads, args.calls, args.max_connections) < 1:
        parser.error("every count must be >= 1")
    checker = Checker()
    with LocalMyshellServer() as server:
        cold = bench_cold(server.base_url, args.cold, checker)
        warm = bench_warm(server, args.warm, checker)
        threads = bench_threads(server, args.threads, args.calls, args.max_connections, checker)
    results = {
        "machine": machine(),
        "cold": cold,
        "warm": warm,
        "threads": threads,
        "cold_warm_ratio": cold["median_ms"] / warm["median_ms"],
        "threads_after_shutdown": threading.active_count(),
        "replies_checked": checker.checked,
        "mismatches": checker.mismatches,
        "errors": checker.errors,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        report(results)
    return 1 if checker.mismatches or checker.errors else 0


if __name__ == "__main__":
    sys.exit(main())
