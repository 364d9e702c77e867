"""What the HTTP-based transports share: a thread per reply posting with requests.

A ``ThreadedTransport`` runs each reply in flight on a daemon thread of its
own, handed the reply under its lock (so ``close()`` never meets an
unstarted thread). A thread whose reply ended well waits ``WORKER_LINGER``
seconds for the next one before it ends, so sequential calls reuse one
thread instead of starting one each; the thread of a stopped reply ends. ``close()`` fails every reply in
flight and ends (and joins) every thread; a fork forgets them. A
``ThreadedReply`` owns its mailbox and the connection it holds: ``cancel()`` and
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
from typing import Any, Callable

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
#: Seconds a reply thread with nothing to do waits for the next reply.
WORKER_LINGER = 5.0


class _Worker:
    """A reply thread: runs the replies it is handed, one after another."""

    __slots__ = ("transport", "reply", "wake", "thread")

    def __init__(self, transport: ThreadedTransport, reply: ThreadedReply) -> None:
        self.transport = transport
        self.reply: ThreadedReply | None = reply
        self.wake = threading.Lock()  # released to hand over the next reply (or None: end)
        self.wake.acquire()
        self.thread = threading.Thread(
            target=self._main, name=f"myshell-{transport.name}-{next(_thread_ids)}", daemon=True
        )

    def _main(self) -> None:
        transport = self.transport
        while True:
            reply = self.reply
            if reply is None:  # told to end
                return
            reply._run()
            if not transport._park(self, reply):
                return  # the transport is closed, or the reply was stopped
            if self.wake.acquire(timeout=WORKER_LINGER):
                continue  # handed the next reply (or None)
            if transport._unpark(self):
                return  # no reply came
            # Taken off the idle list just as the wait ended: the hand-over
            # (made under the transport's lock) has released ``wake`` already.
            self.wake.acquire()

    def hand(self, reply: ThreadedReply | None) -> None:
        """Give a parked worker its next reply, or None to end it (under the
        transport's lock, after taking it off the idle list)."""
        self.reply = reply
        self.wake.release()


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
        self._active: set[ThreadedReply] = set()
        self._workers: set[_Worker] = set()  # every reply thread alive
        self._idle: list[_Worker] = []  # those waiting for a reply
        self._lock = threading.Lock()

    @abc.abstractmethod
    def make_reply(self, request: Request, deadline: Deadline) -> ThreadedReply:
        """The reply for ``request`` (its model resolved); not started."""

    def start(self, request: Request, deadline: Deadline) -> ThreadedReply:
        """Post ``request`` on a thread of its own (an idle reply thread, or a
        new one); its events arrive in ``reply.mailbox``."""
        reply = self.make_reply(request, deadline)
        with self._lock:
            # Handed over under the lock, so close() never sees an unstarted thread.
            if self.closed_event.is_set():
                raise ClientClosedError()
            self._active.add(reply)
            reply.started = True
            if self._idle:
                self._idle.pop().hand(reply)
            else:
                worker = _Worker(self, reply)
                self._workers.add(worker)
                worker.thread.start()
        return reply

    def _park(self, worker: _Worker, reply: ThreadedReply) -> bool:
        """``worker`` finished ``reply``: idle until handed another. False
        (and forgotten) if the transport is closed or the reply was stopped
        (cancelled, abandoned, failed): only a thread of a reply that ended
        well waits for the next."""
        with self._lock:
            worker.reply = None
            if self.closed_event.is_set() or reply.cancelled or worker not in self._workers:
                self._workers.discard(worker)
                return False
            self._idle.append(worker)
            return True

    def _unpark(self, worker: _Worker) -> bool:
        """``worker`` waited long enough: True (and forgotten) if still idle."""
        with self._lock:
            if worker not in self._idle:
                return False
            self._idle.remove(worker)
            self._workers.discard(worker)
            return True

    def forget(self, reply: ThreadedReply) -> None:
        with self._lock:
            self._active.discard(reply)

    def close(self, timeout: float) -> None:
        """Fail every reply in flight with ``ClientClosedError`` and stop it;
        end every reply thread (joined within ``timeout``)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            replies = list(self._active)
            self._active.clear()
            for worker in self._idle:
                worker.hand(None)
            self._idle.clear()
        per_reply = timeout / max(len(replies), 1)
        for reply in replies:
            reply.fail(ClientClosedError(), per_reply)
        with self._lock:
            workers = list(self._workers)
        current = threading.current_thread()
        for worker in workers:
            if worker.thread is not current:
                worker.thread.join(max(deadline - time.monotonic(), 0.01))

    def reset_after_fork(self) -> None:
        """Forget the parent's replies; their threads and sockets are not ours."""
        self._lock = threading.Lock()
        self._active = set()
        self._workers = set()
        self._idle = []

    def describe(self) -> str:
        return f"{self.name}, {len(self._active)} replies"


class ThreadedReply(ReplyHandle):
    """One request in flight: a mailbox fed by a background thread."""

    def __init__(self, transport: ThreadedTransport, request: Request, deadline: Deadline) -> None:
        self._transport = transport
        self._request = request
        self._deadline = deadline
        self._connect: Limit = deadline.connect()
        self.mailbox: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self._response: requests.Response | None = None
        # The connection awaiting (or reading) the response (for cancel()).
        self._conn: Any | None = None
        self._cancelled = threading.Event()
        self._lock = threading.Lock()
        #: Handed to a reply thread (by ``ThreadedTransport.start``).
        self.started = False
        self._running: threading.Thread | None = None
        self._done = threading.Lock()  # held until the reply's run has ended
        self._done.acquire()

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
        if timeout > 0 and self.started and self._running is not threading.current_thread():
            if self._done.acquire(timeout=timeout):
                self._done.release()

    # -- the background thread -------------------------------------------------

    def waiting_on(self, conn: Any) -> None:
        """The request went out on ``conn``; its headers are awaited next."""
        hold(conn, self)
        with self._lock:
            self._conn = conn
        if self._cancelled.is_set():
            cut_if_held(conn, self)

    def _run(self) -> None:
        """The reply's exchange, on the reply thread it was handed to."""
        self._running = threading.current_thread()
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
            self._done.release()

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
        body: dict[str, Any],
        headers: Callable[[], dict[str, str]],
        *,
        stream: bool,
        retry_after: Callable[[requests.Response], float | None] = lambda response: None,
    ) -> requests.Response | None:
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


def read_timeout(deadline: Deadline) -> float | None:
    """requests' read timeout: only a backstop, the consumer enforces the real waits."""
    timeout = deadline.timeout
    total = deadline.total().seconds
    waits = (timeout.first_chunk, timeout.idle)
    if any(w is None for w in waits):
        return None if total is None else total + 1.0
    longest = max(w for w in waits if w is not None)
    return (longest if total is None else min(longest, total)) + 1.0
