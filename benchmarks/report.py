"""The report: the table of rows with targets, the machine and versions, BENCHMARKS.md.

The table is built by the functions in :data:`SECTIONS`, in order, each
adding the rows of one measurement from the results. Targets are ratios
measured in this one run; MISS does not change the exit status. A row whose
client failed says "failed" and why. The closing note lists every MISS with
its distance to the target and what the profile of that path shows
(:data:`PROFILES`).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from .clients import (
    AIOHTTP,
    FLOOR,
    HTTPX_SSE,
    MYSHELL,
    MYSHELL_HTTP,
    MYSHELL_OPENAPI,
    ONE_SHOT,
    OPENAI_LAYER,
    RAW,
    REQUESTS_JSON,
    REQUESTS_SSE,
    SOCKETIO,
)
from .growth import fmt_us, log_slope
from .measure import per_round, round_ratio

#: The log-log slope of call time against reply length that still counts as a flat cost per chunk.
FLAT_SLOPE = 1.1


@dataclass
class Row:
    measure: str
    value: str
    compared: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@dataclass
class Miss:
    """A target that missed: the row, its figure and the goal."""

    measure: str
    shown: str
    target: str
    key: str


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    misses: list[Miss] = field(default_factory=list)
    _section: str = ""

    def add(
        self,
        measure: str,
        value: str,
        compared: str = "",
        factor: float | None = None,
        target: str = "",
        passed: bool | None = None,
        key: str = "",
    ) -> None:
        """One row; ``factor`` is the ratio shown, ``passed`` None means n/a;
        ``key`` names the :data:`PROFILES` note of a MISS."""
        if measure:
            self._section = measure
        if not target:
            result = ""
        elif passed is None:
            result = "n/a"
        else:
            result = "PASS" if passed else "MISS"
        shown = "" if factor is None else f"{factor:.2f}x"
        if result == "MISS":
            self.misses.append(Miss(self._section, shown or value, target, key))
        self.rows.append(Row(measure, value, compared, shown, target, result))

    def markdown(self) -> str:
        header = Row("measure", "myshell_sync", "compared with", "ratio", "target", "result")
        rows = [cols_of(row) for row in [header] + self.rows]
        widths = [max(len(cell) for cell in column) for column in zip(*rows)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(rows[0]), rule] + [line(cells) for cells in rows[1:]])


def cols_of(row: Row) -> tuple[str, str, str, str, str, str]:
    return (row.measure, row.value, row.compared, row.ratio, row.target, row.result)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def failed(cause: str | None) -> str:
    return f"failed ({cause})" if cause else "failed"


def fmt_rate(value: float | None, cause: str | None = None) -> str:
    return failed(cause) if value is None else f"{value:,.0f} chunks/s"


def fmt_ms(value: float | None, cause: str | None = None) -> str:
    if value is None:
        return failed(cause)
    return f"{value * 1e3:.3f} ms" if value < 0.01 else f"{value * 1e3:.2f} ms"


def fmt_mb(value: float) -> str:
    return f"{value / 2**20:.1f} MB"


def fmt_kb(value: float) -> str:
    return f"{value / 1024:.1f} KB"


def fmt_k(value: float | None) -> str:
    return "failed" if value is None else f"{value / 1e3:,.0f}k"


def at_least(value: float | None, goal: float) -> bool | None:
    return None if value is None else value >= goal


def at_most(value: float | None, goal: float) -> bool | None:
    return None if value is None else value <= goal


Results = dict[str, Any]
Section = Callable[["Report", Results, argparse.Namespace], None]


def throughput_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    tp, causes = res["throughput"], res.get("warm_causes", {})
    ms_rate = tp[MYSHELL]["chunks_per_s"]
    rep.add(
        f"1. stream throughput, {sizes.chunks:,}-chunk reply, warm",
        fmt_rate(ms_rate, causes.get(MYSHELL)),
        f"raw websocket-client {fmt_rate(tp[RAW]['chunks_per_s'], causes.get(RAW))}",
        ratio(ms_rate, tp[RAW]["chunks_per_s"]),
        ">= 0.8x",
        at_least(ratio(ms_rate, tp[RAW]["chunks_per_s"]), 0.8),
        "ws-throughput",
    )
    rep.add(
        "",
        "",
        f"aiohttp, gpt4free style {fmt_rate(tp[AIOHTTP]['chunks_per_s'], causes.get(AIOHTTP))}",
        ratio(ms_rate, tp[AIOHTTP]["chunks_per_s"]),
        ">= 1.0x",
        at_least(ratio(ms_rate, tp[AIOHTTP]["chunks_per_s"]), 1.0),
        "ws-throughput",
    )
    rep.add(
        "",
        "",
        f"python-socketio {fmt_rate(tp[SOCKETIO]['chunks_per_s'], causes.get(SOCKETIO))}",
        ratio(ms_rate, tp[SOCKETIO]["chunks_per_s"]),
        ">= 10x",
        at_least(ratio(ms_rate, tp[SOCKETIO]["chunks_per_s"]), 10.0),
        "ws-throughput",
    )
    rep.add("", "", f"peer ceiling (client only counts bytes) {fmt_rate(res['peer_ceiling'])}")


def first_chunk_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    tp = res["throughput"]
    ms_first, raw_first = tp[MYSHELL]["first_chunk_s"], tp[RAW]["first_chunk_s"]
    first_ok = None if ms_first is None or raw_first is None else (ms_first <= 2 * raw_first or ms_first < 0.005)
    rep.add(
        "1. time to first chunk (same calls)",
        fmt_ms(ms_first),
        f"raw websocket-client {fmt_ms(raw_first)}",
        ratio(ms_first, raw_first),
        "<= 2x or < 5 ms",
        first_ok,
        "ws-first",
    )
    rep.add(
        "",
        "",
        f"aiohttp {fmt_ms(tp[AIOHTTP]['first_chunk_s'])}; python-socketio {fmt_ms(tp[SOCKETIO]['first_chunk_s'])}",
    )


def round_trip_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    rtt, causes = res["round_trip"], res.get("warm_causes", {})
    ms = rtt[MYSHELL]
    rep.add(
        f"2. warm round trip, 1 chunk (median of {sizes.rtt_calls})",
        fmt_ms(ms, causes.get(MYSHELL)),
        f"raw websocket-client {fmt_ms(rtt[RAW], causes.get(RAW))}",
        ratio(ms, rtt[RAW]),
        "<= 1.5x",
        at_most(ratio(ms, rtt[RAW]), 1.5),
        "ws-rtt-raw",
    )
    rep.add("", "", f"aiohttp {fmt_ms(rtt[AIOHTTP], causes.get(AIOHTTP))}", ratio(ms, rtt[AIOHTTP]))
    rep.add("", "", f"python-socketio {fmt_ms(rtt[SOCKETIO], causes.get(SOCKETIO))}", ratio(ms, rtt[SOCKETIO]))
    floor = rtt.get(FLOOR)
    rep.add("", "", f"threaded floor (reader thread + queue) {fmt_ms(floor, causes.get(FLOOR))}", ratio(ms, floor))
    rep.add("", "", f"(the floor itself is {fmt_ratio(ratio(floor, rtt[RAW]))} the raw loop)")
    rounds = rtt["rounds"]
    each = [ratio(a, b) for a, b in zip(rounds[MYSHELL], rounds[FLOOR])]
    rep.add(
        "2. warm round trip / threaded floor, same round",
        fmt_ratio(round_ratio(rounds, MYSHELL, FLOOR)),
        "median of the rounds' ratios: " + ", ".join(fmt_ratio(r) for r in each),
        round_ratio(rounds, MYSHELL, FLOOR),
        "<= 1.1x",
        at_most(round_ratio(rounds, MYSHELL, FLOOR), 1.1),
        "ws-rtt-floor",
    )


def cold_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    cold, warm = res["cold"], res["round_trip"][MYSHELL]
    causes = cold.get("causes", {})
    ms = cold[MYSHELL]
    rep.add(
        f"2. cold call, new client (median of {sizes.cold_calls})",
        fmt_ms(ms, causes.get(MYSHELL)),
        f"its warm round trip {fmt_ms(warm)}",
        ratio(ms, warm),
        ">= 5x slower",
        at_least(ratio(ms, warm), 5.0),
    )
    rep.add(
        "",
        "",
        f"raw websocket-client {fmt_ms(cold[RAW], causes.get(RAW))}",
        ratio(ms, cold[RAW]),
        "<= 2x",
        at_most(ratio(ms, cold[RAW]), 2.0),
        "cold-raw",
    )
    rep.add(
        "",
        "",
        f"aiohttp (whole gpt4free call) {fmt_ms(cold[AIOHTTP], causes.get(AIOHTTP))}",
        ratio(ms, cold[AIOHTTP]),
        "<= 1.5x",
        at_most(ratio(ms, cold[AIOHTTP]), 1.5),
        "cold-aiohttp",
    )
    rep.add("", "", f"python-socketio {fmt_ms(cold[SOCKETIO], causes.get(SOCKETIO))}", ratio(ms, cold[SOCKETIO]))
    one = cold.get(ONE_SHOT)
    rep.add(
        "2. one-shot myshell_sync.generate() (closes inside)",
        fmt_ms(one, causes.get(ONE_SHOT)),
        f"aiohttp (whole gpt4free call, closes inside) {fmt_ms(cold[AIOHTTP])}",
        ratio(one, cold[AIOHTTP]),
        "<= 1.5x",
        at_most(ratio(one, cold[AIOHTTP]), 1.5),
        "cold-one-shot",
    )
    rep.add("", "", f"raw websocket-client cold call {fmt_ms(cold[RAW])}", ratio(one, cold[RAW]))


def thread_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    th, ms_rate = res["threads"], res["throughput"][MYSHELL]["chunks_per_s"]
    if "error" in th:
        rep.add(
            f"3. {sizes.threads} threads x {sizes.thread_chunks:,}-chunk replies, one client",
            failed(th["error"]),
            "",
            None,
            ">= 0.7x",
            None,
        )
        return
    rep.add(
        f"3. {sizes.threads} threads x {sizes.thread_chunks:,}-chunk replies, one client",
        fmt_rate(th["chunks_per_s"]),
        f"single stream (row 1) {fmt_rate(ms_rate)}",
        ratio(th["chunks_per_s"], ms_rate),
        ">= 0.7x",
        at_least(ratio(th["chunks_per_s"], ms_rate), 0.7),
        "ws-threads",
    )
    workers = sizes.threads
    rep.add(
        "3. library threads (in flight / peak)",
        f"{th['snapshot_library_threads']} / {th['peak_threads'] - 1 - workers}",
        f"live connections {th['snapshot_connections']} / {th['peak_sockets']}",
        None,
        "<= conns + 2",
        th["library_threads"] <= th["connections"] + 2,
        "ws-threads",
    )
    rep.add(
        "3. peak threads / peak RSS (whole process)",
        f"{th['peak_threads']} / {fmt_mb(th['peak_rss'])}",
        f"main + {workers} workers; RSS before the client {fmt_mb(th['rss_before'])}",
    )


def memory_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    mem = res["memory"]
    rep.add(
        "4. idle client, one warm connection (RSS)",
        fmt_mb(mem["rss_idle"]),
        f"+{fmt_kb(mem['idle_delta'])} over `import myshell_sync` alone",
    )
    rep.add(
        f"4. per paused stream ({sizes.streams} x {sizes.stream_chunks}-chunk replies)",
        fmt_kb(mem["per_stream_net"]),
        f"RSS delta {fmt_kb(mem['per_stream'])} - text {fmt_kb(mem['text_bytes'])}; "
        f"connections {mem['connections_streams']}",
        None,
        "<= 100 KB",
        mem["per_stream_net"] <= 100 * 1024,
        "memory",
    )


def import_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    imp = res["import"]
    ms_us = imp["myshell_sync"]["importtime_us"]
    base_us = imp["requests + websocket"]["importtime_us"]
    rep.add(
        f"5. import time (-X importtime, median of {sizes.import_runs})",
        f"{ms_us / 1e3:.1f} ms",
        f"import requests, websocket {base_us / 1e3:.1f} ms",
        ratio(ms_us, base_us),
        "<= 1.2x",
        at_most(ratio(ms_us, base_us), 1.2),
        "import",
    )
    bare = imp["bare interpreter"]["wall_s"]
    ms_wall = imp["myshell_sync"]["wall_s"] - bare
    base_wall = imp["requests + websocket"]["wall_s"] - bare
    rep.add(
        "5. import, wall time over a bare interpreter",
        f"{ms_wall * 1e3:.1f} ms",
        f"requests + websocket {base_wall * 1e3:.1f} ms (bare {bare * 1e3:.1f} ms)",
        ratio(ms_wall, base_wall),
    )


def http_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    http = res["http"]
    stream, rtt, causes = http["stream"], http["rtt"], http["causes"]
    rates = per_round(stream["chunks_per_s"])
    firsts = per_round(stream["first_s"])
    rep.add(
        f"6. HTTP stream throughput, {sizes.chunks:,}-chunk reply, warm ({sizes.stream_rounds} rounds)",
        fmt_rate(rates[MYSHELL_HTTP], causes.get(MYSHELL_HTTP)),
        f"requests + iter_lines {fmt_rate(rates[REQUESTS_SSE], causes.get(REQUESTS_SSE))}",
        round_ratio(stream["chunks_per_s"], MYSHELL_HTTP, REQUESTS_SSE),
        ">= 1.0x",
        at_least(round_ratio(stream["chunks_per_s"], MYSHELL_HTTP, REQUESTS_SSE), 1.0),
        "http-throughput",
    )
    rep.add(
        "",
        "",
        f"httpx + httpx-sse {fmt_rate(rates[HTTPX_SSE], causes.get(HTTPX_SSE))}",
        round_ratio(stream["chunks_per_s"], MYSHELL_HTTP, HTTPX_SSE),
        ">= 1.0x",
        at_least(round_ratio(stream["chunks_per_s"], MYSHELL_HTTP, HTTPX_SSE), 1.0),
        "http-throughput",
    )
    rep.add(
        "6. HTTP time to first chunk (same calls)",
        fmt_ms(firsts[MYSHELL_HTTP]),
        f"requests {fmt_ms(firsts[REQUESTS_SSE])}; httpx {fmt_ms(firsts[HTTPX_SSE])}",
        round_ratio(stream["first_s"], MYSHELL_HTTP, REQUESTS_SSE),
    )
    seconds = per_round(rtt["seconds"])
    rep.add(
        f"6. HTTP warm round trip, 1 chunk (median of {sizes.rtt_calls}, taking turns)",
        fmt_ms(seconds[MYSHELL_HTTP], causes.get(MYSHELL_HTTP)),
        f"requests + iter_lines, kept-alive session {fmt_ms(seconds[REQUESTS_SSE], causes.get(REQUESTS_SSE))}",
        round_ratio(rtt["seconds"], MYSHELL_HTTP, REQUESTS_SSE),
        "<= 1.3x",
        at_most(round_ratio(rtt["seconds"], MYSHELL_HTTP, REQUESTS_SSE), 1.3),
        "http-rtt",
    )
    rep.add(
        "",
        "",
        f"httpx + httpx-sse {fmt_ms(seconds[HTTPX_SSE], causes.get(HTTPX_SSE))}",
        round_ratio(rtt["seconds"], MYSHELL_HTTP, HTTPX_SSE),
    )
    conns = http["connections"]

    def shown(count: int | None) -> str:
        return "failed" if count is None else str(count)

    rep.add(
        f"6. TCP connections for {sizes.connection_calls} sequential calls (at the peer)",
        shown(conns[MYSHELL_HTTP]),
        f"requests.Session {shown(conns[REQUESTS_SSE])}; httpx.Client {shown(conns[HTTPX_SSE])}",
        None,
        "== 1",
        None if conns[MYSHELL_HTTP] is None else conns[MYSHELL_HTTP] == 1,
        "http-connections",
    )


def openapi_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    api = res["openapi"]
    rtt, causes = api["rtt"], api["causes"]
    seconds = per_round(rtt["seconds"])
    rep.add(
        f"7. key-based API warm call (median of {sizes.rtt_calls}, taking turns)",
        fmt_ms(seconds[MYSHELL_OPENAPI], causes.get(MYSHELL_OPENAPI)),
        f"requests.Session().post + json {fmt_ms(seconds[REQUESTS_JSON], causes.get(REQUESTS_JSON))}",
        round_ratio(rtt["seconds"], MYSHELL_OPENAPI, REQUESTS_JSON),
        "<= 1.2x",
        at_most(round_ratio(rtt["seconds"], MYSHELL_OPENAPI, REQUESTS_JSON), 1.2),
        "openapi-rtt",
    )


def openai_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    layer = res["openai"]
    stream, causes = layer["stream"], layer["causes"]
    rates = per_round(stream["chunks_per_s"])
    rep.add(
        f"8. OpenAI layer in process, {sizes.chunks:,}-chunk stream ({sizes.stream_rounds} rounds)",
        fmt_rate(rates[OPENAI_LAYER], causes.get(OPENAI_LAYER)),
        f"generate() on the same (WebSocket) client {fmt_rate(rates[MYSHELL], causes.get(MYSHELL))}",
        round_ratio(stream["chunks_per_s"], OPENAI_LAYER, MYSHELL),
        ">= 0.8x",
        at_least(round_ratio(stream["chunks_per_s"], OPENAI_LAYER, MYSHELL), 0.8),
        "openai-layer",
    )
    served = layer["serve"]
    if "error" in served:
        rep.add("8. through myshell-sync serve", failed(served["error"]))
        return
    first, total, rate = served["first"], served["total"], served["chunks_per_s"]
    rep.add(
        f"8. through serve, time to first chunk ({sizes.serve_first_chunks}-chunk reply, "
        f"median of {sizes.serve_calls})",
        fmt_ms(first["serve"]),
        f"generate() directly {fmt_ms(first['generate()'])}",
        ratio(first["serve"], first["generate()"]),
    )
    rep.add(
        "8. through serve, whole call (same calls)",
        fmt_ms(total["serve"]),
        f"generate() directly {fmt_ms(total['generate()'])}",
        ratio(total["serve"], total["generate()"]),
    )
    rep.add(
        f"8. through serve, {sizes.serve_long_chunks:,}-chunk stream (best of {sizes.rounds})",
        fmt_rate(rate["serve"]),
        f"generate() directly {fmt_rate(rate['generate()'])}",
        ratio(rate["serve"], rate["generate()"]),
    )
    many = served["concurrent"]
    rep.add(
        f"8. {many['streams']} concurrent streams through serve",
        f"{many['right']} right, {many['failed']} failed",
        f"first chunk p50 {fmt_ms(many['first_p50'])}, p99 {fmt_ms(many['first_p99'])}; "
        f"all done in {fmt_ms(many['wall'])} (serve's client: 8 connections)",
        None,
        "all right",
        many["failed"] == 0 and many["right"] == many["streams"],
        "serve-concurrent",
    )


#: The clients of the reply-length rows that have a target (myshell_sync's).
OURS = frozenset(("myshell_sync", MYSHELL_HTTP, MYSHELL_OPENAPI))


def length_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    lengths, causes = res["lengths"], res.get("lengths_causes", {})
    first = True
    for transport, clients in lengths.items():
        for name, curve in clients.items():
            slope = log_slope(curve)
            values = ", ".join(f"{n:,}: {fmt_us(cost)}" for n, cost in curve.items())
            label = (
                (
                    f"9. cost per chunk by reply length (log-log slope of call time, "
                    f"{min(n for n in curve if n >= 1000):,} to {max(curve):,} chunks)"
                )
                if first
                else ""
            )
            first = False
            ours = name in OURS
            rep.add(
                label,
                f"{transport}: {name}" if not ours else f"{transport}: slope {fmt_slope(slope)}",
                (values if ours else f"slope {fmt_slope(slope)}; {values}")
                + (f"; {failed(causes[name])}" if name in causes else ""),
                None,
                f"slope <= {FLAT_SLOPE}" if ours else "",
                at_most(slope, FLAT_SLOPE) if ours else None,
                "lengths",
            )


def fmt_slope(slope: float | None) -> str:
    return "n/a" if slope is None else f"{slope:.2f}"


def concurrency_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    levels = " / ".join(str(k) for k in sizes.concurrency)
    first = True
    for transport, by_streams in res["concurrency"].items():
        figures = [by_streams.get(k, {}) for k in sizes.concurrency]
        rates = " / ".join(fmt_k(f.get("chunks_per_s")) if "error" not in f else failed(f["error"]) for f in figures)
        threads = " / ".join(str(f.get("library_threads", "-")) for f in figures)
        conns = " / ".join(str(f.get("connections", "-")) for f in figures)
        label = (
            (f"9. {levels} concurrent streams x {sizes.thread_chunks:,} chunks, one client: chunks/s") if first else ""
        )
        first = False
        rep.add(label, f"{transport}: {rates}", f"library threads {threads}; connections {conns} (peaks)")


def memory_http_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    mem = res["memory_http"]
    rep.add(
        f"9. per paused stream over HTTP ({sizes.streams} x {sizes.stream_chunks}-chunk replies)",
        fmt_kb(mem["per_stream_net"]),
        f"RSS delta {fmt_kb(mem['per_stream'])} - text {fmt_kb(mem['text_bytes'])}; "
        f"connections {mem['connections_streams']}, threads {mem.get('threads_streams', '?')} "
        f"(WebSocket, row 4: {fmt_kb(res['memory']['per_stream_net'])})",
        None,
        "<= 100 KB",
        mem["per_stream_net"] <= 100 * 1024,
        "memory-http",
    )


#: The table's rows, in order: one function per measurement.
SECTIONS: tuple[Section, ...] = (
    throughput_rows,
    first_chunk_rows,
    round_trip_rows,
    cold_rows,
    thread_rows,
    memory_rows,
    import_rows,
    http_rows,
    openapi_rows,
    openai_rows,
    length_rows,
    concurrency_rows,
    memory_http_rows,
)


def build_report(res: Results, sizes: argparse.Namespace) -> Report:
    rep = Report()
    for section in SECTIONS:
        section(rep, res, sizes)
    return rep


#: What the profile of each path shows, said when its target misses.
PROFILES: dict[str, str] = {
    "ws-rtt-raw": (
        "the raw loop has no thread: our call hands each reply from the reader thread to the "
        "caller (a lock release and a wake-up, as the threaded floor does; the floor itself is "
        "well over 1.5x the raw loop), and the design keeps that reader (pings, many requests "
        "per socket, close() from any thread). Against the floor, the design's own limit, the "
        "same-round ratio is the row below."
    ),
    "ws-rtt-floor": (
        "cProfile of 2,000 warm calls: the socket send (which wakes the peer: 41% of the call) "
        "and the wait for the reader's hand-over (21%) are the floor's too; what is ours "
        "(request, pool, signing, frame, reply) is the rest, about 20 us a call unprofiled."
    ),
    "cold-raw": (
        "timed by parts at load 1-2: the client 45 us, the reader thread's start 115 us (the "
        "caller waits for the new thread; it then watches the connect and starts the janitor), "
        "websocket-client's connect and upgrade 550 us as in the raw call, the Socket.IO "
        "handshake 170 us, the send 130 us; on a loaded machine the thread start waits for a CPU."
    ),
    "cold-aiohttp": (
        "as for the raw call (one thread start, the client), and websocket-client itself: it reads "
        "the 131-byte upgrade answer one byte per recv (131 system calls), which aiohttp reads at once."
    ),
    "cold-one-shot": (
        "the one-shot call also closes its client inside the call: the goodbye frames (one write) "
        "and the reader's join once the peer's close frame came back, about 250 us; the rest is "
        "the cold call's."
    ),
    "http-rtt": (
        "the call hands the request to a reply thread and the reply back (two wake-ups the "
        "plain loop does not have); on a loaded machine each wake-up waits for a CPU."
    ),
    "openapi-rtt": "as for the HTTP round trip: the two hand-overs between threads.",
    "http-throughput": (
        "cProfile of the reply thread: SSE decoding (one regular expression per event), "
        "the JSON scanner on each event, and the batches' hand-over."
    ),
    "ws-threads": (
        "the child's CPU time per chunk (getrusage over four timed rounds) is about 3.3 us for "
        "one stream and 3.9 us for 32: the aggregate is bound by one core (the interpreter lock), "
        "and row 1's single stream (best of 3 calls, in process) moves a lot on a loaded machine."
    ),
    "openai-layer": (
        "per chunk the layer adds three objects (chunk, choice, delta: about 0.4 us, slotted) "
        "and one generator step over generate(), about 0.6 us a chunk in all (a mailbox "
        "filled in advance, no network); generate() itself costs 3 to 5 us a chunk here."
    ),
}


def miss_lines(rep: Report) -> list[str]:
    """The closing note: every target missed, by how much, and what the profile shows."""
    lines = []
    for miss in rep.misses:
        note = PROFILES.get(miss.key, "")
        lines.append(f"MISS: {miss.measure}: {miss.shown} against {miss.target}" + (f"; {note}" if note else ""))
    return lines


def myshell_sync_source() -> str:
    """Where the measured myshell_sync comes from, with its git commit."""
    import myshell_sync

    where = os.path.dirname(os.path.abspath(myshell_sync.__file__))
    try:
        commit = subprocess.run(
            ["git", "-C", where, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", where, "status", "--porcelain", "--", "."], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"myshell_sync from {where} (not a git checkout)"
    return f"myshell_sync from {where} at git {commit}" + (" with uncommitted changes" if dirty else "")


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


#: The distributions whose versions the head line names.
DISTRIBUTIONS = (
    "websocket-client",
    "requests",
    "urllib3",
    "aiohttp",
    "python-socketio",
    "httpx",
    "httpx-sse",
    "openai",
    "waitress",
    "matplotlib",
)


def machine() -> dict[str, str]:
    """The machine, interpreter, library versions, source and load of this run."""
    from importlib import metadata

    import myshell_sync

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = [f"myshell_sync {myshell_sync.__version__}"]  # the code measured, not a dist
    for dist in DISTRIBUTIONS:
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    return {
        "source": myshell_sync_source(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}; {cpu}; {usable} usable CPUs of {os.cpu_count()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": ", ".join(versions),
        "load": load_average(),
    }


NOTES = """\
How to read it (see the docstrings of the benchmarks package for the details):

