"""The timing loops, and the process figures (RSS, threads, sockets) read from /proc.

The WebSocket rows (1 and 2, as before) are the best of ``rounds`` rounds,
the clients taking turns (rotated) in each round; a latency is the median of
its calls in a round. The newer rows keep every round's figure
(:func:`per_round`): the table shows their median, and ratios are medians of
the same-round ratios, which a load that comes and goes moves less. Every
reply's text is compared with the expected text by a :class:`Checker`.

The clients of a measurement live in :class:`Slots`: one that cannot be
opened, or whose call fails, is reopened for the next round, and the first
cause is kept for the table (a failed row says why).
"""

from __future__ import annotations

import gc
import os
import resource
import statistics
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from .clients import ColdStarter, RawBench
from .peer import Peer, reply_bytes
from .protocol import expected_text, text_chat_frame

Factory = Callable[[], Any]


class Checker:
    """Checks every reply's text and records failed calls (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = 0
        self.problems: list[str] = []

    def check(self, what: str, text: str, n: int) -> bool:
        expected = expected_text(n)
        with self.lock:
            self.checked += 1
            if text == expected:
                return True
            at = next((i for i, (a, b) in enumerate(zip(text, expected)) if a != b), min(len(text), len(expected)))
            self.problems.append(
                f"{what}: WRONG TEXT ({len(text)} chars, expected {len(expected)}; "
                f"first difference at {at}: {text[at : at + 20]!r} vs {expected[at : at + 20]!r})"
            )
        return False

    def failed(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.problems.append(f"{what}: FAILED {exc.__class__.__name__}: {exc}")


def _nothing() -> None:
    """What a cold call closes when it failed before it had anything open."""


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


def count_threads_and_sockets(pid: Any) -> tuple[int, int]:
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


def describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{exc.__class__.__name__}: {text[:70]}" if text else exc.__class__.__name__


class Slots:
    """The clients of one measurement, by name, each made by its factory.

    A client that cannot be opened, or whose call raised, is closed and
    opened again at the start of the next round; the names in
    ``reopen_each_round`` are opened anew for every round. ``causes`` keeps
    the first failure of each name, for the table.
    """

    def __init__(
        self, factories: Mapping[str, Factory], checker: Checker, reopen_each_round: Sequence[str] = ()
    ) -> None:
        self.factories = dict(factories)
        self.checker = checker
        self.reopen = frozenset(reopen_each_round)
        self.clients: dict[str, Any] = {}
        self.causes: dict[str, str] = {}

    @property
    def names(self) -> list[str]:
        return list(self.factories)

    def add(self, factories: Mapping[str, Factory]) -> None:
        self.factories.update(factories)

    def open_round(self, r: int) -> None:
        """Open what is missing (and what is reopened each round)."""
        for name in self.names:
            if name in self.clients and (r == 0 or name not in self.reopen):
                continue
            self._drop(name)
            try:
                self.clients[name] = self.factories[name]()
            except Exception as exc:
                self.fail(name, f"open {name} (round {r + 1})", exc)

    def get(self, name: str) -> Any | None:
        return self.clients.get(name)

    def fail(self, name: str, what: str, exc: BaseException) -> None:
        self.checker.failed(what, exc)
        self.causes.setdefault(name, describe(exc))
        self._drop(name)

    def _drop(self, name: str) -> None:
        client = self.clients.pop(name, None)
        if client is not None:
            try:
                client.close()
            except Exception:
                pass

    def close(self) -> None:
        for name in list(self.clients):
            self._drop(name)


def timed_call(client: Any, n: int, checker: Checker, what: str) -> tuple[float, float] | None:
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


def slot_call(slots: Slots, name: str, n: int, what: str) -> tuple[float, float] | None:
    """:func:`timed_call` on the client in ``slots`` (None if it has none);
    a call that raised drops the client until the next round."""
    client = slots.get(name)
    if client is None:
        return None
    try:
        started = time.perf_counter()
        text, first = client.call(n)
        ended = time.perf_counter()
    except Exception as exc:
        slots.fail(name, what, exc)
        return None
    if not slots.checker.check(what, text, n):
        return None
    return ended - started, first - started


def per_round(values: Mapping[str, Sequence[float | None]]) -> dict[str, float | None]:
    """The median of each name's per-round figures (None if it has none)."""
    out: dict[str, float | None] = {}
    for name, figures in values.items():
        known = [v for v in figures if v is not None]
        out[name] = statistics.median(known) if known else None
    return out


def round_ratio(values: Mapping[str, Sequence[float | None]], a: str, b: str, invert: bool = False) -> float | None:
    """The median over rounds of ``a``'s figure / ``b``'s in the same round
    (``b``'s / ``a``'s with ``invert``: a rate against a rate)."""
    ratios = [
        (y / x if invert else x / y)
        for x, y in zip(values.get(a, ()), values.get(b, ()))
        if x is not None and y is not None and x > 0 and y > 0
    ]
    return statistics.median(ratios) if ratios else None


