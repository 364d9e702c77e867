"""What the events of one reply mean: chunks, the end, or an error.

``iter_reply`` consumes a request's mailbox (filled by a transport's thread)
on the caller's thread, with bounded waits, and yields text deltas. The same
for every transport: ``Timeout.first_chunk`` is the wait for the first text
(or the end, or an error; acknowledgements do not end it), ``Timeout.idle``
the silence between two events after that, ``Timeout.total`` the whole call.
"""

from __future__ import annotations

import queue
import re
from collections.abc import Generator
from typing import Any, NoReturn

from ._constants import FINAL_GRACE, WAIT_SLICE
from ._deadline import Deadline, Limit
from ._exceptions import (
    AuthenticationError,
    CaptchaRequiredError,
    InsufficientEnergyError,
    MyshellError,
    ProtocolError,
    ServerError,
)
from ._wording import Wording
from .transports.base import CANCELLED, DEAD, END, ERROR_EVENT_NAMES, MALFORMED, Batch, Cancelled

# Terminal error events: the error class and what the caller can do about it
# (a ``Wording`` template: settings are ``{s.<term>}`` fields).
ERROR_EVENTS: dict[str, tuple[type[MyshellError], str]] = {
    "need_verify_captcha": (
        CaptchaRequiredError,
        "the server asks for a captcha; wait a while, keep {s.captcha_delay} at its default, or log in with {s.token}",
    ),
    "no_enough_energy": (
        InsufficientEnergyError,
        "the account is out of energy; wait for the daily refill or use another account",
    ),
    "chat_login_popup": (
        AuthenticationError,
        "this bot needs a logged-in account; pass {s.token} or set MYSHELL_TOKEN",
    ),
    "auth_fail": (
        AuthenticationError,
        "the server rejected the account; check {s.the_token} (or MYSHELL_TOKEN)",
    ),
    "message_error": (ServerError, "the server could not handle the message; retry later"),
    "exception": (ServerError, "the server failed; retry later"),
}
assert set(ERROR_EVENTS) == ERROR_EVENT_NAMES


def iter_reply(
    mailbox: queue.SimpleQueue[Batch], req_id: str, deadline: Deadline, parts: list[str] | None = None
) -> Generator[str, None, dict[str, Any] | None]:
    """Yield the reply's text deltas; return the ``message_replied`` payload.

    Returns None when the reply ended by the grace period after an
    ``isFinal`` frame rather than by ``message_replied``. Raises
    ``Cancelled`` when the caller cancelled it from another thread.
    Every delta is appended to ``parts`` (given: the caller's list) before
    it is yielded.
    """
    if parts is None:
        parts = []
    text = SurrogateJoiner()
    clock = _Waits(deadline, req_id)
    get = mailbox.get
    while True:
        try:
            batch = get(timeout=WAIT_SLICE)
        except queue.Empty:
            if clock.expired(parts):
                return None  # the grace period after isFinal is over
            continue
        clock.event(parts)
        for entry in batch:
            if entry.__class__ is str:  # the usual item: a chunk that is not the last
                if entry:
                    clock.text()
                    delta = text.feed(entry)
                    if delta:
                        parts.append(delta)
                        yield delta
                continue
            name, payload = entry
            if name == "text_stream":
                delta, is_final = _stream_text(payload, req_id, parts)
                if delta:
                    clock.text()
                    delta = text.feed(delta)
                    if delta:
                        parts.append(delta)
                        yield delta
                if is_final:
                    clock.final()
            elif name == "message_replied" or name == END:
                rest = text.flush()  # a high surrogate held at the very end
                if rest:
                    parts.append(rest)
                    yield rest
                return None if name == END else (yield from _replied(payload, req_id, parts))
            elif name == DEAD:
                error: MyshellError = payload
                error.req_id = req_id
                error.partial_text = "".join(parts)
                raise error
            elif name == CANCELLED:
                raise Cancelled()
            elif name in ERROR_EVENTS:
                cls, advice = ERROR_EVENTS[name]
                raise cls(
                    Wording("{name}: {server}; " + advice, {"name": name, "server": _server_message(payload)}),
                    req_id=req_id,
                    partial_text="".join(parts),
                )
            # message_sent, reply_message_created and others carry no text.