- Peer: a raw-socket MyShell server in its own process, one port for the three routes. WebSocket:
  pre-encoded frames in `sendall` batches of 512, and an Engine.IO ping every 25 s as a real
  server sends; "peer ceiling" is its delivery rate to a client that only counts bytes. Chunk
  frames look like
  `42/chat,["text_stream",{"reqId":"<uuid4>","data":{"text":"w123 ","index":123,"isFinal":false}}]`.
  HTTP: `POST /v1/bot/chat/send_message` answered with a chunked, kept-alive SSE body (one HTTP
  chunk per 512 pre-encoded `event: MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_TEXT` /
  `data: {"content":"w123 "}` events, then `…_TEXT_STREAM_PUSH_FINISHED`,
  `…_USER_SENT_MESSAGE_REPLIED`, `…_USER_CONSUMED_ENERGY` and the end of the body); the
  key-based API: `POST /public/v1/widget/run` answered with the whole text as
  `{"success": true, "result": "<JSON string>"}`. It counts the TCP connections it accepts.
- Rows 1 to 5 are measured as before (same peer, same method): the best of the rounds, the
  clients taking turns (rotated) in each round; a latency is the median of a round's calls.
  Rows 6 to 9 and the same-round rows keep every round: the figure is the median of the rounds'
  medians, and the ratio the median of the same-round ratios (the clients take turns call by
  call), so a load that comes and goes hits every client alike.
