"""The consumer side of a call: ``Stream``, ``Reply`` and ``Timings``.

``run()`` drives one request through a transport: it starts it within the
call's deadline, reads the mailbox with ``iter_reply`` and tells the
transport when the consumer is done. ``Stream`` wraps it with metadata and a
``close()`` that works from any thread.
"""

from __future__ import annotations

import threading
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, Callable

from ._deadline import Deadline
from ._exceptions import MyshellError
from ._reply import iter_reply
from .transports.base import Cancelled, ReplyHandle, Request, Transport

__all__ = ["Stream", "Reply", "Timings", "run"]


@dataclass
class Timings:
    """Seconds from the start of the call to each milestone (None if not reached)."""

    connect: float | None = None
    first_chunk: float | None = None
    total: float | None = None


@dataclass
class Reply:
    """A whole reply, as returned by :meth:`Myshell.chat`."""

    text: str
    req_id: str
    message: dict[str, Any] | None
    timings: Timings


def run(
    transport: Transport,
    request: Request,
    deadline: Deadline,
    timings: Timings,
    on_start: Callable[[ReplyHandle], None] | None = None,
    parts: list[str] | None = None,
) -> Generator[str, None, dict[str, Any] | None]:
    """Send ``request`` on ``transport`` and yield its chunks.

    Returns the final message (None if the reply ended without one). Errors
    carry the request's id. ``on_start`` receives the handle once sent;
    ``parts``, if given, gets every chunk before it is yielded.
    """
    try:
        handle = transport.start(request, deadline)
        completed = False
        try:
            if on_start is not None:
                on_start(handle)
            reply = iter_reply(handle.mailbox, request.req_id, deadline, parts)
            message: dict[str, Any] | None
            try:
                chunk = next(reply)
            except StopIteration as stop:
                message = stop.value
            else:
                timings.first_chunk = deadline.elapsed()
                _note_connect(handle, deadline, timings)
                yield chunk
                message = yield from reply
            timings.total = deadline.elapsed()
            completed = True
            return message
        finally:
            _note_connect(handle, deadline, timings)
            handle.finish(completed)
    except MyshellError as exc:
        if exc.req_id is None:
            exc.req_id = request.req_id
        raise


def _note_connect(handle: ReplyHandle, deadline: Deadline, timings: Timings) -> None:
    # An HTTP reply connects on its own thread, so this is known only later.
    if timings.connect is None and handle.connected_at is not None:
        timings.connect = handle.connected_at - deadline.started


class Stream:
    """One streaming reply: iterate for ``str`` chunks; a context manager.

    After the end, ``message`` is the final ``message_replied`` payload,
    ``text`` the whole reply and ``timings`` when each milestone was reached.
    ``close()`` may be called from any thread (a web server's disconnect
    handler, a UI's stop button): it cancels the request, and a thread
    iterating the stream stops (its loop ends) within a fraction of a second.
    """

    def __init__(self, transport: Transport, request: Request, deadline: Deadline) -> None:
        self.req_id = request.req_id
        self.timings = Timings()
        self.message: dict[str, Any] | None = None
        self._parts: list[str] = []
        self._text = ""
        self._text_parts = 0
        self._deadline = deadline
        self._handle: ReplyHandle | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._ended = False
        #: Called once with ``completed`` when the stream ends for any reason.
        self._on_end: list[Callable[[bool], None]] = []
        self._iterator = self._iterate(run(transport, request, deadline, self.timings, self._started, self._parts))

    @property
    def text(self) -> str:
        """The text received so far."""
        parts = self._parts
        if self._text_parts != len(parts):
            self._text = "".join(parts)
            self._text_parts = len(parts)
        return self._text

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def _started(self, handle: ReplyHandle) -> None:
        with self._lock:
            self._handle = handle
            cancelled = self._closed
        if cancelled:  # closed from another thread while the request went out
            handle.cancel()

    def _iterate(self, chunks: Generator[str, None, dict[str, Any] | None]) -> Generator[str, None, None]:
        # ``run`` appends every chunk to ``self._parts``, so the chunks pass
        # through here without a Python-level step each.
        completed = False
        try:
            self.message = yield from chunks
            completed = True
        except Cancelled:
            return
        finally:
            chunks.close()
            self._end(completed)

    def _end(self, completed: bool) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        for callback in self._on_end:
            callback(completed)

    def __iter__(self) -> Iterator[str]:
        # The generator itself: a for loop (or ``yield from``) then runs it
        # without a Python-level ``__next__`` call per chunk.
        return self._iterator

    def __next__(self) -> str:
        return next(self._iterator)

    def close(self) -> None:
        """Stop the reply now, from any thread; idempotent."""
        with self._lock:
            self._closed = True
            handle = self._handle
        self._deadline.cancelled.set()
        if handle is not None:
            handle.cancel()
        try:
            self._iterator.close()
        except ValueError:  # it is running in another thread: that thread stops on the cancel
            return
        self._end(False)  # (a no-op if the iteration ended it already)

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Stream req_id={self.req_id} chars={len(self.text)}>"