def _replied(payload: dict[str, Any], req_id: str, parts: list[str]) -> Generator[str, None, dict[str, Any]]:
    """End of the reply: yield any text no delta carried; return the message."""
    message = payload.get("data")
    if not isinstance(message, dict):
        message = {}
    if message.get("type") == "NEED_TO_REGISTER":
        raise AuthenticationError(
            Wording("this bot needs a logged-in account; pass {s.token} or set MYSHELL_TOKEN"),
            req_id=req_id,
            partial_text="".join(parts),
        )
    rest = _unstreamed_rest(message.get("text"), parts)
    if rest:
        parts.append(rest)
        yield rest
    return message


class _Waits:
    """The waits of one reply: first text, between events, total, grace."""

    def __init__(self, deadline: Deadline, req_id: str) -> None:
        self.deadline = deadline
        self.req_id = req_id
        self.started = self.last_event = deadline.now()  # the request was sent
        self.got_text = False
        self.final_at: float | None = None

    def event(self, parts: list[str]) -> None:
        self.last_event = self.deadline.now()
        if self.deadline.expired():
            self._raise(self.deadline.total(), "the whole reply", parts)

    def text(self) -> None:
        self.got_text = True

    def final(self) -> None:
        if self.final_at is None:
            self.final_at = self.deadline.now()

    def expired(self, parts: list[str]) -> bool:
        """True when the grace period is over; raises when a timeout is."""
        deadline = self.deadline
        now = deadline.now()
        if self.final_at is not None and now - self.final_at >= FINAL_GRACE:
            return True
        if deadline.expired():
            self._raise(deadline.total(), "the whole reply", parts)
        if self.final_at is not None:
            return False
        timeout = deadline.timeout
        if not self.got_text:
            # Acknowledgements do not end the wait for the first text.
            name, limit, what = "first_chunk", timeout.first_chunk, "the first chunk"
            since = self.started
        else:
            name, limit, what = "idle", timeout.idle, "the next event"
            since = self.last_event
        if limit is not None and now - since >= limit:
            self._raise(Limit(0.0, name, limit), what, parts)
        return False

    def _raise(self, limit: Limit, what: str, parts: list[str]) -> NoReturn:
        error = limit.error(f"waiting for {what} of request {self.req_id}", req_id=self.req_id)
        error.partial_text = "".join(parts)
        raise error


def _stream_text(item: tuple[Any, bool], req_id: str, parts: list[str]) -> tuple[str, bool]:
    text, is_final = item
    if text.__class__ is str:
        return text, is_final
    if text is None:  # JSON null: no text on this frame
        return "", is_final
    what = "data" if text is MALFORMED else f"data.text ({type(text).__name__})"
    raise ProtocolError(
        f"text_stream {what} is malformed: expected a string",
        req_id=req_id,
        partial_text="".join(parts),
    )


def _unstreamed_rest(final_text: Any, parts: list[str]) -> str:
    """The end of the final text that no text_stream delivered, if any."""
    if not isinstance(final_text, str):
        return ""
    streamed = "".join(parts)
    if len(final_text) > len(streamed) and final_text.startswith(streamed):
        return final_text[len(streamed) :]
    return ""


class SurrogateJoiner:
    """Never yield a lone UTF-16 surrogate.

    A server that slices text by UTF-16 code units (any JavaScript server)
    can send ``"a\\ud83d"`` then ``"\\ude00b"``. A trailing high surrogate is
    held until the next chunk and joined with its low half; a surrogate
    with no partner becomes U+FFFD.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held = ""

    def feed(self, text: str) -> str:
        if self._held:
            text, self._held = self._held + text, ""
        if text.isascii() or not _SURROGATE.search(text):
            return text
        if "\ud800" <= text[-1] <= "\udbff":
            text, self._held = text[:-1], text[-1]
        return _PAIR_OR_LONE.sub(_join_pair, text)

    def flush(self) -> str:
        """What is held at the end: a lone high surrogate, as U+FFFD."""
        held, self._held = self._held, ""
        return "\ufffd" if held else ""


_SURROGATE = re.compile("[\ud800-\udfff]")
_PAIR_OR_LONE = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")


def _join_pair(match: re.Match[str]) -> str:
    pair = match.group()
    if len(pair) == 1:
        return "\ufffd"
    return chr(0x10000 + ((ord(pair[0]) - 0xD800) << 10) + (ord(pair[1]) - 0xDC00))


def _server_message(payload: Any) -> str:
    if isinstance(payload, dict):
        message = payload.get("message")
        if isinstance(message, str) and message:
            return message
    return "no message from the server"
