"""The command line: ``python -m benchmarks [--quick] [--no-write] [--rounds N] [--output PATH]``.

:data:`STEPS` run in order against one :class:`~benchmarks.peer.Peer`, each
returning its part of the results; :mod:`benchmarks.report` turns them into
the table, :mod:`benchmarks.plots` into the plots. The exit status is 1 if
any reply was wrong or any call failed.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import time
from typing import Any, Callable

from . import report
from .clients import (
    COLD_STARTERS,
    HTTP_CLIENTS,
    HTTPX_SSE,
    MYSHELL_HTTP,
    OPENAI_CLIENTS,
    OPENAPI_CLIENTS,
    RAW,
    REOPEN_EACH_ROUND,
    REQUESTS_JSON,
    REQUESTS_SSE,
    ROUND_TRIP_REFERENCES,
    WARM,
    HttpxSSEBench,
    MyshellBench,
    RawBench,
    RequestsJSONBench,
    RequestsSSEBench,
    SocketIOBench,
)
from .fresh import bench_import, child_memory, child_threads, run_child
from .growth import bench_reply_lengths
from .measure import (
    Checker,
    Slots,
    bench_cold,
    bench_peer_ceiling,
    bench_round_trip,
    bench_rounds,
    bench_throughput,
    describe,
    timed_call,
)
from .peer import Peer

Say = Callable[[str], None]
Step = Callable[[argparse.Namespace, Peer, Checker, Say], dict[str, Any]]
REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark myshell_sync against the alternatives on loopback, with targets.",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md and the plots")
    parser.add_argument(
        "--output",
        default=os.path.join(REPOSITORY, "BENCHMARKS.md"),
        help="where to write the table (default: BENCHMARKS.md in the repository)",
    )
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 3)")
    parser.add_argument("--child", choices=("threads", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--transport", default="websocket", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or 3
    # The newer throughput rows: a round is one call each, so more of them (ratios are same-round medians).
    args.stream_rounds = max(args.rounds, 5)
    args.chunks = 2_000 if quick else 20_000
    args.rtt_calls = 30 if quick else 200
    args.cold_calls = 5 if quick else 20
    args.threads = 8 if quick else 32
    args.thread_chunks = 200 if quick else 2_000
    args.streams = 20 if quick else 100
    args.stream_chunks = 100
    args.import_runs = 3 if quick else 10
    args.connection_calls = 20 if quick else 100
    args.lengths = (1, 10, 100, 1_000, 10_000) if quick else (1, 10, 100, 1_000, 10_000, 100_000)
    args.length_rounds = 2
    args.concurrency = (1, 8, 32) if quick else (1, 8, 32, 128)
    args.serve_calls = 20 if quick else 100
    args.serve_first_chunks = 20
    args.serve_long_chunks = 1_000 if quick else 5_000
    args.serve_streams = 16 if quick else 64
    return args


def run_child_mode(args: argparse.Namespace) -> int:
    """A scenario in this (fresh) process; prints its JSON result."""
    if args.child == "threads":
        threads, n, rounds = args.size
        out = child_threads(args.url, threads, n, rounds, args.transport)
    else:
        streams, n = args.size
        out = child_memory(args.url, streams, n, args.transport)
    print(json.dumps(out))
    return 0


def measure_warm(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """The peer ceiling, then rows 1 and 2 on open connections."""
    res: dict[str, Any] = {}
    # One full-size call first, so the peer has the reply encoded.
    warm = RawBench(peer.ws_url)
    checker.check("peer warm-up", warm.call(args.chunks)[0], args.chunks)
    warm.close()
    say("peer ceiling")
    res["peer_ceiling"] = bench_peer_ceiling(peer, args.chunks, args.rounds)
    slots = Slots({name: (lambda f=factory: f(peer)) for name, factory in WARM.items()}, checker, REOPEN_EACH_ROUND)
    try:
        slots.open_round(0)
        for name in slots.names:
            client = slots.get(name)
            if client is not None and timed_call(client, 1, checker, f"warm-up {name}") is None:
                slots.fail(name, f"warm-up {name}", RuntimeError("the warm-up call failed"))
        say(f"1. throughput ({args.chunks:,} chunks x {args.rounds} rounds x {len(slots.names)} clients)")
        res["throughput"] = bench_throughput(slots, args.chunks, args.rounds)
        slots.add({name: (lambda f=factory: f(peer)) for name, factory in ROUND_TRIP_REFERENCES.items()})
        say(f"2. warm round trip ({args.rtt_calls} calls x {args.rounds} rounds x {len(slots.names)} clients)")
        res["round_trip"] = bench_round_trip(slots, args.rtt_calls, args.rounds)
        res["socketio_out_of_order"] = SocketIOBench.total_out_of_order
    finally:
        slots.close()
    res["warm_causes"] = dict(slots.causes)
    return res


def measure_cold(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 2's cold calls: a new client each."""
    say(f"2. cold calls ({args.cold_calls} calls x {args.rounds} rounds x {len(COLD_STARTERS)} clients)")
    return {"cold": bench_cold(COLD_STARTERS, peer, args.cold_calls, args.rounds, checker)}


