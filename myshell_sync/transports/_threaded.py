"""What the HTTP-based transports share: one thread per reply posting with requests.

A ``ThreadedTransport`` starts each reply on a daemon thread under its lock
(so ``close()`` never meets an unstarted thread), fails every reply in
flight on ``close()`` and forgets them after a fork. A ``ThreadedReply`` owns
that thread, its mailbox and the connection it holds: ``cancel()`` and
``finish(False)`` cut only a socket the reply still holds (the pool may have
lent it to another reply since). ``post()`` retries only a request that was
never answered: a failure to connect, or a status the transport names
(429 for the key-based API), with backoff within ``max_retries`` and
``Timeout.total``.
"""

from __future__ import annotations

import abc
import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable, Dict, Optional, Set

import requests

from .._deadline import Deadline, Limit
from .._exceptions import ClientClosedError, MyshellError
from ._http_errors import never_sent, translate_error
from ._requests_adapter import close_quietly, cut_if_held, hold, shutdown_response, watch
from ._session import SessionHolder
from .base import CANCELLED, DEAD, Batch, ReplyHandle, Request, Transport

__all__ = ["ThreadedTransport", "ThreadedReply", "read_timeout"]

log = logging.getLogger("myshell_sync")

_thread_ids = itertools.count(1)


class ThreadedTransport(Transport):
    """A transport whose replies each run on a thread of their own."""

    def __init__(
        self,
        url: str,
        *,
        sessions: SessionHolder,
        closed: threading.Event,
        max_retries: int,
        backoff: Callable[[int], float],
    ) -> None:
        super().__init__()
        self.url = url
        self.sessions = sessions
        self.closed_event = closed
        self.max_retries = max_retries
        self.backoff = backoff
        self._active: Set["ThreadedReply"] = set()
        self._lock = threading.Lock()

    @abc.abstractmethod
    def make_reply(self, request: Request, deadline: Deadline) -> "ThreadedReply":
        """The reply for ``request`` (its model resolved); not started."""

    def start(self, request: Request, deadline: Deadline) -> "ThreadedReply":
        """Post ``request`` on a new thread; its events arrive in ``reply.mailbox``."""
        reply = self.make_reply(request, deadline)
        with self._lock:
            # Started under the lock, so close() never sees an unstarted thread.
            if self.closed_event.is_set():
                raise ClientClosedError()
            self._active.add(reply)
            reply.thread.start()
        return reply

    def forget(self, reply: "ThreadedReply") -> None:
        with self._lock:
            self._active.discard(reply)

    def close(self, timeout: float) -> None:
        """Fail every reply in flight with ``ClientClosedError`` and stop it."""
        with self._lock:
            replies = list(self._active)
            self._active.clear()
        per_reply = timeout / max(len(replies), 1)
        for reply in replies:
            reply.fail(ClientClosedError(), per_reply)

    def reset_after_fork(self) -> None:
        """Forget the parent's replies; their threads and sockets are not ours."""
        self._lock = threading.Lock()
        self._active = set()

    def describe(self) -> str:
        return f"{self.name}, {len(self._active)} replies"