def bench_rounds(
    slots: Slots, n: int, calls: int, rounds: int, label: str, interleave: bool = True
) -> dict[str, dict[str, list[float | None]]]:
    """Per round and client: the median call time, the median time to first
    chunk and the chunks/s of the median call, over ``calls`` calls of ``n``
    chunks. ``interleave``: the clients take turns call by call (the order
    rotated each time), so a load that comes and goes hits them alike;
    otherwise each makes its calls in a row (rotated by round)."""
    names = slots.names
    out: dict[str, dict[str, list[float | None]]] = {
        key: {name: [] for name in names} for key in ("seconds", "first_s", "chunks_per_s")
    }
    for r in range(rounds):
        slots.open_round(r)
        samples: dict[str, list[tuple[float, float]]] = {name: [] for name in names}
        if interleave:
            order = [(i, name) for i in range(calls) for name in rotated(names, r + i)]
        else:
            order = [(i, name) for name in rotated(names, r) for i in range(calls)]
        for i, name in order:
            timing = slot_call(slots, name, n, f"{label} {name} round {r + 1} #{i}")
            if timing is not None:
                samples[name].append(timing)
        for name in names:
            if samples[name]:
                seconds = statistics.median(s for s, _ in samples[name])
                out["seconds"][name].append(seconds)
                out["first_s"][name].append(statistics.median(f for _, f in samples[name]))
                out["chunks_per_s"][name].append(n / seconds)
            else:
                for key in out:
                    out[key][name].append(None)
    return out


def rotated(items: Sequence[Any], r: int) -> list[Any]:
    r %= len(items)
    return list(items[r:]) + list(items[:r])


def bench_throughput(slots: Slots, n: int, rounds: int) -> dict[str, dict[str, float | None]]:
    """Best chunks/s and best time to first chunk of an ``n``-chunk reply
    (one call per client and round, the order rotated)."""
    names = slots.names
    rates: dict[str, list[float]] = {name: [] for name in names}
    firsts: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        slots.open_round(r)
        for name in rotated(names, r):
            timing = slot_call(slots, name, n, f"throughput {name} round {r + 1}")
            if timing is not None:
                rates[name].append(n / timing[0])
                firsts[name].append(timing[1])
    return {
        name: {"chunks_per_s": max(rates[name], default=None), "first_chunk_s": min(firsts[name], default=None)}
        for name in names
    }


def bench_round_trip(slots: Slots, calls: int, rounds: int) -> dict[str, Any]:
    """Best (over rounds) median seconds of a 1-chunk call on an open socket,
    each client making its calls in a row (rotated by round); ``"rounds"``:
    every round's median, by client."""
    names = slots.names
    medians: dict[str, list[float | None]] = {name: [] for name in names}
    for r in range(rounds):
        slots.open_round(r)
        for name in rotated(names, r):
            samples = []
            for i in range(calls):
                timing = slot_call(slots, name, 1, f"round trip {name} round {r + 1} #{i}")
                if timing is not None:
                    samples.append(timing[0])
            medians[name].append(statistics.median(samples) if samples else None)
    out: dict[str, Any] = {name: min((m for m in medians[name] if m is not None), default=None) for name in names}
    out["rounds"] = medians
    return out


def bench_cold(
    starters: Mapping[str, ColdStarter], peer: Peer, calls: int, rounds: int, checker: Checker
) -> dict[str, Any]:
    """Best (over rounds) median seconds of a 1-chunk call on a new client:
    construct, connect, handshake, send, whole reply. Closing is not timed
    (gpt4free's call closes its session inside the call, and a one-shot
    ``generate()`` closes its client inside the call, so there it is);
    ``"rounds"``: every round's median, by client."""
    medians: dict[str, list[float | None]] = {name: [] for name in starters}
    causes: dict[str, str] = {}
    for r in range(rounds):
        for name in rotated(list(starters), r):
            samples = []
            for i in range(calls):
                what = f"cold {name} #{i}"
                close: Callable[[], None] = _nothing
                try:
                    started = time.perf_counter()
                    call, close = starters[name](peer)
                    text, _ = call()
                    elapsed = time.perf_counter() - started
                except Exception as exc:
                    checker.failed(what, exc)
                    causes.setdefault(name, describe(exc))
                    continue
                finally:
                    try:
                        close()
                    except Exception as exc:
                        checker.failed(what + " close()", exc)
                if checker.check(what, text, 1):
                    samples.append(elapsed)
            medians[name].append(statistics.median(samples) if samples else None)
    out: dict[str, Any] = {name: min((m for m in medians[name] if m is not None), default=None) for name in starters}
    out["rounds"] = medians
    out["causes"] = causes
    return out


def bench_peer_ceiling(peer: Peer, n: int, rounds: int) -> float | None:
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