- Throughput: chunks / seconds from sending the request to holding the whole text, on a socket
  opened before the timing. Time to first chunk: from the start of the call to the first chunk
  in the caller's hands, same calls.
- aiohttp (gpt4free style): throughput and warm round trip use one event loop and one open
  `ws_connect` socket and drive each reply with `loop.run_until_complete(gen.__anext__())` per
  chunk (gpt4free's sync wrapper); the cold call is a whole gpt4free call (new event loop,
  `ClientSession`, `ws_connect`, handshake, send, stream, close) without its 5 s captcha sleep.
- python-socketio: its Engine.IO client starts a thread per received message; the consumer
  orders chunks by `data.index` and waits for all of them. It is connected anew for every round
  (a 30 s connect wait), and any client whose call fails is reopened for the next round; a
  failed row names its first cause.
- Cold call: construct the client, connect, handshake, send, whole 1-chunk reply
  (`captcha_delay=0`); closing is not timed except inside the gpt4free call and the one-shot
  `myshell_sync.generate()` (the seed's calling style, as `Myshell.generate(model=...,
  messages=...)` on the class), which closes its client when the reply ends.
- HTTP clients: `requests.Session().post(..., stream=True)` with `iter_lines()` (an `event:` line
  names the event, a `…_TEXT` event's `data:` line is `json.loads`-ed), and `httpx.Client()` with
  `httpx_sse.connect_sse(...).iter_sse()`; both read to the end of the body, so their session
  keeps the connection. Key-based API: `requests.Session().post(..., json=...)`, then
  `json.loads(response.json()["result"])`.
- OpenAI layer: `OpenAI(client).chat.completions.create(stream=True)` on a warm WebSocket client,
  reading `chunk.choices[0].delta.content`, against `generate()` on its own warm client. Through
  serve: `myshell-sync serve` (its own process, WebSocket transport, the CLI's 8 connections)
  streamed with the official `openai` SDK, taking turns with `generate()` called directly; the
  concurrent streams all start together (a barrier), every reply checked.
- Reply lengths (row 9): the median call time of each length / its chunks; the key-based API
  sends the same text whole. The slope is the least-squares slope of log(call time) against
  log(chunks) from 1,000 chunks up: 1.00 is a flat cost per chunk, a cost growing with the reply
  (re-joining, a quadratic buffer) pushes it towards 2.
- Concurrent streams (rows 3 and 9): one client per fresh process with max_connections equal to
  the streams; on the WebSocket thread i asks `samantha`, `gpt-3.5-turbo`, `gpt-4` in turn (a bot's
  requests never share a connection), over HTTP every thread asks the same bot. Aggregate = all
  chunks / (last reply's end - start), best of the timed rounds. A first, untimed round opens the
  connections and pauses every thread on its first chunk: library threads = OS threads - main
  thread - workers, connections = open sockets, counted then and as peaks sampled from the parent
  process every 2 ms during the whole child (the larger is shown). Peak RSS is the child's
  `ru_maxrss`.
- Memory (a fresh process): RSS after a warm connection and one call, then after K streams each
  read their first chunk and paused while the client receives the rest (WebSocket: K distinct bot
  uids on one connection; HTTP: K connections and reply threads); per stream = RSS delta / K minus
  the UTF-8 size of the whole reply text. Figures from before the benchmarks package (git 97a72e3
  and earlier) ran the fresh processes from the 1,400-line run.py, which they compiled first:
  their absolute RSS figures (rows 3 and 4) are about 3 MB higher; the deltas are unaffected.
- Import: fresh interpreters; `-X importtime` cumulative time of the top-level imports (median),
  and wall time minus a bare interpreter's (median).
- Variance: on a machine other jobs load, the figures that wait for a thread to get a CPU move
  most between runs: the cold call (one thread start), the round trips (two wake-ups per call
  over HTTP, one on the WebSocket) and the time to first chunk of a long reply. Compare the
  load averages in the head line; a MISS there says by how much in the closing note.
"""


def head_lines(info: dict[str, str], quick: bool, rounds: int) -> list[str]:
    """What was measured where: run size, date, machine, versions, source."""
    size = "--quick" if quick else "full"
    load = f"load average at start {info['load']}"
    if info.get("load_end"):
        load += f", at the end {info['load_end']}"
    return [
        f"myshell_sync benchmark ({size} run, {rounds} rounds), {info['date']}",
        f"{info['machine']}, {info['python']}; {load}",
        info["versions"],
        info["source"],
    ]


def tail_lines(
    checked: int, problems: Sequence[str], res: Results, elapsed: float, rep: Report | None = None
) -> list[str]:
    """The verdict on the replies, the misses, and how long the run took."""
    verdict = (
        f"replies checked: {checked}, all text correct, no failed calls"
        if not problems
        else f"WRONG RESULTS: {len(problems)} wrong replies or failed calls"
    )
    lines = [
        verdict,
        f"python-socketio chunks seen out of order: {res['socketio_out_of_order']}",
        f"took {elapsed:.1f} s",
    ]
    if rep is not None:
        misses = miss_lines(rep)
        lines.append(
            f"targets: {sum(r.result == 'PASS' for r in rep.rows)} PASS, {len(misses)} MISS"
            + (", each below with what its profile shows" if misses else "")
        )
        lines += misses
    return lines


def write_plots(folder: str, res: Results, info: dict[str, str]) -> list[str]:
    """The growth plots (see :mod:`benchmarks.plots`)."""
    from .plots import write_plots as draw

    lengths = res["lengths"]
    concurrency = {
        transport: {k: v for k, v in by_streams.items() if "error" not in v}
        for transport, by_streams in res["concurrency"].items()
    }
    return draw(folder, lengths, concurrency, f"{info['date']}, {info['source'].split(' at ')[-1]}")


def write_markdown(path: str, head: Sequence[str], table: str, tail: Sequence[str], plots: Sequence[str] = ()) -> None:
    """Write BENCHMARKS.md: the head, the table, the tail, the plots and :data:`NOTES`.

    docs/benchmarks.md includes its parts between the ``--8<--`` markers and
    shows the plots itself (a link here is relative to this file)."""
    from .plots import PLOTS

    here = os.path.dirname(os.path.abspath(path))
    with open(path, "w", encoding="utf-8") as out:
        out.write("# Benchmarks\n\n")
        out.write("<!-- --8<-- [start:report] -->\n")
        out.write(
            "Written by `python -m benchmarks` (after "
            '`pip install -e ".[bench]"`); ratios are from one run on a '
            "shared machine.\n\n"
        )
        out.write("\n".join(f"- {line}" for line in head) + "\n\n")
        out.write(table + "\n\n")
        out.write("\n".join(f"- {line}" for line in tail) + "\n")
        out.write("<!-- --8<-- [end:report] -->\n\n")
        out.write("## How cost grows\n\n")
        written = {os.path.basename(p) for p in plots}
        for name, alt in PLOTS:
            if name in written:
                link = os.path.relpath(os.path.join(here, "docs", "img", name), here).replace(os.sep, "/")
                out.write(f"![{alt}]({link})\n\n")
        out.write("<!-- --8<-- [start:notes] -->\n")
        out.write(NOTES)
        out.write("<!-- --8<-- [end:notes] -->\n")