class ThreadedReply(ReplyHandle):
    """One request in flight: a mailbox fed by a background thread."""

    def __init__(self, transport: ThreadedTransport, request: Request, deadline: Deadline) -> None:
        self._transport = transport
        self._request = request
        self._deadline = deadline
        self._connect: Limit = deadline.connect()
        self.mailbox: "queue.SimpleQueue[Batch]" = queue.SimpleQueue()
        self._response: Optional[requests.Response] = None
        # The connection awaiting (or reading) the response (for cancel()).
        self._conn: Optional[Any] = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        self.thread = threading.Thread(
            target=self._run, name=f"myshell-{transport.name}-{next(_thread_ids)}", daemon=True
        )

    @abc.abstractmethod
    def exchange(self) -> None:
        """Post the request and feed the mailbox (on the reply's thread)."""

    # -- ReplyHandle -----------------------------------------------------------

    def finish(self, completed: bool) -> None:
        if completed:
            self._transport.forget(self)  # the thread ends by itself
        else:
            self._stop(1.0)

    def cancel(self) -> None:
        self.mailbox.put([(CANCELLED, None)])
        self._stop(0)

    def fail(self, error: MyshellError, timeout: float = 1.0) -> None:
        """Wake the consumer with ``error``, then stop the reply."""
        self.mailbox.put([(DEAD, error)])
        self._stop(timeout)

    def _stop(self, timeout: float) -> None:
        """Cut the connection the reply still holds; wait (bounded) for its thread.

        Only the reply's thread closes the response; here the socket is shut
        down, and only while the reply still holds the connection.
        """
        self._transport.forget(self)
        self._cancelled.set()
        with self._lock:
            response = self._response
            conn = self._conn
        if conn is not None:
            cut_if_held(conn, self)
        elif response is not None:
            shutdown_response(response)  # a connection this adapter does not track (SOCKS)
        if timeout > 0 and self.thread.ident is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    # -- the background thread -------------------------------------------------

    def waiting_on(self, conn: Any) -> None:
        """The request went out on ``conn``; its headers are awaited next."""
        hold(conn, self)
        with self._lock:
            self._conn = conn
        if self._cancelled.is_set():
            cut_if_held(conn, self)

    def _run(self) -> None:
        watch(self)
        # The connect wait of the latest attempt (post() updates it), which
        # names the limit of a connect timeout.
        self._connect = self._deadline.connect()
        try:
            self.exchange()
        except MyshellError as exc:
            self.put([(DEAD, exc)])
        except BaseException as exc:  # never die silently
            if not self._cancelled.is_set():
                log.debug("%s reply failed", self._transport.name, exc_info=True)
                self.put([(DEAD, translate_error(exc, self._transport.url, self._connect))])
        finally:
            watch(None)

    def _may_retry(self, attempt: int, delay: float) -> bool:
        left = self._deadline.total().seconds
        return attempt < self._transport.max_retries and (left is None or delay < left)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def put(self, batch: Batch) -> None:
        if not self._cancelled.is_set():
            self.mailbox.put(batch)

    def post(
        self,
        body: Dict[str, Any],
        headers: Callable[[], Dict[str, str]],
        *,
        stream: bool,
        retry_after: Callable[[requests.Response], Optional[float]] = lambda response: None,
    ) -> Optional[requests.Response]:
        """Post ``body``; None if the reply was cancelled meanwhile.

        Retried (with backoff, within ``max_retries`` and ``Timeout.total``):
        a failure to connect, where nothing was sent, and a response for
        which ``retry_after`` gives a delay (it is closed first).
        """
        transport = self._transport
        deadline = self._deadline
        for attempt in itertools.count():
            self._connect = deadline.connect(attempt + 1, transport.max_retries + 1)
            try:
                response = transport.sessions.get().post(
                    transport.url,
                    json=body,
                    headers=headers(),
                    stream=stream,
                    # A redirect could lead an https:// URL to http://: never follow one.
                    allow_redirects=False,
                    timeout=(self._connect.seconds, read_timeout(deadline)),
                )
            except (requests.ConnectTimeout, requests.ConnectionError) as exc:
                delay = transport.backoff(attempt)
                if not never_sent(exc) or not self._may_retry(attempt, delay):
                    raise
                reason = f"connect failed ({exc})"
            else:
                self.connected_at = time.monotonic()
                with self._lock:
                    self._response = response
                if self._cancelled.is_set():
                    close_quietly(response)
                    return None
                wanted = retry_after(response)
                if wanted is None or not self._may_retry(attempt, wanted):
                    return response  # the caller maps a last refused status
                close_quietly(response)
                delay, reason = wanted, f"HTTP {response.status_code}"
            log.info("%s: %s; retry %d in %.2fs", transport.name, reason, attempt + 1, delay)
            if transport.closed_event.wait(delay) or self._cancelled.is_set():
                raise ClientClosedError()
        raise AssertionError("unreachable")


def read_timeout(deadline: Deadline) -> Optional[float]:
    """requests' read timeout: only a backstop, the consumer enforces the real waits."""
    timeout = deadline.timeout
    total = deadline.total().seconds
    waits = (timeout.first_chunk, timeout.idle)
    if any(w is None for w in waits):
        return None if total is None else total + 1.0
    longest = max(w for w in waits if w is not None)
    return (longest if total is None else min(longest, total)) + 1.0

