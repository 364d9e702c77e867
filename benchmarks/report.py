"""The report: the table of rows with targets, the machine and versions, BENCHMARKS.md.

The table is built by the functions in :data:`SECTIONS`, in order, each
adding the rows of one measurement from the results. Targets are ratios
measured in this one run; MISS does not change the exit status.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from .clients import AIOHTTP, FLOOR, MYSHELL, RAW, SOCKETIO

@dataclass
class Row:
    measure: str
    value: str
    compared: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@dataclass
class Report:
    rows: List[Row] = field(default_factory=list)

    def add(self, measure: str, value: str, compared: str = "", factor: Optional[float] = None,
            target: str = "", passed: Optional[bool] = None) -> None:
        """One row; ``factor`` is the ratio shown, ``passed`` None means n/a."""
        if not target:
            result = ""
        elif passed is None:
            result = "n/a"
        else:
            result = "PASS" if passed else "MISS"
        shown = "" if factor is None else f"{factor:.2f}x"
        self.rows.append(Row(measure, value, compared, shown, target, result))

    def markdown(self) -> str:
        header = Row("measure", "myshell_sync", "compared with", "ratio", "target", "result")
        rows = [cols_of(row) for row in [header] + self.rows]
        widths = [max(len(cell) for cell in column) for column in zip(*rows)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(rows[0]), rule] + [line(cells) for cells in rows[1:]])


def cols_of(row: Row) -> Tuple[str, str, str, str, str, str]:
    return (row.measure, row.value, row.compared, row.ratio, row.target, row.result)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_rate(value: Optional[float]) -> str:
    return "failed" if value is None else f"{value:,.0f} chunks/s"


def fmt_ms(value: Optional[float]) -> str:
    if value is None:
        return "failed"
    return f"{value * 1e3:.3f} ms" if value < 0.01 else f"{value * 1e3:.2f} ms"


def fmt_mb(value: float) -> str:
    return f"{value / 2 ** 20:.1f} MB"


def fmt_kb(value: float) -> str:
    return f"{value / 1024:.1f} KB"


def at_least(value: Optional[float], goal: float) -> Optional[bool]:
    return None if value is None else value >= goal


def at_most(value: Optional[float], goal: float) -> Optional[bool]:
    return None if value is None else value <= goal


Results = Dict[str, Any]
Section = Callable[["Report", Results, argparse.Namespace], None]


def throughput_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    tp = res["throughput"]
    ms_rate = tp[MYSHELL]["chunks_per_s"]
    rep.add(f"1. stream throughput, {sizes.chunks:,}-chunk reply, warm", fmt_rate(ms_rate),
            f"raw websocket-client {fmt_rate(tp[RAW]['chunks_per_s'])}",
            ratio(ms_rate, tp[RAW]["chunks_per_s"]), ">= 0.8x",
            at_least(ratio(ms_rate, tp[RAW]["chunks_per_s"]), 0.8))
    rep.add("", "", f"aiohttp, gpt4free style {fmt_rate(tp[AIOHTTP]['chunks_per_s'])}",
            ratio(ms_rate, tp[AIOHTTP]["chunks_per_s"]), ">= 1.0x",
            at_least(ratio(ms_rate, tp[AIOHTTP]["chunks_per_s"]), 1.0))
    rep.add("", "", f"python-socketio {fmt_rate(tp[SOCKETIO]['chunks_per_s'])}",
            ratio(ms_rate, tp[SOCKETIO]["chunks_per_s"]), ">= 10x",
            at_least(ratio(ms_rate, tp[SOCKETIO]["chunks_per_s"]), 10.0))
    rep.add("", "", f"peer ceiling (client only counts bytes) {fmt_rate(res['peer_ceiling'])}")


def first_chunk_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    tp = res["throughput"]
    ms_first, raw_first = tp[MYSHELL]["first_chunk_s"], tp[RAW]["first_chunk_s"]
    first_ok = None if ms_first is None or raw_first is None else (
        ms_first <= 2 * raw_first or ms_first < 0.005)
    rep.add("1. time to first chunk (same calls)", fmt_ms(ms_first),
            f"raw websocket-client {fmt_ms(raw_first)}", ratio(ms_first, raw_first),
            "<= 2x or < 5 ms", first_ok)
    rep.add("", "", f"aiohttp {fmt_ms(tp[AIOHTTP]['first_chunk_s'])}; "
            f"python-socketio {fmt_ms(tp[SOCKETIO]['first_chunk_s'])}")


def round_trip_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    rtt = res["round_trip"]
    ms = rtt[MYSHELL]
    rep.add(f"2. warm round trip, 1 chunk (median of {sizes.rtt_calls})", fmt_ms(ms),
            f"raw websocket-client {fmt_ms(rtt[RAW])}", ratio(ms, rtt[RAW]),
            "<= 1.5x", at_most(ratio(ms, rtt[RAW]), 1.5))
    rep.add("", "", f"aiohttp {fmt_ms(rtt[AIOHTTP])}", ratio(ms, rtt[AIOHTTP]))
    rep.add("", "", f"python-socketio {fmt_ms(rtt[SOCKETIO])}", ratio(ms, rtt[SOCKETIO]))
    floor = rtt.get(FLOOR)
    rep.add("", "", f"threaded floor (reader thread + queue) {fmt_ms(floor)}", ratio(ms, floor))
    rep.add("", "", f"(the floor itself is {fmt_ratio(ratio(floor, rtt[RAW]))} the raw loop)")


def cold_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    cold, warm = res["cold"], res["round_trip"][MYSHELL]
    ms = cold[MYSHELL]
    rep.add(f"2. cold call, new client (median of {sizes.cold_calls})", fmt_ms(ms),
            f"its warm round trip {fmt_ms(warm)}", ratio(ms, warm),
            ">= 5x slower", at_least(ratio(ms, warm), 5.0))
    rep.add("", "", f"raw websocket-client {fmt_ms(cold[RAW])}", ratio(ms, cold[RAW]))
    rep.add("", "", f"aiohttp (whole gpt4free call) {fmt_ms(cold[AIOHTTP])}",
            ratio(ms, cold[AIOHTTP]))
    rep.add("", "", f"python-socketio {fmt_ms(cold[SOCKETIO])}", ratio(ms, cold[SOCKETIO]))


def thread_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    th, ms_rate = res["threads"], res["throughput"][MYSHELL]["chunks_per_s"]
    rep.add(f"3. {sizes.threads} threads x {sizes.thread_chunks:,}-chunk replies, one client",
            fmt_rate(th["chunks_per_s"]), f"single stream (row 1) {fmt_rate(ms_rate)}",
            ratio(th["chunks_per_s"], ms_rate), ">= 0.7x",
            at_least(ratio(th["chunks_per_s"], ms_rate), 0.7))
    workers = sizes.threads
    library = max(th["snapshot_library_threads"], th["peak_threads"] - 1 - workers)
    connections = max(th["snapshot_connections"], th["peak_sockets"])
    rep.add("3. library threads (in flight / peak)",
            f"{th['snapshot_library_threads']} / {th['peak_threads'] - 1 - workers}",
            f"live connections {th['snapshot_connections']} / {th['peak_sockets']}", None,
            "<= conns + 2", library <= connections + 2)
    rep.add("3. peak threads / peak RSS (whole process)",
            f"{th['peak_threads']} / {fmt_mb(th['peak_rss'])}",
            f"main + {workers} workers; RSS before the client {fmt_mb(th['rss_before'])}")


def memory_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    mem = res["memory"]
    rep.add("4. idle client, one warm connection (RSS)", fmt_mb(mem["rss_idle"]),
            f"+{fmt_kb(mem['idle_delta'])} over `import myshell_sync` alone")
    rep.add(f"4. per paused stream ({sizes.streams} x {sizes.stream_chunks}-chunk replies)",
            fmt_kb(mem["per_stream_net"]),
            f"RSS delta {fmt_kb(mem['per_stream'])} - text {fmt_kb(mem['text_bytes'])}; "
            f"connections {mem['connections_streams']}", None, "<= 100 KB",
            mem["per_stream_net"] <= 100 * 1024)


def import_rows(rep: Report, res: Results, sizes: argparse.Namespace) -> None:
    imp = res["import"]
    ms_us = imp["myshell_sync"]["importtime_us"]
    base_us = imp["requests + websocket"]["importtime_us"]
    rep.add(f"5. import time (-X importtime, median of {sizes.import_runs})",
            f"{ms_us / 1e3:.1f} ms",
            f"import requests, websocket {base_us / 1e3:.1f} ms", ratio(ms_us, base_us),
            "<= 1.2x", at_most(ratio(ms_us, base_us), 1.2))
    bare = imp["bare interpreter"]["wall_s"]
    ms_wall = imp["myshell_sync"]["wall_s"] - bare
    base_wall = imp["requests + websocket"]["wall_s"] - bare
    rep.add("5. import, wall time over a bare interpreter", f"{ms_wall * 1e3:.1f} ms",
            f"requests + websocket {base_wall * 1e3:.1f} ms (bare {bare * 1e3:.1f} ms)",
            ratio(ms_wall, base_wall))


#: The table's rows, in order: one function per measurement.
SECTIONS: Tuple[Section, ...] = (throughput_rows, first_chunk_rows, round_trip_rows, cold_rows,
                                 thread_rows, memory_rows, import_rows)


def build_report(res: Results, sizes: argparse.Namespace) -> Report:
    rep = Report()
    for section in SECTIONS:
        section(rep, res, sizes)
    return rep


def myshell_sync_source() -> str:
    """Where the measured myshell_sync comes from, with its git commit."""
    import myshell_sync

    where = os.path.dirname(os.path.abspath(myshell_sync.__file__))
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"myshell_sync from {where} (not a git checkout)"
    return f"myshell_sync from {where} at git {commit}" + (
        " with uncommitted changes" if dirty else "")


def machine() -> Dict[str, str]:
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
    for dist in ("websocket-client", "aiohttp", "python-socketio"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "source": myshell_sync_source(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}; {cpu}; {usable} usable CPUs of {os.cpu_count()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": ", ".join(versions),
        "load": load,
    }


NOTES = """\
How to read it (see the docstrings of the benchmarks package for the details):

