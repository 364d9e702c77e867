"""A pool of authenticated connections shared by every thread of one client.

Requests to different bots may share a connection; requests to the same bot
go to different connections (the web client never has two requests in flight
to one bot on one socket). A dead connection is never handed out again.
Opening a connection is retried with backoff; a sent request never is.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from typing import Callable, Dict, List, Optional, Set

from ._exceptions import ClientClosedError, MyshellConnectionError, MyshellTimeoutError
from ._transport import Connection

log = logging.getLogger("myshell_sync")

# Backoff between connect attempts: base * 2**attempt, capped, times jitter.
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0


def backoff_delay(attempt: int, rand: Callable[[], float] = random.random) -> float:
    """Seconds to wait before retry number ``attempt`` (0-based), with jitter."""
    return min(BACKOFF_BASE * 2 ** attempt, BACKOFF_CAP) * (0.5 + 0.5 * rand())


class Pool:
    """Connections of one client, keyed by the bots each one is busy with."""

    def __init__(
        self,
        open_connection: Callable[[Optional[float]], Connection],
        *,
        max_connections: int,
        max_retries: int,
    ) -> None:
        self._open_connection = open_connection
        self.max_connections = max_connections
        self.max_retries = max_retries
        self._cond = threading.Condition()
        self._busy: Dict[Connection, Set[str]] = {}
        self._opening = 0
        self._closed = threading.Event()
        self._pid = os.getpid()
        #: How many connections this pool has opened (for tests and stats).
        self.opened = 0

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def wait_closed(self, timeout: float) -> bool:
        """Sleep up to ``timeout``; True at once if the pool is closed."""
        return self._closed.wait(timeout)

    def connections(self) -> List[Connection]:
        with self._cond:
            return list(self._busy)

    def acquire(self, bot_uid: str, timeout: Optional[float]) -> Connection:
        """A live connection with no request in flight to ``bot_uid``.

        Opens one when none is free and the pool has room; otherwise waits
        up to ``timeout`` for one to be released.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                self._check_open()
                conn = self._pick(bot_uid)
                if conn is not None:
                    self._busy[conn].add(bot_uid)
                    return conn
                if len(self._busy) + self._opening < self.max_connections:
                    self._opening += 1
                    break
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise MyshellTimeoutError(
                        f"all {self.max_connections} connections are busy with this bot; "
                        "raise max_connections or Timeout.connect"
                    )
                self._cond.wait(remaining)
        try:
            conn = self._open_with_retries(timeout)
        finally:
            with self._cond:
                self._opening -= 1
                self._cond.notify_all()
        with self._cond:
            if self._closed.is_set():
                conn.close(0.5)
                self._check_open()
            self._busy[conn] = {bot_uid}
            self.opened += 1
        return conn

    def release(self, conn: Connection, bot_uid: str) -> None:
        """Give back ``conn`` after a request to ``bot_uid`` ended."""
        with self._cond:
            bots = self._busy.get(conn)
            if bots is not None:
                bots.discard(bot_uid)
                if not conn.alive:
                    del self._busy[conn]
            self._cond.notify_all()

    def close(self, timeout: float) -> None:
        """Close every connection; waiting callers get ``ClientClosedError``."""
        with self._cond:
            self._closed.set()
            conns = list(self._busy)
            self._busy.clear()
            self._cond.notify_all()
        if os.getpid() != self._pid:
            return  # the parent owns these sockets
        deadline = time.monotonic() + timeout
        for conn in conns:
            conn.close(max(deadline - time.monotonic(), 0.1))

    def _pick(self, bot_uid: str) -> Optional[Connection]:
        best = None
        for conn, bots in list(self._busy.items()):
            if not conn.alive:
                if not bots:
                    del self._busy[conn]
                continue
            if bot_uid not in bots and (best is None or len(bots) < len(self._busy[best])):
                best = conn
        return best

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise ClientClosedError("client closed: create a new Myshell client")
        if os.getpid() != self._pid:
            # A forked child: the parent's sockets are not ours to touch.
            log.debug("fork detected: dropping %d inherited connections", len(self._busy))
            self._busy = {}
            self._opening = 0
            self._pid = os.getpid()

    def _open_with_retries(self, timeout: Optional[float]) -> Connection:
        attempt = 0
        while True:
            try:
                return self._open_connection(timeout)
            except MyshellConnectionError as exc:
                if attempt >= self.max_retries or self._closed.is_set():
                    raise
                delay = backoff_delay(attempt)
                log.info("connect failed (%s); retry %d in %.2fs", exc, attempt + 1, delay)
                attempt += 1
                if self._closed.wait(delay):
                    raise ClientClosedError("client closed: create a new Myshell client") from exc
