"""Server-sent events: an incremental decoder and an encoder.

Pure code, no I/O, no clocks. ``SSEDecoder`` follows the WHATWG
"event stream interpretation" rules exactly (HTML Living Standard, section
9.2.6); the MyShell HTTP chat API streams its reply this way (PROTOCOL.md
section 2.2). Bytes may be fed in pieces of any size: a line end or a UTF-8
character split across two ``feed()`` calls decodes as if it arrived whole.
As the spec says, the stream is decoded as UTF-8 with replacement: invalid
bytes, and a character cut by the end of the stream, become U+FFFD exactly
as ``bytes.decode("utf-8", "replace")`` gives. An event over the size bound
raises ``ProtocolError``; nothing else is raised.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any, NamedTuple

from ._codec import _clip
from ._constants import DEFAULT_MAX_EVENT_SIZE
from ._exceptions import ProtocolError

__all__ = ["DEFAULT_MAX_EVENT_SIZE", "SSEDecoder", "ServerSentEvent", "encode_sse"]

# An event (its data so far plus the line being read) may hold up to
# DEFAULT_MAX_EVENT_SIZE characters; the stream is refused beyond it rather
# than grow memory.

_LINE_END = re.compile(r"[\r\n]")
# One whole event of the usual shape: an optional id line, an optional event
# line and one data line, each field's value after its first colon less one
# leading space, then the blank line that dispatches it (text with no CR).
_FAST_EVENT = re.compile(r"(?:id: ?([^\n]*)\n)?(?:event: ?([^\n]*)\n)?data: ?([^\n]*)\n\n")
_BOM = "\ufeff"


class ServerSentEvent(NamedTuple):
    """One dispatched event.

    ``id`` is the stream's last event id when the event was dispatched (it
    persists across events; None until an ``id`` field is seen). ``retry`` is
    the reconnection time in ms the stream had set by then, or None.
    """

    event: str
    data: str
    id: str | None = None
    retry: int | None = None

    def json(self) -> Any:
        """Return ``data`` parsed as JSON; ``ProtocolError`` if it is not JSON."""
        try:
            return json.loads(self.data)
        except (ValueError, RecursionError):
            raise ProtocolError(f"data of event {self.event!r} is not JSON: {_clip(self.data)}") from None


class SSEDecoder:
    """Turn event-stream bytes into ``ServerSentEvent`` values, incrementally.

    Call ``feed(chunk)`` for every piece of the body as it arrives and
    ``flush()`` once at the end of the body. Per the spec, an event that no
    blank line ended is discarded at the end; ``pending`` tells whether that
    happened, so a transport can report a truncated stream.

    After ``flush()`` the decoder can read a new stream (a reconnection):
    ``last_event_id`` and ``retry`` carry over, as an ``EventSource``'s do.
    After a ``ProtocolError`` the decoder's state is undefined; discard it.
    """

    def __init__(self, max_event_size: int = DEFAULT_MAX_EVENT_SIZE) -> None:
        if max_event_size <= 0:
            raise ValueError("max_event_size must be positive")
        self.max_event_size = max_event_size
        self._last_event_id: str | None = None
        self._retry: int | None = None
        self._truncated = False
        self._reset_stream()

    # ------------------------------------------------------------------
    # Public

    @property
    def last_event_id(self) -> str | None:
        """The last event id the stream set (what ``Last-Event-ID`` resends)."""
        return self._last_event_id

    @property
    def retry(self) -> int | None:
        """The reconnection time in ms the stream asked for, or None."""
        return self._retry

    @property
    def pending(self) -> bool:
        """Whether bytes or fields are waiting for a dispatching blank line.

        True when an unfinished line, an incomplete UTF-8 character or a field
        line (anything but a comment) has been read since the last blank
        line. After ``flush()`` it tells whether ``flush()`` discarded such an
        incomplete event, until the next ``feed()``.
        """
        return self._truncated or self._in_event or bool(self._parts) or bool(self._utf8.getstate()[0])

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode one piece of the body; return the events it completed."""
        self._truncated = False
        return self._feed_text(self._utf8.decode(data))

    def flush(self) -> list[ServerSentEvent]:
        """End the stream: discard an incomplete event and reset for a new one.

        Returns an empty list: at the end of a stream nothing is dispatched.
        """
        truncated = self.pending
        # A character cut by the end becomes U+FFFD on the unfinished line: it
        # cannot end a line, but it counts towards the size bound.
        self._feed_text(self._utf8.decode(b"", final=True))
        self._reset_stream()
        self._truncated = truncated
        return []

    # ------------------------------------------------------------------
    # Lines

    def _reset_stream(self) -> None:
        """Forget everything but the last event id and the retry time."""
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._bom_checked = False
        self._skip_lf = False  # the last chunk ended with CR: a LF now is its pair
        self._parts: list[str] = []  # the unfinished line, in pieces
        self._parts_size = 0
        self._in_event = False
        self._event_type = ""
        self._data: list[str] = []
        self._data_size = 0
        self._id_buffer = self._last_event_id

    def _feed_text(self, text: str) -> list[ServerSentEvent]:
        if not text:
            return []
        pos = 0
        if not self._bom_checked:
            self._bom_checked = True
            if text.startswith(_BOM):
                pos = 1
        if self._skip_lf:
            self._skip_lf = False
            if text.startswith("\n", pos):
                pos += 1
        events: list[ServerSentEvent] = []
        end = len(text)
        # Whole events of the usual shape go through one regular expression
        # each; everything else, line by line. Only where nothing is pending
        # (a line start between two events) and with no CR in the text.
        fast = _FAST_EVENT.match if "\r" not in text else None
        while True:
            if fast is not None and not self._in_event and not self._parts:
                pos = self._fast_events(text, pos, fast, events)
            match = _LINE_END.search(text, pos)
            if match is None:
                break
            cut = match.start()
            line = self._take_line(text[pos:cut])
            if text[cut] == "\r":
                if cut + 1 == end:
                    self._skip_lf = True
                elif text[cut + 1] == "\n":
                    cut += 1
            pos = cut + 1
            event = self._process_line(line)
            if event is not None:
                events.append(event)
        if pos < end:
            self._parts.append(text[pos:])
            self._parts_size += end - pos
            self._check_size(self._data_size + self._parts_size)
        return events

    def _fast_events(self, text: str, pos: int, match: Any, events: list[ServerSentEvent]) -> int:
        """Dispatch the complete ``[id:] [event:] data:`` events at ``pos``
        exactly as the line-by-line path would; return where they end."""
        limit = self.max_event_size
        append = events.append
        new = ServerSentEvent._make
        found = match(text, pos)
        while found is not None and found.end() - pos <= limit:  # no line over the bound
            event_id, event_type, data = found.groups()
            if event_id is not None and "\0" not in event_id:
                self._id_buffer = event_id
            self._last_event_id = self._id_buffer
            append(new((event_type or "message", data, self._last_event_id, self._retry)))
            pos = found.end()
            found = match(text, pos)
        return pos

    def _take_line(self, tail: str) -> str:
        """Return the unfinished line's pieces plus ``tail``, and clear them."""
        if not self._parts:
            return tail
        self._parts.append(tail)
        line = "".join(self._parts)
        self._parts = []
        self._parts_size = 0
        return line

    def _check_size(self, size: int) -> None:
        if size > self.max_event_size:
            raise ProtocolError(f"event stream event exceeds {self.max_event_size} characters")

    # ------------------------------------------------------------------
    # Fields

    def _process_line(self, line: str) -> ServerSentEvent | None:
        """Apply one complete line; return the event a blank line dispatches."""
        if not line:
            return self._dispatch()
        # Checked for comments too, as while the line was unfinished: the
        # outcome must not depend on where the stream was split.
        self._check_size(self._data_size + len(line))
        if line.startswith(":"):
            return None  # a comment
        self._in_event = True
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_size += len(value) + 1
        elif name == "event":
            self._event_type = value
        elif name == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif name == "retry":
            self._set_retry(value)
        # any other field is ignored
        return None

    def _set_retry(self, value: str) -> None:
        if value.isascii() and value.isdigit():
            try:
                self._retry = int(value)
            except ValueError:  # more digits than int() accepts
                pass

    def _dispatch(self) -> ServerSentEvent | None:
        """A blank line: publish the id; dispatch the event if it has data."""
        self._last_event_id = self._id_buffer
        self._in_event = False
        data, event_type = self._data, self._event_type
        self._data, self._data_size, self._event_type = [], 0, ""
        if not data:
            return None
        return ServerSentEvent(event_type or "message", "\n".join(data), self._last_event_id, self._retry)


def encode_sse(data: str, event: str | None = None, id: str | None = None) -> str:
    """Encode one event: ``id:``, ``event:``, one ``data:`` line per data line.

    CR and CRLF in ``data`` become LF, which is what a decoder returns for
    them. The result ends with the blank line that dispatches the event.
    ``event`` and ``id`` must not contain CR or LF (``id`` not NUL either).
    """
    lines = []
    if id is not None:
        if _LINE_END.search(id) or "\0" in id:
            raise ValueError("an event id must not contain CR, LF or NUL")
        lines.append(f"id: {id}")
    if event is not None:
        if _LINE_END.search(event):
            raise ValueError("an event name must not contain CR or LF")
        lines.append(f"event: {event}")
    text = data.replace("\r\n", "\n").replace("\r", "\n")
    lines.extend(f"data: {line}" for line in text.split("\n"))
    return "\n".join(lines) + "\n\n"
