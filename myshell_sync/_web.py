"""Serve a reply to a browser: chunks as ``text/event-stream`` strings.

``to_sse`` is what a Flask, Django or plain WSGI view returns as its
streaming body; see ``examples/flask_app.py`` and ``examples/django_view.py``.
"""

from __future__ import annotations

import inspect
from typing import Any, Generator, Iterable, Iterator, Optional

from ._exceptions import MyshellError
from ._sse import encode_sse

__all__ = ["to_sse"]

END_EVENT = "end"
ERROR_EVENT = "error"


def to_sse(chunks: Iterable[str]) -> Generator[str, None, None]:
    """Turn a chunk iterator into server-sent-event strings, one per chunk.

    Each chunk becomes one unnamed event (``data: ...`` lines and a blank
    line; a newline inside a chunk becomes a second ``data:`` line, which a
    browser joins back with ``\\n``). After the last chunk comes one
    ``event: end`` event (empty data). If the source raises ``MyshellError``,
    an ``event: error`` event carrying its message ends the stream instead;
    other exceptions propagate. ``iter(chunks)`` is taken at once.

    Closing the returned generator (started or not) closes the source
    iterator if it has ``close()``: a WSGI server closes the response
    iterable when the browser goes away, so the upstream request
    (``client.generate(...)``) is cancelled.
    """
    return _SSEGenerator(iter(chunks))


def _events(source: Iterator[str]) -> Generator[str, None, None]:
    try:
        for chunk in source:
            if not isinstance(chunk, str):
                raise TypeError(f"to_sse() needs str chunks, not {type(chunk).__name__}")
            yield encode_sse(chunk)
    except MyshellError as exc:
        yield encode_sse(str(exc) or type(exc).__name__, event=ERROR_EVENT)
        return
    finally:
        _close(source)
    yield encode_sse("", event=END_EVENT)


class _SSEGenerator(Generator[str, Any, None]):
    """A generator that closes its source even when closed before starting.

    (A plain generator function's ``finally`` never runs if it was never
    started, so it could not promise that.)
    """

    def __init__(self, source: Iterator[str]) -> None:
        self._source = source
        self._events = _events(source)

    def send(self, value: Any) -> str:
        return self._events.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> str:
        if val is None and tb is None:
            return self._events.throw(typ)
        return self._events.throw(typ, val, tb)

    def close(self) -> None:
        started = inspect.getgeneratorstate(self._events) != inspect.GEN_CREATED
        try:
            self._events.close()  # a started one closes the source itself
        finally:
            if not started:
                _close(self._source)

    def __repr__(self) -> str:
        return f"<to_sse of {self._source!r}>"


def _close(source: Iterator[str]) -> None:
    close: Optional[Any] = getattr(source, "close", None)
    if callable(close):
        close()
