"""The transport interface, the request it carries and the reply's mailbox.

A transport turns a :class:`Request` into events in a mailbox::

    handle = transport.start(request, deadline)  # sends (or starts sending)
    batch = handle.mailbox.get(timeout=...)      # lists of (event, payload)
    handle.finish(completed)                     # the consumer is done

Every transport speaks the same mailbox language: WebSocket event names
(``text_stream``, ``message_replied``, the error events) plus the markers
below, as ``(event, payload)`` pairs; a chunk of text that is not the last
(the usual item) is the bare ``str``, which costs no tuple per chunk.
``_reply.iter_reply`` reads it the same way for every transport.
Each transport owns its sockets and threads: ``cancel()``, ``close()`` and
``reset_after_fork()`` behave the same on all of them.
"""

from __future__ import annotations

import abc
import logging
import os
import queue
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._deadline import Deadline

__all__ = [
    "Cancelled",
    "Request",
    "ReplyHandle",
    "Transport",
    "Batch",
    "DEAD",
    "END",
    "CANCELLED",
    "TERMINAL_EVENTS",
    "ERROR_EVENT_NAMES",
    "text_item",
    "text_entry",
]

log = logging.getLogger("myshell_sync")

#: What a transport puts into a reply's mailbox: events in arrival order, each
#: an ``(event, payload)`` pair or (a ``text_stream`` chunk that is not final)
#: its text as a bare ``str``.
Batch = list[Any]

#: "The transport failed"; the payload is the ``MyshellError`` to raise.
DEAD = "\0dead"
#: "The reply ended well without ``message_replied``."
END = "\0end"
#: "The caller cancelled the reply" (``Stream.close()`` from another thread).
CANCELLED = "\0cancelled"

#: Server events that end a reply with an error (their meaning is in ``_reply``).
ERROR_EVENT_NAMES = frozenset(
    ("need_verify_captcha", "no_enough_energy", "chat_login_popup", "auth_fail", "message_error", "exception")
)
#: Events after which the server is done with a request.
TERMINAL_EVENTS = ERROR_EVENT_NAMES | {"message_replied"}


def text_item(data: Any) -> tuple[Any, bool]:
    """The mailbox payload of a ``text_stream`` event: ``(text, is_final)``.

    ``text`` is whatever ``data.text`` held (checked by the consumer), or
    ``MALFORMED`` when ``data`` is not an object.
    """
    if data.__class__ is not dict:
        return MALFORMED, False
    return data.get("text"), data.get("isFinal") is True


def text_entry(data: Any) -> tuple[Any, bool]:
    """The mailbox item of a ``text_stream`` event, and whether it is final:
    its text as a bare ``str`` for the usual chunk, else
    ``("text_stream", text_item(data))``."""
    if data.__class__ is dict:
        text = data.get("text")
        if data.get("isFinal") is True:
            return ("text_stream", (text, True)), True
        if text.__class__ is str:
            return text, False
    return ("text_stream", text_item(data)), False


#: The text of a ``text_stream`` whose data was not an object.
MALFORMED = object()


@dataclass(frozen=True)
class Request:
    """One validated call, as every transport receives it."""

    req_id: str
    #: The model as the caller named it (each transport resolves it).
    model: str | None
    messages: Sequence[Mapping[str, str]]
    #: The messages flattened into one prompt (``format_prompt``).
    text: str
    #: Generation settings the caller gave (only some transports take them).
    settings: dict[str, Any] = field(default_factory=dict)


class Cancelled(Exception):
    """The caller cancelled the call from another thread (internal: the
    stream ends quietly, it never reaches the user)."""


class ReplyHandle(abc.ABC):
    """One reply in flight: its mailbox and how to stop it."""

    mailbox: queue.SimpleQueue[Batch]
    #: ``time.monotonic()`` when the transport was connected for this reply.
    connected_at: float | None = None

    @abc.abstractmethod
    def finish(self, completed: bool) -> None:
        """The consumer is done (on its own thread); ``completed`` False
        abandons the reply. Idempotent."""

    @abc.abstractmethod
    def cancel(self) -> None:
        """Stop the reply from any thread and wake its consumer with
        ``CANCELLED``. Idempotent."""


class Transport(abc.ABC):
    """Sends requests and fills their mailboxes; owns its sockets and threads."""

    #: The name users pass as ``Myshell(transport=...)``.
    name: str = ""
    #: Whether it sends generation settings (``temperature``, ...).
    supports_settings: bool = False

    def __init__(self) -> None:
        reset_after_fork_too(self)

    @abc.abstractmethod
    def check_model(self, model: str | None) -> str:
        """The id this transport sends for ``model``; raises
        ``UnsupportedModelError`` before anything is sent."""

    @abc.abstractmethod
    def model_names(self) -> tuple[str, ...]:
        """The model names this transport knows (``check_model`` may take more: bot ids)."""

    @abc.abstractmethod
    def start(self, request: Request, deadline: Deadline) -> ReplyHandle:
        """Send ``request`` (or start sending it) within ``deadline``."""

    def warm(self, model: str | None, deadline: Deadline) -> None:  # noqa: B027 (an optional hook)
        """Open what a first request would need now (``Myshell.connect``)."""

    @abc.abstractmethod
    def close(self, timeout: float) -> None:
        """Fail every reply in flight with ``ClientClosedError`` and free
        every socket and thread within ``timeout``. Idempotent."""

    @abc.abstractmethod
    def reset_after_fork(self) -> None:
        """In a forked child: forget the parent's sockets and threads
        without touching them (they still serve the parent)."""

    def describe(self) -> str:
        """A short state for ``repr`` (never a secret)."""
        return self.name


_live: weakref.WeakSet[Any] = weakref.WeakSet()


def reset_after_fork_too(resource: Any) -> None:
    """Call ``resource.reset_after_fork()`` in every forked child (weakly held)."""
    _live.add(resource)


def _reset_in_child() -> None:
    for resource in list(_live):
        try:
            resource.reset_after_fork()
        except Exception:  # a child must start even if one resource cannot reset
            log.exception("resetting %r after fork failed", resource)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)