- Peer: a raw-socket MyShell server in its own process that writes pre-encoded frames in
  `sendall` batches of 512; "peer ceiling" is its delivery rate to a client that only counts
  bytes. Chunk frames look like
  `42/chat,["text_stream",{"reqId":"<uuid4>","data":{"text":"w123 ","index":123,"isFinal":false}}]`.
- Throughput: chunks / seconds from sending the request to holding the whole text, on a socket
  opened before the timing; best of the rounds. Time to first chunk: from the start of the
  call to the first chunk in the caller's hands, same calls, best of the rounds.
- aiohttp (gpt4free style): throughput and warm round trip use one event loop and one open
  `ws_connect` socket and drive each reply with `loop.run_until_complete(gen.__anext__())` per
  chunk (gpt4free's sync wrapper); the cold call is a whole gpt4free call (new event loop,
  `ClientSession`, `ws_connect`, handshake, send, stream, close) without its 5 s captcha sleep.
- python-socketio: its Engine.IO client starts a thread per received message; the consumer
  orders chunks by `data.index` and waits for all of them.
- Cold call: construct the client, connect, handshake, send, whole 1-chunk reply
  (`captcha_delay=0`); closing is not timed except inside the gpt4free call.
- 32 threads: one `Myshell(url, captcha_delay=0, max_connections=32)`, thread i asks
  `samantha`, `gpt-3.5-turbo`, `gpt-4` in turn (a bot's requests never share a connection);
  aggregate = all chunks / (last reply's end - start), best of the timed rounds. A first,
  untimed round opens the connections and pauses every thread on its first chunk: library
  threads = OS threads - main thread - workers, live connections = open sockets, counted then
  (first figure) and as peaks sampled from the parent process every 2 ms during the whole child
  (second figure). The child is a fresh process; peak RSS is its `ru_maxrss`.
- Memory (a fresh process): RSS after a warm connection and one call, then after K streams to
  K distinct bot uids (so they can share one connection) each read their first chunk and paused
  while the client receives the rest; per stream = RSS delta / K minus the UTF-8 size of the
  whole reply text. Figures from before the benchmarks package (git 97a72e3 and earlier) ran
  the fresh processes from the 1,400-line run.py, which they compiled first: their absolute RSS
  figures (rows 3 and 4) are about 3 MB higher; the deltas are unaffected.
- Import: fresh interpreters; `-X importtime` cumulative time of the top-level imports (median),
  and wall time minus a bare interpreter's (median).
"""


def head_lines(info: Dict[str, str], quick: bool, rounds: int) -> List[str]:
    """What was measured where: run size, date, machine, versions, source."""
    size = "--quick" if quick else "full"
    return [
        f"myshell_sync benchmark ({size} run, {rounds} rounds), {info['date']}",
        f"{info['machine']}, {info['python']}; load average at start {info['load']}",
        info["versions"],
        info["source"],
    ]


def tail_lines(checked: int, problems: Sequence[str], res: Results, elapsed: float) -> List[str]:
    """The verdict on the replies, and how long the run took."""
    verdict = (f"replies checked: {checked}, all text correct, no failed calls"
               if not problems else
               f"WRONG RESULTS: {len(problems)} wrong replies or failed calls")
    return [verdict, f"python-socketio chunks seen out of order: {res['socketio_out_of_order']}",
            f"took {elapsed:.1f} s"]


def write_markdown(path: str, head: Sequence[str], table: str, tail: Sequence[str]) -> None:
    """Write BENCHMARKS.md: the head, the table, the tail and :data:`NOTES`."""
    with open(path, "w", encoding="utf-8") as out:
        out.write("# Benchmarks\n\n")
        out.write("Written by `python -m benchmarks` (after "
                  "`pip install -e \".[bench]\"`); ratios are from one run on a "
                  "shared machine.\n\n")
        out.write("\n".join(f"- {line}" for line in head) + "\n\n")
        out.write(table + "\n\n")
        out.write("\n".join(f"- {line}" for line in tail) + "\n\n")
        out.write(NOTES)
