"""The timing loops, and the process figures (RSS, threads, sockets) read from /proc.

Every figure is the best of ``rounds`` rounds, the clients interleaved (and
rotated) in each round; a latency is the median of its calls in a round.
Every reply's text is compared with the expected text by a :class:`Checker`.
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import threading
import time
import uuid
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from .clients import ColdStarter, RawBench
from .peer import Peer, reply_bytes
from .protocol import expected_text, text_chat_frame


class Checker:
    """Checks every reply's text and records failed calls (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = 0
        self.problems: List[str] = []

    def check(self, what: str, text: str, n: int) -> bool:
        expected = expected_text(n)
        with self.lock:
            self.checked += 1
            if text == expected:
                return True
            at = next((i for i, (a, b) in enumerate(zip(text, expected)) if a != b),
                      min(len(text), len(expected)))
            self.problems.append(
                f"{what}: WRONG TEXT ({len(text)} chars, expected {len(expected)}; "
                f"first difference at {at}: {text[at:at + 20]!r} vs {expected[at:at + 20]!r})")
        return False

    def failed(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.problems.append(f"{what}: FAILED {exc.__class__.__name__}: {exc}")


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss(limit: float = 5.0) -> int:
    """RSS once it has stopped changing for 0.2 s (or after ``limit`` s)."""
    gc.collect()
    deadline = time.monotonic() + limit
    last, same = rss_bytes(), 0
    while same < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = rss_bytes()
        same = same + 1 if now == last else 0
        last = now
    return last


def count_threads_and_sockets(pid: Any) -> Tuple[int, int]:
    """Threads and open sockets of process ``pid`` (or ``"self"``); -1, -1 if unknown."""
    try:
        threads = len(os.listdir(f"/proc/{pid}/task"))
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return -1, -1
    sockets = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return threads, sockets


def os_thread_count() -> int:
    return count_threads_and_sockets("self")[0]


def socket_count() -> int:
    """Open sockets of this process (its live connections)."""
    return count_threads_and_sockets("self")[1]


# --------------------------------------------------------------------------
# Scenarios 1 and 2 (warm and cold calls), in this process
# --------------------------------------------------------------------------

def timed_call(client: Any, n: int, checker: Checker, what: str) -> Optional[Tuple[float, float]]:
    """One call: (seconds, seconds to the first chunk), None if it failed."""
    try:
        started = time.perf_counter()
        text, first = client.call(n)
        ended = time.perf_counter()
    except Exception as exc:
        checker.failed(what, exc)
        return None
    if not checker.check(what, text, n):
        return None
    return ended - started, first - started


def rotated(items: Sequence[Any], r: int) -> List[Any]:
    r %= len(items)
    return list(items[r:]) + list(items[:r])


def bench_throughput(clients: Dict[str, Any], n: int, rounds: int,
                     checker: Checker) -> Dict[str, Dict[str, Optional[float]]]:
    """Best chunks/s and best time to first chunk of an ``n``-chunk reply."""
    rates: Dict[str, List[float]] = {name: [] for name in clients}
    firsts: Dict[str, List[float]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in rotated(list(clients), r):
            timing = timed_call(clients[name], n, checker, f"throughput {name} round {r + 1}")
            if timing is not None:
                rates[name].append(n / timing[0])
                firsts[name].append(timing[1])
    return {name: {"chunks_per_s": max(rates[name], default=None),
                   "first_chunk_s": min(firsts[name], default=None)} for name in clients}


def bench_round_trip(clients: Dict[str, Any], calls: int, rounds: int,
                     checker: Checker) -> Dict[str, Optional[float]]:
    """Best (over rounds) median seconds of a 1-chunk call on an open socket."""
    medians: Dict[str, List[float]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in rotated(list(clients), r):
            samples = []
            for i in range(calls):
                timing = timed_call(clients[name], 1, checker, f"round trip {name} #{i}")
                if timing is not None:
                    samples.append(timing[0])
            if samples:
                medians[name].append(statistics.median(samples))
    return {name: min(medians[name], default=None) for name in clients}

def bench_cold(starters: Mapping[str, ColdStarter], peer: Peer, calls: int, rounds: int,
               checker: Checker) -> Dict[str, Optional[float]]:
    """Best (over rounds) median seconds of a 1-chunk call on a new client:
    construct, connect, handshake, send, whole reply. Closing is not timed
    (gpt4free's call closes its session inside the call, so it is there)."""
    medians: Dict[str, List[float]] = {name: [] for name in starters}
    for r in range(rounds):
        for name in rotated(list(starters), r):
            samples = []
            for i in range(calls):
                what = f"cold {name} #{i}"
                close: Callable[[], None] = lambda: None
                try:
                    started = time.perf_counter()
                    call, close = starters[name](peer)
                    text, _ = call()
                    elapsed = time.perf_counter() - started
                except Exception as exc:
                    checker.failed(what, exc)
                    continue
                finally:
                    try:
                        close()
                    except Exception as exc:
                        checker.failed(what + " close()", exc)
                if checker.check(what, text, 1):
                    samples.append(elapsed)
            if samples:
                medians[name].append(statistics.median(samples))
    return {name: min(medians[name], default=None) for name in starters}


def bench_peer_ceiling(peer: Peer, n: int, rounds: int) -> Optional[float]:
    """Chunks/s at which the peer delivers an ``n``-chunk reply to a client
    that only counts bytes (no WebSocket or JSON decoding)."""
    client = RawBench(peer.ws_url)
    sock = client.ws.sock
    assert sock is not None
    buf = bytearray(1 << 20)
    best = None
    try:
        for _ in range(rounds):
            req_id = str(uuid.uuid4())
            total = reply_bytes(n, req_id.encode())
            frame = text_chat_frame(req_id, n)
            started = time.perf_counter()
            client.ws.send(frame)
            got = 0
            while got < total:
                received = sock.recv_into(buf)
                if not received:
                    return None
                got += received
            rate = n / (time.perf_counter() - started)
            best = rate if best is None else max(best, rate)
    finally:
        client.close()
    return best

