"""What the events of one reply mean: chunks, the end, or an error.

``iter_reply`` consumes a request's mailbox (filled by the transport's reader
thread) on the caller's thread, with bounded waits, and yields text deltas.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Dict, Generator, List, NoReturn, Optional, Tuple, Type

from ._config import Timeout
from ._constants import FINAL_GRACE, WAIT_SLICE
from ._exceptions import (
    AuthenticationError,
    CaptchaRequiredError,
    InsufficientEnergyError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
    ServerError,
)

#: Mailbox event name for "the connection failed"; payload is the exception.
DEAD = "\0dead"
#: Mailbox event name for "the reply ended well without message_replied".
END = "\0end"

#: What a transport puts into a reply's mailbox: events in arrival order.
Batch = List[Tuple[str, Any]]

# Terminal error events: the error class and what the caller can do about it.
ERROR_EVENTS: Dict[str, Tuple[Type[MyshellError], str]] = {
    "need_verify_captcha": (
        CaptchaRequiredError,
        "the server asks for a captcha; wait a while, keep captcha_delay at its "
        "default, or log in with token=",
    ),
    "no_enough_energy": (
        InsufficientEnergyError,
        "the account is out of energy; wait for the daily refill or use another account",
    ),
    "chat_login_popup": (
        AuthenticationError,
        "this bot needs a logged-in account; pass token= or set MYSHELL_TOKEN",
    ),
    "auth_fail": (
        AuthenticationError,
        "the server rejected the account; check the token (or MYSHELL_TOKEN)",
    ),
    "message_error": (ServerError, "the server could not handle the message; retry later"),
    "exception": (ServerError, "the server failed; retry later"),
}


def iter_reply(
    mailbox: "queue.Queue[Batch]",
    req_id: str,
    timeout: Timeout,
    started: float,
) -> Generator[str, None, Optional[Dict[str, Any]]]:
    """Yield the reply's text deltas; return the ``message_replied`` payload.

    ``started`` is the ``time.monotonic()`` at which the call began (for
    ``Timeout.total``). Returns None when the reply ended by the grace period
    after an ``isFinal`` frame rather than by ``message_replied``.
    """
    parts: List[str] = []
    clock = _Deadlines(timeout, started, req_id)
    get = mailbox.get
    while True:
        try:
            batch = get(timeout=WAIT_SLICE)
        except queue.Empty:
            if clock.expired(parts):
                return None  # the grace period after isFinal is over
            continue
        clock.event(parts)
        for name, payload in batch:
            if name == "text_stream":
                text, is_final = _stream_text(payload, req_id, parts)
                if text:
                    parts.append(text)
                    yield text
                if is_final:
                    clock.final()
            elif name == "message_replied":
                return (yield from _replied(payload, req_id, parts))
            elif name == END:
                return None
            elif name == DEAD:
                error: MyshellError = payload
                error.req_id = req_id
                error.partial_text = "".join(parts)
                raise error
            elif name in ERROR_EVENTS:
                cls, advice = ERROR_EVENTS[name]
                raise cls(
                    f"{name}: {_server_message(payload)}; {advice}",
                    req_id=req_id,
                    partial_text="".join(parts),
                )
            # message_sent, reply_message_created and others carry no text.


def _replied(
    payload: Dict[str, Any], req_id: str, parts: List[str]
) -> Generator[str, None, Dict[str, Any]]:
    """End of the reply: yield any text no delta carried; return the message."""
    message = payload.get("data")
    if not isinstance(message, dict):
        message = {}
    if message.get("type") == "NEED_TO_REGISTER":
        raise AuthenticationError(
            "this bot needs a logged-in account; pass token= or set MYSHELL_TOKEN",
            req_id=req_id,
            partial_text="".join(parts),
        )
    rest = _unstreamed_rest(message.get("text"), parts)
    if rest:
        parts.append(rest)
        yield rest
    return message


class _Deadlines:
    """The waits of one reply: first event, between events, total, grace."""

    def __init__(self, timeout: Timeout, started: float, req_id: str) -> None:
        self.timeout = timeout
        self.started = started
        self.req_id = req_id
        self.last_event = time.monotonic()
        self.got_any = False
        self.final_at: Optional[float] = None

    def event(self, parts: List[str]) -> None:
        now = self.last_event = time.monotonic()
        self.got_any = True
        total = self.timeout.total
        if total is not None and now - self.started >= total:
            self._raise(total, "the whole reply (Timeout.total)", parts)

    def final(self) -> None:
        if self.final_at is None:
            self.final_at = time.monotonic()

    def expired(self, parts: List[str]) -> bool:
        """True when the grace period is over; raises when a timeout is."""
        now = time.monotonic()
        timeout = self.timeout
        if self.final_at is not None and now - self.final_at >= FINAL_GRACE:
            return True
        if timeout.total is not None and now - self.started >= timeout.total:
            limit, what = timeout.total, "the whole reply (Timeout.total)"
        elif self.final_at is not None:
            return False
        elif not self.got_any and timeout.first_chunk is not None and now - self.last_event >= timeout.first_chunk:
            limit, what = timeout.first_chunk, "the first event (Timeout.first_chunk)"
        elif self.got_any and timeout.idle is not None and now - self.last_event >= timeout.idle:
            limit, what = timeout.idle, "the next event (Timeout.idle)"
        else:
            return False
        self._raise(limit, what, parts)

    def _raise(self, limit: float, what: str, parts: List[str]) -> NoReturn:
        raise MyshellTimeoutError(
            f"waited {limit:g}s for {what} of request {self.req_id}; the bot may be busy: "
            "retry, or raise the timeout",
            req_id=self.req_id,
            partial_text="".join(parts),
        )


def text_item(data: Any) -> Tuple[Any, bool]:
    """The mailbox payload of a ``text_stream`` event: ``(text, is_final)``.

    ``text`` is whatever ``data.text`` held (checked by the consumer), or
    ``_MALFORMED`` when ``data`` is not an object.
    """
    if data.__class__ is not dict:
        return _MALFORMED, False
    return data.get("text"), data.get("isFinal") is True


_MALFORMED = object()


def _stream_text(item: Tuple[Any, bool], req_id: str, parts: List[str]) -> Tuple[str, bool]:
    text, is_final = item
    if text.__class__ is str:
        return text, is_final
    if text is None:  # JSON null: no text on this frame
        return "", is_final
    what = "data" if text is _MALFORMED else f"data.text ({type(text).__name__})"
    raise ProtocolError(
        f"text_stream {what} is malformed: expected a string",
        req_id=req_id,
        partial_text="".join(parts),
    )


def _unstreamed_rest(final_text: Any, parts: List[str]) -> str:
    """The end of the final text that no text_stream delivered, if any."""
    if not isinstance(final_text, str):
        return ""
    streamed = "".join(parts)
    if len(final_text) > len(streamed) and final_text.startswith(streamed):
        return final_text[len(streamed):]
    return ""


def _server_message(payload: Any) -> str:
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, str) and message:
            return message
    return "no message from the server"
