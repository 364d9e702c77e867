"""Serve a reply to a browser: chunks as ``text/event-stream`` strings.

``to_sse`` is what a Flask, Django or plain WSGI view returns as its
streaming body; see ``examples/flask_app.py`` and ``examples/django_view.py``.
"""

from __future__ import annotations

import inspect
import json
import logging
from collections.abc import Generator, Iterable, Iterator
from typing import Any

from . import _exceptions as errors
from ._sse import encode_sse

__all__ = ["to_sse"]

log = logging.getLogger("myshell_sync")

END_EVENT = "end"
ERROR_EVENT = "error"

GENERIC_MESSAGE = "Something went wrong. Please try again later."
#: Error class -> the sentence an ``error`` event shows the end user. A class
#: not listed gets the entry of its nearest listed base class (its MRO).
SAFE_MESSAGES: dict[type[errors.MyshellError], str] = {
    errors.MyshellError: GENERIC_MESSAGE,
    errors.UnsupportedModelError: "This bot is not available.",
    errors.AuthenticationError: "The chat service is not available right now. Please try again later.",
    errors.CaptchaRequiredError: "The bot is busy. Please try again in a minute.",
    errors.InsufficientEnergyError: "The bot cannot answer any more today. Please try again later.",
    errors.ServerError: "The bot could not answer. Please try again later.",
    errors.RateLimitError: "Too many requests. Please wait a moment and try again.",
    errors.ProtocolError: "The bot's answer could not be read. Please try again.",
    errors.ClientClosedError: "The chat service is restarting. Please try again in a moment.",
    errors.MyshellConnectionError: "The bot cannot be reached right now. Please try again later.",
    errors.ConnectionLostError: "The connection to the bot was lost. Please try again.",
    errors.MyshellTimeoutError: "The bot took too long to answer. Please try again.",
}


def to_sse(chunks: Iterable[str]) -> Generator[str, None, None]:
    """Turn a chunk iterator into server-sent-event strings, one per chunk.

    Each chunk becomes one unnamed event (``data: ...`` lines and a blank
    line; a newline inside a chunk becomes a second ``data:`` line, which a
    browser joins back with ``\\n``). After the last chunk comes one
    ``event: end`` event (empty data). If the source raises ``MyshellError``,
    an ``event: error`` event ends the stream instead; its data is JSON,
    ``{"error": <class name>, "message": <sentence for the end user>}``, the
    sentence chosen by class from ``SAFE_MESSAGES`` and never the exception's
    own text (it may name the base URL or the proxy). The exception's class
    and message are logged as a WARNING on the ``myshell_sync`` logger.
    Other exceptions propagate. ``iter(chunks)`` is taken at once.

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
    except errors.MyshellError as exc:
        log.warning("to_sse: the reply failed, sent an error event: %s: %s", type(exc).__name__, exc)
        yield encode_sse(_error_data(exc), event=ERROR_EVENT)
        return
    finally:
        _close(source)
    yield encode_sse("", event=END_EVENT)


def safe_message(error: errors.MyshellError) -> str:
    """The ``SAFE_MESSAGES`` sentence for ``error``'s class or its nearest base."""
    for cls in type(error).__mro__:
        message = SAFE_MESSAGES.get(cls)
        if message is not None:
            return message
    return GENERIC_MESSAGE


def _error_data(error: errors.MyshellError) -> str:
    return json.dumps({"error": type(error).__name__, "message": safe_message(error)})


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
    close: Any | None = getattr(source, "close", None)
    if callable(close):
        close()
