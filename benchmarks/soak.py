"""Soak myshell_sync: many sequential calls and abandoned streams on one client.

Usage::

    python benchmarks/soak.py                                  # 10,000 calls, 2,000 abandoned, both transports
    python benchmarks/soak.py --calls 500 --abandoned 100      # the short run CI does
    python benchmarks/soak.py --transport websocket --json     # one transport, JSON on stdout

The local MyShell server runs in its own process (``benchmarks.local_peer``:
LocalMyshellServer with its defaults, as ``python -m myshell_sync.local``
runs it), so this process holds only the client and its figures are the
client's; the WebSocket connections opened are the /chat connects that
server accepted. For each transport, one client makes ``--calls``
sequential calls (each reply checked against the expected text), then starts
``--abandoned`` streams, takes the first chunk of each and closes it while
the server is still streaming the rest (a 40-word reply). Threads, open file
descriptors and RSS (``VmRSS`` from /proc/self/status) are read before the
client is made (after a warm-up client has loaded everything lazily
imported), after the calls, after the abandoned streams, and after
``close()``. The run fails (exit status 1) unless, after ``close()``, threads
and file descriptors are back at their baseline and RSS is within 10 MB of it.

Linux only (/proc).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import re
import resource
import sys
import threading
import time
from typing import Any

if not __package__:  # run as a file: make the benchmarks package importable
    sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import myshell_sync
from benchmarks.process import ServerProcess
from myshell_sync import Myshell

MODELS = {"websocket": "gpt-4", "http": "assistant"}
RSS_SLACK_KB = 10 * 1024
ABANDONED_WORDS = " ".join(f"w{i}" for i in range(40))


def figures() -> dict[str, int]:
    gc.collect()
    with open("/proc/self/status") as status:
        rss = int(re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.M).group(1))
    return {
        "threads": threading.active_count(),
        "fds": len(os.listdir("/proc/self/fd")),
        "rss_kb": rss,
    }


def expected(model: str, prompt: str) -> str:
    return f"{model}: {prompt}"


def warm_up(base_url: str, transports: list[str]) -> None:
    """Load everything that is imported or cached on first use."""
    for transport in transports:
        model = MODELS[transport]
        with Myshell(base_url, transport=transport, captcha_delay=0) as client:
            for i in range(20):
                "".join(client.generate(model, [{"role": "user", "content": f"warm {i}"}]))
                gen = client.generate(model, [{"role": "user", "content": f"warm {ABANDONED_WORDS}"}])
                next(gen)
                gen.close()


def soak(server: ServerProcess, transport: str, calls: int, abandoned: int) -> dict[str, Any]:
    model = MODELS[transport]
    connects = int(server.ask("connects"))
    before = figures()
    failures = 0
    started = time.monotonic()
    client = Myshell(server.base_url, transport=transport, captcha_delay=0, timeout=10)
    try:
        for i in range(calls):
            prompt = f"call {i}"
            if "".join(client.generate(model, [{"role": "user", "content": prompt}])) != expected(model, prompt):
                failures += 1
        calls_seconds = time.monotonic() - started
        after_calls = figures()
        started = time.monotonic()
        for i in range(abandoned):
            gen = client.generate(model, [{"role": "user", "content": f"abandoned {i} {ABANDONED_WORDS}"}])
            if next(gen) != f"{model}: ":
                failures += 1
            gen.close()
        abandoned_seconds = time.monotonic() - started
        after_abandoned = figures()
        # the client still works after all that
        if "".join(client.generate(model, [{"role": "user", "content": "last"}])) != expected(model, "last"):
            failures += 1
    finally:
        client.close()
    del client
    after = figures()
    connections = int(server.ask("connects")) - connects
    return {
        "transport": transport,
        "calls": calls,
        "abandoned": abandoned,
        "failures": failures,
        "websocket_connections_opened": connections,
        "calls_seconds": round(calls_seconds, 2),
        "abandoned_seconds": round(abandoned_seconds, 2),
        "before": before,
        "after_calls": after_calls,
        "after_abandoned": after_abandoned,
        "after": after,
    }


def ok(run: dict[str, Any]) -> bool:
    before, after = run["before"], run["after"]
    return (
        run["failures"] == 0
        and after["threads"] == before["threads"]
        and after["fds"] == before["fds"]
        and after["rss_kb"] - before["rss_kb"] <= RSS_SLACK_KB
    )


def table(report: dict[str, Any]) -> str:
    lines = [
        "| transport | calls | abandoned | failures | threads | fds | RSS (MB) | time (calls / abandoned) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for run in report["runs"]:
        stages = [run["before"], run["after_calls"], run["after_abandoned"], run["after"]]
        threads = " → ".join(str(stage["threads"]) for stage in stages)
        fds = " → ".join(str(stage["fds"]) for stage in stages)
        rss = " → ".join(f"{stage['rss_kb'] / 1024:.1f}" for stage in stages)
        lines.append(
            f"| {run['transport']} | {run['calls']:,} | {run['abandoned']:,} | {run['failures']} "
            f"| {threads} | {fds} | {rss} | {run['calls_seconds']} s / {run['abandoned_seconds']} s |"
        )
    lines.append("")
    lines.append("Each figure: before the client → after the calls → after the abandoned streams → after close().")
    return "\n".join(lines)


def main(argv: Any = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--abandoned", type=int, default=2_000)
    parser.add_argument("--transport", choices=("websocket", "http", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    transports = ["websocket", "http"] if args.transport == "both" else [args.transport]
    with ServerProcess("benchmarks.local_peer", quiet=True) as server:
        warm_up(server.base_url, transports)
        runs = [soak(server, t, args.calls, args.abandoned) for t in transports]
    report = {
        "command": "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "myshell_sync": myshell_sync.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "runs": runs,
        "ok": all(ok(run) for run in runs),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report))
        print(
            f"\npeak RSS {report['peak_rss_kb'] / 1024:.1f} MB; "
            f"{'OK' if report['ok'] else 'FAILED'}: threads and fds back at baseline, "
            f"RSS within {RSS_SLACK_KB // 1024} MB"
        )
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
