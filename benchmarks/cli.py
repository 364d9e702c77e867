"""The command line: ``python -m benchmarks [--quick] [--no-write] [--rounds N] [--output PATH]``.

:data:`STEPS` run in order against one :class:`~benchmarks.peer.Peer`, each
returning its part of the results; :mod:`benchmarks.report` turns them into
the table. The exit status is 1 if any reply was wrong or any call failed.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from . import report
from .clients import COLD_STARTERS, ROUND_TRIP_REFERENCES, SOCKETIO, WARM, RawBench
from .fresh import bench_import, child_memory, child_threads, run_child
from .measure import (Checker, bench_cold, bench_peer_ceiling, bench_round_trip,
                      bench_throughput, timed_call)
from .peer import Peer

Say = Callable[[str], None]
Step = Callable[[argparse.Namespace, Peer, Checker, Say], Dict[str, Any]]


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark myshell_sync against the alternatives on loopback, with targets.")
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md"),
        help="where to write the table (default: BENCHMARKS.md in the repository)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 3)")
    parser.add_argument("--child", choices=("threads", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or 3
    args.chunks = 2_000 if quick else 20_000
    args.rtt_calls = 30 if quick else 200
    args.cold_calls = 5 if quick else 20
    args.threads = 8 if quick else 32
    args.thread_chunks = 200 if quick else 2_000
    args.streams = 20 if quick else 100
    args.stream_chunks = 100
    args.import_runs = 3 if quick else 10
    return args


def run_child_mode(args: argparse.Namespace) -> int:
    """Scenario 3 or 4 in this (fresh) process; prints its JSON result."""
    if args.child == "threads":
        threads, n, rounds = args.size
        out = child_threads(args.url, threads, n, rounds)
    else:
        streams, n = args.size
        out = child_memory(args.url, streams, n)
    print(json.dumps(out))
    return 0


def measure_warm(args: argparse.Namespace, peer: Peer, checker: Checker,
                 say: Say) -> Dict[str, Any]:
    """The peer ceiling, then rows 1 and 2 on open connections."""
    res: Dict[str, Any] = {}
    # One full-size call first, so the peer has the reply encoded.
    warm = RawBench(peer.ws_url)
    checker.check("peer warm-up", warm.call(args.chunks)[0], args.chunks)
    warm.close()
    say("peer ceiling")
    res["peer_ceiling"] = bench_peer_ceiling(peer, args.chunks, args.rounds)
    clients: Dict[str, Any] = {}
    try:
        for name, open_client in WARM.items():
            clients[name] = open_client(peer)
        for name, client in clients.items():
            timed_call(client, 1, checker, f"warm-up {name}")
        say(f"1. throughput ({args.chunks:,} chunks x {args.rounds} rounds "
            f"x {len(clients)} clients)")
        res["throughput"] = bench_throughput(clients, args.chunks, args.rounds, checker)
        for name, open_client in ROUND_TRIP_REFERENCES.items():
            clients[name] = open_client(peer)
        say(f"2. warm round trip ({args.rtt_calls} calls x {args.rounds} rounds "
            f"x {len(clients)} clients)")
        res["round_trip"] = bench_round_trip(clients, args.rtt_calls, args.rounds, checker)
        res["socketio_out_of_order"] = clients[SOCKETIO].out_of_order
    finally:
        for client in clients.values():
            try:
                client.close()
            except Exception as exc:
                checker.failed(f"close {client.label}", exc)
    return res


def measure_cold(args: argparse.Namespace, peer: Peer, checker: Checker,
                 say: Say) -> Dict[str, Any]:
    """Row 2's cold calls: a new client each."""
    say(f"2. cold calls ({args.cold_calls} calls x {args.rounds} rounds "
        f"x {len(COLD_STARTERS)} clients)")
    return {"cold": bench_cold(COLD_STARTERS, peer, args.cold_calls, args.rounds, checker)}


def measure_fresh(args: argparse.Namespace, peer: Peer, checker: Checker,
                  say: Say) -> Dict[str, Any]:
    """Rows 3 and 4, each in a fresh process."""
    res: Dict[str, Any] = {}
    say(f"3. {args.threads} threads x {args.thread_chunks:,} chunks (fresh process)")
    res["threads"] = run_child(["threads", "--url", peer.base_url, "--size", str(args.threads),
                                str(args.thread_chunks), str(args.rounds)], timeout=300)
    say(f"4. memory, {args.streams} paused streams (fresh process)")
    res["memory"] = run_child(["memory", "--url", peer.base_url, "--size", str(args.streams),
                               str(args.stream_chunks)], timeout=120)
    for key in ("threads", "memory"):
        checker.checked += res[key]["checked"]
        checker.problems += res[key]["problems"]
    return res


def measure_import(args: argparse.Namespace, peer: Peer, checker: Checker,
                   say: Say) -> Dict[str, Any]:
    """Row 5, in fresh interpreters."""
    say(f"5. import time ({args.import_runs} runs x 3 interpreters x 2)")
    return {"import": bench_import(args.import_runs)}


#: The measurements, in the order they run.
STEPS: Tuple[Step, ...] = (measure_warm, measure_cold, measure_fresh, measure_import)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child_mode(args)
    faulthandler.dump_traceback_later(900, exit=True)  # never hang forever
    started = time.perf_counter()
    info = report.machine()

    def say(step: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {step}", file=sys.stderr, flush=True)

    checker = Checker()
    res: Dict[str, Any] = {}
    with Peer() as peer:
        for step in STEPS:
            res.update(step(args, peer, checker, say))
    elapsed = time.perf_counter() - started
    table = report.build_report(res, args).markdown()
    head = report.head_lines(info, args.quick, args.rounds)
    tail = report.tail_lines(checker.checked, checker.problems, res, elapsed)
    print("\n".join(head) + "\n\n" + table + "\n\n" + "\n".join(tail))
    for problem in checker.problems[:20]:
        print(f"  {problem}")
    if not args.no_write:
        report.write_markdown(args.output, head, table, tail)
        print(f"wrote {args.output}")
    return 1 if checker.problems else 0
