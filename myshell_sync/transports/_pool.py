"""A pool of authenticated connections shared by every thread of one client.

Requests to different bots may share a connection; requests to the same bot
go to different connections (the web client never has two requests in flight
to one bot on one socket). A dead connection is never handed out again.
Opening a connection is retried with backoff; a sent request never is.
Connections idle for ``idle_close`` seconds are closed by a janitor thread
that exists only while the pool holds (or opens) connections; the reader
thread of the connection being opened starts it, so the caller never waits
for it. Every wait is bounded by the call's ``Deadline``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from typing import Callable

from .._deadline import Deadline, Limit
from .._exceptions import ClientClosedError, MyshellConnectionError
from .._wording import Wording
from ._connection import Connection

log = logging.getLogger("myshell_sync")

# Backoff between connect attempts: base * 2**attempt, capped, times jitter.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based): the capped
    exponential delay times a jitter factor in [0.5, 1)."""
    return min(BACKOFF_BASE * 2.0**attempt, BACKOFF_CAP) * (0.5 + 0.5 * rand())


class Pool:
    """Connections of one client and the bots each one is busy with."""

    def __init__(
        self,
        open_connection: Callable[[Limit, Callable[[], None]], Connection],
        *,
        closed: threading.Event,
        max_connections: int,
        max_retries: int,
        idle_close: float | None,
    ) -> None:
        """``closed`` is the client's: set, it ends every wait of the pool.
        ``open_connection(limit, on_reader_start)`` opens one connection and
        calls ``on_reader_start()`` on its reader thread as it starts."""
        self._open_connection = open_connection
        self.max_connections = max_connections
        self.max_retries = max_retries
        self.idle_close = idle_close
        self._closed = closed
        self.reset()

    def reset(self) -> None:
        """Fresh state; also what a forked child starts from (the parent's
        connections are forgotten, never touched)."""
        self._cond = threading.Condition()
        self._busy: dict[Connection, set[str]] = {}
        self._opening = 0
        self._waiters = 0  # callers waiting in acquire()
        self._sweeper_parked = False  # the janitor waits for a release
        self._janitor: threading.Thread | None = None
        #: How many connections this pool has opened (in this process).
        self.opened = 0

    def connections(self) -> list[Connection]:
        with self._cond:
            return list(self._busy)

    # -- lending -------------------------------------------------------------

    def acquire(self, bot_uid: str, deadline: Deadline) -> Connection:
        """A live connection with no request in flight to ``bot_uid``.

        Opens one when none is free and the pool has room; otherwise waits,
        within ``deadline.connect()``, for one to be released.
        """
        limit: Limit | None = None  # the wait, known once one is needed
        until: float | None = None
        with self._cond:
            while True:
                self._check_usable()
                conn = self._pick(bot_uid)
                if conn is not None:
                    self._busy[conn].add(bot_uid)
                    return conn
                if len(self._busy) + self._opening < self.max_connections:
                    self._opening += 1
                    break
                if limit is None:
                    limit = deadline.connect()
                    until = None if limit.seconds is None else time.monotonic() + limit.seconds
                remaining = None if until is None else until - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise limit.error(
                        Wording(
                            "waiting for one of the {n} connections, all busy with this bot ({s.max_connections}),",
                            {"n": self.max_connections},
                        )
                    )
                self._waiters += 1
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiters -= 1
        try:
            conn = self._open_with_retries(deadline)
        except BaseException:
            with self._cond:
                self._opening -= 1
                self._cond.notify_all()
            raise
        with self._cond:
            # One lock hold, so no waiter sees room between the two steps.
            self._opening -= 1
            self._cond.notify_all()
            if not self._closed.is_set():
                self._busy[conn] = {bot_uid}
                self.opened += 1
                self._start_janitor()  # (its reader started it already)
                return conn
        conn.close(0.5)
        raise ClientClosedError()

    def release(self, conn: Connection, bot_uid: str) -> None:
        """Give back ``conn`` after a request to ``bot_uid`` ended."""
        with self._cond:
            bots = self._busy.get(conn)
            if bots is not None:
                bots.discard(bot_uid)
                if not conn.alive and not bots:
                    del self._busy[conn]
            # Wake waiters, or a janitor with no idle connection to time;
            # a janitor timing an expiry needs no wake-up (a release only
            # ever moves expiries later).
            if self._waiters or (self._sweeper_parked and not bots):
                self._cond.notify_all()

    def _pick(self, bot_uid: str) -> Connection | None:
        """The least busy live connection free for ``bot_uid``; drops the dead."""
        busy = self._busy
        if len(busy) == 1:  # the usual case, without the copy and the comparisons
            for conn, bots in busy.items():
                if conn.alive:
                    return None if bot_uid in bots else conn
        best = None
        for conn, bots in list(busy.items()):
            if not conn.alive:
                if not bots:
                    del self._busy[conn]
                continue
            if bot_uid not in bots and (best is None or len(bots) < len(self._busy[best])):
                best = conn
        return best

    def _check_usable(self) -> None:
        if self._closed.is_set():
            raise ClientClosedError()

    def _open_with_retries(self, deadline: Deadline) -> Connection:
        attempt = 0
        while True:
            try:
                return self._open_connection(deadline.connect(attempt + 1, self.max_retries + 1), self._janitor_wanted)
            except MyshellConnectionError as exc:
                if self._closed.is_set():
                    raise ClientClosedError() from exc
                delay = backoff_delay(attempt)
                left = deadline.total().seconds
                if attempt >= self.max_retries or (left is not None and left <= delay):
                    raise  # out of retries, or of Timeout.total
                log.info("connect failed (%s); retry %d in %.2fs", exc, attempt + 1, delay)
                attempt += 1
                if self._closed.wait(delay):
                    raise ClientClosedError() from exc

    # -- idle connections ----------------------------------------------------

    def _janitor_wanted(self) -> None:
        """A connection is being opened (on its reader thread): start the janitor."""
        with self._cond:
            if not self._closed.is_set():
                self._start_janitor()

    def _start_janitor(self) -> None:
        if self.idle_close is None or self._janitor is not None:
            return
        self._janitor = threading.Thread(target=self._sweep, name="myshell-janitor", daemon=True)
        self._janitor.start()

    def _sweep(self) -> None:
        """Close connections idle for ``idle_close``; exit when none are left
        (and none is being opened)."""
        assert self.idle_close is not None
        cond = self._cond
        with cond:
            while not self._closed.is_set() and (self._busy or self._opening):
                now = time.monotonic()
                idle = [c for c, bots in self._busy.items() if not bots and now - c.last_used >= self.idle_close]
                if idle:
                    for conn in idle:
                        del self._busy[conn]
                    cond.release()
                    try:
                        for conn in idle:
                            log.debug("closing connection %s idle for %.0fs", conn.sid, now - conn.last_used)
                            conn.close(1.0)
                    finally:
                        cond.acquire()
                    continue
                expiries = [c.last_used + self.idle_close for c, bots in self._busy.items() if not bots]
                if expiries:
                    cond.wait(min(expiries) - now)
                else:  # every connection is busy (or being opened): a release() wakes us
                    self._sweeper_parked = True
                    try:
                        cond.wait()
                    finally:
                        self._sweeper_parked = False
            if self._janitor is threading.current_thread():
                self._janitor = None

    # -- closing -------------------------------------------------------------

    def close(self, timeout: float) -> None:
        """Close every connection within ``timeout``; waiters get ``ClientClosedError``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._closed.set()
            conns = list(self._busy)
            self._busy.clear()
            janitor = self._janitor
            self._cond.notify_all()
        for conn in conns:
            conn.begin_close(timeout / 4)
        for conn in conns:
            conn.finish_close(deadline)
        if janitor is not None and janitor is not threading.current_thread():
            janitor.join(max(deadline - time.monotonic(), 0.1))