def count_connections(peer: Peer, make: Callable[[], Any], calls: int, checker: Checker, what: str) -> int | None:
    """TCP connections the peer accepts for ``calls`` sequential 1-chunk calls
    of a new client (None if a call failed)."""
    before = peer.connections()
    try:
        client = make()
    except Exception as exc:
        checker.failed(f"{what} open", exc)
        return None
    try:
        for i in range(calls):
            if timed_call(client, 1, checker, f"{what} #{i}") is None:
                return None
    finally:
        client.close()
    return peer.connections() - before


def measure_http(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 6: the HTTP transport against a user's requests and httpx loops."""
    slots = Slots({name: (lambda f=factory: f(peer)) for name, factory in HTTP_CLIENTS.items()}, checker)
    try:
        slots.open_round(0)
        for name in slots.names:  # connections open, and the peer has the replies encoded
            for n in (1, args.chunks):
                client = slots.get(name)
                if client is not None and timed_call(client, n, checker, f"warm-up {name}") is None:
                    slots.fail(name, f"warm-up {name}", RuntimeError("the warm-up call failed"))
        say(f"6. HTTP throughput ({args.chunks:,} chunks x {args.stream_rounds} rounds x {len(slots.names)} clients)")
        stream = bench_rounds(slots, args.chunks, 1, args.stream_rounds, "http throughput", interleave=False)
        say(
            f"6. HTTP round trip ({args.rtt_calls} calls x {args.rounds} rounds x {len(slots.names)} "
            "clients, taking turns)"
        )
        rtt = bench_rounds(slots, 1, args.rtt_calls, args.rounds, "http round trip")
    finally:
        slots.close()
    say(f"6. HTTP connections ({args.connection_calls} sequential calls x 3 clients)")
    connections = {
        MYSHELL_HTTP: count_connections(
            peer,
            lambda: MyshellBench(peer.base_url, "http"),
            args.connection_calls,
            checker,
            "connections myshell_sync",
        ),
        REQUESTS_SSE: count_connections(
            peer, lambda: RequestsSSEBench(peer.chat_url), args.connection_calls, checker, "connections requests"
        ),
        HTTPX_SSE: count_connections(
            peer, lambda: HttpxSSEBench(peer.chat_url), args.connection_calls, checker, "connections httpx"
        ),
    }
    return {"http": {"stream": stream, "rtt": rtt, "connections": connections, "causes": dict(slots.causes)}}


def measure_openapi(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 7: the key-based API transport against requests' post + json."""
    slots = Slots({name: (lambda f=factory: f(peer)) for name, factory in OPENAPI_CLIENTS.items()}, checker)
    say(
        f"7. key-based API round trip ({args.rtt_calls} calls x {args.rounds} rounds x "
        f"{len(slots.names)} clients, taking turns)"
    )
    try:
        slots.open_round(0)
        for name in slots.names:
            client = slots.get(name)
            if client is not None and timed_call(client, 1, checker, f"warm-up {name}") is None:
                slots.fail(name, f"warm-up {name}", RuntimeError("the warm-up call failed"))
        rtt = bench_rounds(slots, 1, args.rtt_calls, args.rounds, "openapi round trip")
    finally:
        slots.close()
    return {"openapi": {"rtt": rtt, "causes": dict(slots.causes)}}


def measure_openai(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 8: the OpenAI layer in process, then through ``myshell-sync serve``."""
    from .openai_serve import bench_serve

    slots = Slots({name: (lambda f=factory: f(peer)) for name, factory in OPENAI_CLIENTS.items()}, checker)
    say(f"8. OpenAI layer in process ({args.chunks:,} chunks x {args.stream_rounds} rounds x 2)")
    try:
        slots.open_round(0)
        for name in slots.names:
            client = slots.get(name)
            if client is not None and timed_call(client, 1, checker, f"warm-up {name}") is None:
                slots.fail(name, f"warm-up {name}", RuntimeError("the warm-up call failed"))
        stream = bench_rounds(slots, args.chunks, 1, args.stream_rounds, "openai layer", interleave=False)
    finally:
        slots.close()
    say(f"8. through myshell-sync serve ({args.serve_calls} calls x 2, {args.serve_streams} concurrent)")
    try:
        served = bench_serve(
            peer.base_url,
            calls=args.serve_calls,
            first_n=args.serve_first_chunks,
            long_n=args.serve_long_chunks,
            rounds=args.rounds,
            streams=args.serve_streams,
        )
    except Exception as exc:
        checker.failed("myshell-sync serve", exc)
        served = {"error": describe(exc)}
    else:
        checker.checked += served["checked"]
        checker.problems += served["failures"]
    return {"openai": {"stream": stream, "causes": dict(slots.causes), "serve": served}}


def measure_lengths(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 9: the cost of one chunk for every reply length, each transport."""
    groups: tuple[tuple[str, dict[str, Callable[[], Any]]], ...] = (
        ("websocket", {"myshell_sync": lambda: MyshellBench(peer.base_url).warm(), RAW: lambda: RawBench(peer.ws_url)}),
        (
            "http",
            {
                MYSHELL_HTTP: lambda: MyshellBench(peer.base_url, "http"),
                REQUESTS_SSE: lambda: RequestsSSEBench(peer.chat_url),
            },
        ),
        (
            "openapi",
            {
                "myshell_sync (openapi)": lambda: MyshellBench(peer.base_url, "openapi"),
                REQUESTS_JSON: lambda: RequestsJSONBench(peer.openapi_url),
            },
        ),
    )
    out: dict[str, Any] = {}
    causes: dict[str, str] = {}
    for transport, factories in groups:
        say(
            f"9. reply lengths {args.lengths[0]:,} to {args.lengths[-1]:,} chunks, {transport} "
            f"({args.length_rounds} rounds x 2 clients)"
        )
        slots = Slots(factories, checker)
        try:
            slots.open_round(0)
            for name in slots.names:  # the peer encodes the longest reply once, untimed
                client = slots.get(name)
                if client is not None:
                    timed_call(client, args.lengths[-1], checker, f"warm-up {name}")
            out[transport] = bench_reply_lengths(
                slots, args.lengths, args.length_rounds, args.quick, f"lengths {transport}"
            )
        finally:
            slots.close()
        causes.update(slots.causes)
    return {"lengths": out, "lengths_causes": causes}


def measure_fresh(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Rows 3 and 9 (concurrent streams per transport) and 4 and 9 (memory),
    each in a fresh process."""
    res: dict[str, Any] = {"concurrency": {}}
    children: list[dict[str, Any]] = []
    for transport in ("websocket", "http", "openapi"):
        res["concurrency"][transport] = {}
        for streams in args.concurrency:
            say(f"3/9. {streams} concurrent streams x {args.thread_chunks:,} chunks, {transport} (fresh process)")
            try:
                result = run_child(
                    [
                        "threads",
                        "--url",
                        peer.base_url,
                        "--transport",
                        transport,
                        "--size",
                        str(streams),
                        str(args.thread_chunks),
                        str(args.rounds),
                    ],
                    timeout=300,
                )
            except Exception as exc:
                checker.failed(f"{streams} concurrent streams, {transport}", exc)
                res["concurrency"][transport][streams] = {"error": describe(exc)}
                continue
            children.append(result)
            result["library_threads"] = max(result["snapshot_library_threads"], result["peak_threads"] - 1 - streams)
            result["connections"] = max(result["snapshot_connections"], result["peak_sockets"])
            res["concurrency"][transport][streams] = result
    res["threads"] = res["concurrency"]["websocket"].get(args.threads, {"error": "not measured"})
    say(f"4. memory, {args.streams} paused streams (fresh process)")
    res["memory"] = run_child(
        ["memory", "--url", peer.base_url, "--size", str(args.streams), str(args.stream_chunks)], timeout=120
    )
    say(f"9. memory over HTTP, {args.streams} paused streams (fresh process)")
    res["memory_http"] = run_child(
        ["memory", "--url", peer.base_url, "--transport", "http", "--size", str(args.streams), str(args.stream_chunks)],
        timeout=120,
    )
    for result in children + [res["memory"], res["memory_http"]]:
        checker.checked += result["checked"]
        checker.problems += result["problems"]
    return res


def measure_import(args: argparse.Namespace, peer: Peer, checker: Checker, say: Say) -> dict[str, Any]:
    """Row 5, in fresh interpreters."""
    say(f"5. import time ({args.import_runs} runs x 3 interpreters x 2)")
    return {"import": bench_import(args.import_runs)}


#: The measurements, in the order they run.
STEPS: tuple[Step, ...] = (
    measure_warm,
    measure_cold,
    measure_http,
    measure_openapi,
    measure_openai,
    measure_lengths,
    measure_fresh,
    measure_import,
)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.child:
        return run_child_mode(args)
    faulthandler.dump_traceback_later(900, exit=True)  # never hang forever
    started = time.perf_counter()
    info = report.machine()

    def say(step: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {step}", file=sys.stderr, flush=True)

    checker = Checker()
    res: dict[str, Any] = {}
    with Peer() as peer:
        for step in STEPS:
            res.update(step(args, peer, checker, say))
    info["load_end"] = report.load_average()
    elapsed = time.perf_counter() - started
    rep = report.build_report(res, args)
    table = rep.markdown()
    head = report.head_lines(info, args.quick, args.rounds)
    tail = report.tail_lines(checker.checked, checker.problems, res, elapsed, rep)
    print("\n".join(head) + "\n\n" + table + "\n\n" + "\n".join(tail))
    for problem in checker.problems[:20]:
        print(f"  {problem}")
    if not args.no_write:
        folder = os.path.join(os.path.dirname(os.path.abspath(args.output)), "docs", "img")
        plots = report.write_plots(folder, res, info)
        report.write_markdown(args.output, head, table, tail, plots)
        print(f"wrote {args.output}" + "".join(f", {path}" for path in plots))
    return 1 if checker.problems else 0
