"""One Engine.IO session: an authenticated Socket.IO connection on ``/chat``.

A ``Connection`` owns a websocket-client socket and one daemon reader thread.
The reader is the only caller of ``recv``: it answers pings at once, routes
every event to the mailbox (a ``queue.SimpleQueue``) of the request whose ``reqId``
it carries, and, when the connection dies for any reason, puts a
``ConnectionLostError`` (or the ``ProtocolError`` that killed it) into every
mailbox still registered. All writes go through one lock.

Mailbox items are lists of ``(event_name, payload)`` tuples: the reader reads
the socket in large blocks and hands over every event parsed from a block
together, just before it would wait for more bytes, so a ready chunk is never
held back and a fast stream costs one queue hand-off per block instead of one
per chunk. The event name ``DEAD`` marks a connection failure whose payload
is the exception to raise. A request abandoned by its consumer stays
registered, discarding its frames, until the server ends it (the bot is busy
on this socket until then). The websocket-client specifics live in
``_socket``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import threading
import time
from typing import Any, Callable

import websocket

from .. import _codec
from .._codec import EIO_CLOSE, EIO_MESSAGE, EIO_PING
from .._constants import NAMESPACE
from .._deadline import Limit
from .._exceptions import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    ConnectTimeoutError,
    MyshellConnectionError,
    MyshellError,
    ProtocolError,
    RequestTooLargeError,
)
from .._wording import Wording
from ._socket import BufferedWebSocket, Watchdog, connect_error, kill, refuse_redirect
from .base import CANCELLED, DEAD, TERMINAL_EVENTS, Batch, text_entry

log = logging.getLogger("myshell_sync")


_EVENT_PREFIX = "42" + NAMESPACE + ","
# After a polite close, how long the reader gets once the socket is cut.
_ABORT_GRACE = 0.2
_reader_ids = itertools.count(1)
# A frame longer than this may not fit in the socket buffers, so its send is
# watched against the request's deadline (a server may stop reading).
_WATCHED_SEND_SIZE = 65536


class _Inbox:
    """One request's mailbox plus the events parsed for it from this block."""

    __slots__ = ("queue", "batch", "streaming", "ended", "on_end")

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[Batch] = queue.SimpleQueue()
        self.batch: Batch = []
        self.streaming = False  # a text_stream was routed already
        self.ended = False  # the server sent the reply's last event
        # Set when the consumer abandoned the reply: called once the server
        # ends it (or the connection dies); its frames are discarded.
        self.on_end: Callable[[], None] | None = None


class Connection:
    """One Engine.IO/Socket.IO connection that can serve many requests."""

    def __init__(
        self,
        url: str,
        *,
        auth: Callable[[], dict[str, Any]],
        user_agent: str,
        options: dict[str, Any] | None = None,
        on_account_event: Callable[[str, Any], None] | None = None,
        max_frame_size: int | None = None,
    ) -> None:
        """``auth()`` gives the CONNECT payload; ``options`` are extra
        ``websocket.create_connection`` arguments (proxy, TLS)."""
        self.url = url
        self._auth = auth
        self._user_agent = user_agent
        self._options = options or {}
        self._max_frame_size = max_frame_size
        self._on_account_event = on_account_event
        self._ws: BufferedWebSocket | None = None
        self._reader: threading.Thread | None = None
        self._inboxes: dict[str, _Inbox] = {}
        self._filled: list[_Inbox] = []  # inboxes with a pending batch (reader only)
        self._lock = threading.Lock()  # guards _inboxes, _dead, _closing
        self._write_lock = threading.Lock()  # one writer at a time
        self._dead: MyshellError | None = None
        self._closing = False
        # How open() ended, as its watchdog (the reader thread) sees it:
        # None while connecting, then "go", "abort" or "fired".
        self._open_state: str | None = None
        self.sid: str | None = None
        self.ping_interval = 0.0
        self.ping_timeout = 0.0
        #: The server's ``maxPayload`` (bytes per packet), if it announced one.
        self.max_payload: int | None = None
        #: ``time.monotonic()`` when the namespace connect was acknowledged.
        self.connected_at: float | None = None
        #: ``time.monotonic()`` when the last request on it ended.
        self.last_used = time.monotonic()

    # -- state ---------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the connection can take new requests."""
        return self._dead is None and not self._closing and self._ws is not None

    @property
    def in_flight(self) -> int:
        """Requests whose consumer is still reading."""
        return sum(1 for inbox in list(self._inboxes.values()) if inbox.on_end is None)

    @property
    def draining(self) -> int:
        """Abandoned requests the server has not ended yet."""
        return len(self._inboxes) - self.in_flight

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<Connection {self.url} sid={self.sid} {state} in_flight={self.in_flight}>"

    # -- opening -------------------------------------------------------------

    def open(self, limit: Limit, on_reader_start: Callable[[], None] | None = None) -> None:
        """Connect, read the open packet, join ``/chat``, start the reader.

        Runs on the calling thread, within ``limit``. Raises
        ``MyshellConnectionError`` (``ConnectTimeoutError`` when the limit
        runs out), ``AuthenticationError`` if the namespace is refused, or
        ``ProtocolError`` for a malformed handshake.

        The reader thread is started first and is the watchdog of the whole
        step until the handshake ends (one thread started per connection,
        none joined): when ``limit`` runs out first it cuts the socket, as
        ``Watchdog`` would. ``on_reader_start`` runs on that thread as it
        starts, while this one connects.
        """
        timeout = limit.seconds
        deadline = None if timeout is None else time.monotonic() + timeout
        gate = threading.Lock()
        gate.acquire()  # released once this thread has decided: "go" or "abort"
        reader = self._reader = threading.Thread(
            target=self._reader_main,
            args=(gate, timeout, on_reader_start),
            name=f"myshell-reader-{next(_reader_ids)}",
            daemon=True,
        )
        reader.start()
        try:
            websocket.create_connection(
                self.url,
                timeout=timeout,
                header=[f"User-Agent: {self._user_agent}"],
                skip_utf8_validation=True,
                enable_multithread=True,
                class_=self._new_websocket,  # type: ignore[arg-type]  # any WebSocket factory
                # A redirect could lead a wss:// URL to ws://: never follow one.
                redirect_limit=0,
                **self._options,
            )
            refuse_redirect(self._ws)
            self._handshake(deadline, limit)
            ws = self._ws
            assert isinstance(ws, BufferedWebSocket)
            ws.settimeout(self.ping_interval + self.ping_timeout)
            ws.before_block = self._flush
            if not self._decide("go"):
                raise self._timed_out(limit)
            gate.release()
        except BaseException as exc:
            fired = not self._decide("abort")
            gate.release()
            self._discard_socket()
            reader.join()  # it returns at once now (after cutting the socket if it fired)
            self._reader = None
            if isinstance(exc, MyshellError):
                if fired and isinstance(exc, MyshellConnectionError) and not isinstance(exc, ConnectTimeoutError):
                    raise self._timed_out(limit) from exc
                raise
            if not isinstance(exc, Exception):  # KeyboardInterrupt and the like
                raise
            if fired:
                raise self._timed_out(limit) from exc
            raise connect_error(exc, self.url, limit, self._ws) from exc

    def _decide(self, state: str) -> bool:
        """The opening thread's outcome ("go" or "abort"); False if the
        watchdog fired first (the socket is cut: the step timed out)."""
        with self._lock:
            if self._open_state == "fired":
                return False
            self._open_state = state
            return True

    def _reader_main(self, gate: Any, timeout: float | None, on_start: Callable[[], None] | None) -> None:
        """The reader thread: the watchdog of ``open()``, then the reader."""
        if on_start is not None:
            try:
                on_start()
            except Exception:  # the connection works without it
                log.exception("starting with the reader failed")
        if timeout is None:
            gate.acquire()
        elif not gate.acquire(timeout=max(timeout, 0.0)):
            with self._lock:
                fired = self._open_state is None
                if fired:
                    self._open_state = "fired"
            if fired:
                # During the TCP connect there is no socket to cut yet.
                while True:
                    ws = self._ws
                    if ws is not None and ws.sock is not None:
                        kill(ws)
                        return
                    if gate.acquire(timeout=0.05):
                        return
            gate.acquire()  # decided just now: the gate opens at once
        if self._open_state == "go":
            self._read_loop()

    def _timed_out(self, limit: Limit) -> ConnectTimeoutError:
        error = limit.error(f"connecting to {self.url} (upgrade and handshake)", ConnectTimeoutError)
        assert isinstance(error, ConnectTimeoutError)
        return error

    def _new_websocket(self, **options: Any) -> BufferedWebSocket:
        """``create_connection``'s class: kept (and bounded) before it connects."""
        ws = BufferedWebSocket(**options)
        if self._max_frame_size is not None:
            ws.limit_frames(self._max_frame_size)  # the handshake's frames too
        self._ws = ws
        return ws

    def _handshake(self, deadline: float | None, limit: Limit) -> None:
        opened = _codec.decode_open(self._recv_before(deadline, limit, "the open packet"))
        self.sid = opened.sid
        self.ping_interval = opened.ping_interval
        self.ping_timeout = opened.ping_timeout
        self.max_payload = None if opened.max_payload is None else int(opened.max_payload)
        auth = self._auth()
        self._send(
            _codec.encode_connect(NAMESPACE, auth),
            log_as=_codec.encode_connect(NAMESPACE, _redacted(auth)),
        )
        while True:
            frame = self._recv_before(deadline, limit, "the namespace acknowledgement")
            kind = frame[:1]
            if kind == EIO_PING:
                self._send(_codec.encode_pong(frame))
                continue
            if kind == EIO_CLOSE:
                raise MyshellConnectionError(
                    Wording("the server closed the connection during the handshake; check {s.base_url} and try again")
                )
            if kind != EIO_MESSAGE:
                continue
            packet = _codec.decode_sio(frame[1:])
            if packet.namespace != NAMESPACE:
                continue
            if packet.type == _codec.SIO_CONNECT:
                self.connected_at = time.monotonic()
                return
            if packet.type == _codec.SIO_CONNECT_ERROR:
                reason = _message_of(packet.data)
                raise AuthenticationError(
                    Wording(
                        "the server refused the {namespace} namespace ({reason}); "
                        "check {s.the_token} (or MYSHELL_TOKEN)",
                        {"namespace": NAMESPACE, "reason": reason},
                    )
                )
            if packet.type == _codec.SIO_DISCONNECT:
                raise AuthenticationError(
                    Wording(
                        "the server closed the {namespace} namespace during the handshake; "
                        "check {s.the_token} (or MYSHELL_TOKEN)",
                        {"namespace": NAMESPACE},
                    )
                )

    def _recv_before(self, deadline: float | None, limit: Limit, what: str) -> str:
        ws = self._ws
        assert ws is not None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise limit.error(f"waiting for {what} from {self.url}", ConnectTimeoutError)
            ws.settimeout(remaining)
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            raise limit.error(f"waiting for {what} from {self.url}", ConnectTimeoutError) from None
        if frame == "" and not ws.connected:  # websocket-client's value for a close frame
            raise MyshellConnectionError(
                Wording(
                    "the server closed the connection while we waited for {what}; check {s.base_url} and try again",
                    {"what": what},
                )
            )
        if not isinstance(frame, str):
            raise ProtocolError(f"expected a text frame with {what}, got binary data")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("< %s", frame)
        return frame

    # -- requests ------------------------------------------------------------

    def register(self, req_id: str) -> queue.SimpleQueue[Batch]:
        """A mailbox that receives every event carrying ``req_id``, in batches."""
        inbox = _Inbox()
        with self._lock:
            if self._dead is not None:
                raise _copy_error(self._dead)
            self._inboxes[req_id] = inbox
        return inbox.queue

    def unregister(self, req_id: str) -> None:
        """Stop routing ``req_id``; late frames for it are discarded."""
        with self._lock:
            self._inboxes.pop(req_id, None)
        self.last_used = time.monotonic()

    def abandon(self, req_id: str, on_end: Callable[[], None]) -> None:
        """The consumer left before the reply ended: discard its frames and
        call ``on_end`` (once, from the reader) when the server ends it or
        the connection dies."""
        with self._lock:
            inbox = self._inboxes.get(req_id)
            waits = inbox is not None and self._dead is None and not inbox.ended
            if waits:
                inbox.on_end = on_end  # type: ignore[union-attr]
            else:
                self._inboxes.pop(req_id, None)
        self.last_used = time.monotonic()
        if not waits:  # the reply is over already (or the connection is)
            on_end()

    def cancel(self, req_id: str) -> None:
        """Wake the consumer of ``req_id`` with ``CANCELLED`` (any thread)."""
        with self._lock:
            inbox = self._inboxes.get(req_id)
        if inbox is not None:
            inbox.queue.put([(CANCELLED, None)])

    def emit(self, event: str, payload: Any, limit: Limit) -> None:
        """Send one Socket.IO event on ``/chat``.

        A frame over the server's ``maxPayload`` raises
        ``RequestTooLargeError`` and nothing is sent. A large frame blocks
        until the server reads it: its send gives up when ``limit`` runs out
        (``MyshellTimeoutError``) and the connection dies.
        """
        self.emit_frame(_codec.encode_event(NAMESPACE, event, payload), event, limit)

    def emit_frame(self, frame: str, event: str, limit: Limit) -> None:
        """:meth:`emit` of an event packet encoded already (``frame``)."""
        if self._dead is not None:
            raise _copy_error(self._dead)
        self._check_size(frame, event)
        timeout = limit.seconds
        watchdog = None
        if timeout is not None and len(frame) > _WATCHED_SEND_SIZE:
            watchdog = Watchdog(lambda: self._ws, timeout)
        try:
            with watchdog or contextlib.nullcontext():
                self._send(frame)
        except MyshellError:
            raise
        except Exception as exc:
            if watchdog is not None and watchdog.fired:
                self._die(ConnectionLostError(f"the server stopped reading while we sent {event}"))
                raise limit.error(f"sending {event} (the server stopped reading)") from exc
            lost = ConnectionLostError(f"could not send {event}: {exc.__class__.__name__}: {exc}")
            self._die(lost)
            raise _copy_error(lost) from exc
        except BaseException:
            # Ctrl-C mid-send may leave half a frame on the wire.
            self._die(ConnectionLostError(f"interrupted while sending {event}"))
            raise

    def _check_size(self, frame: str, event: str) -> None:
        limit = self.max_payload
        # Cheap bound first: a str never encodes to more than 4 bytes a char.
        if limit is None or len(frame) * 4 <= limit:
            return
        size = len(frame.encode("utf-8", "surrogatepass"))
        if size > limit:
            raise RequestTooLargeError(
                f"the {event} message is {size} bytes, over the server's limit of {limit} bytes "
                "(maxPayload); send a shorter prompt or fewer messages",
                size=size,
                limit=limit,
            )

    def _send(self, frame: str, *, log_as: str | None = None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("> %s", frame if log_as is None else log_as)
        ws = self._ws
        if ws is None:
            raise ConnectionLostError("the connection is closed")
        with self._write_lock:
            ws.send_text_frame(frame)

    # -- the reader thread ---------------------------------------------------

    def _read_loop(self) -> None:
        ws = self._ws
        assert ws is not None
        recv = ws.recv
        fast_event = _codec.decode_event_frame
        route = self._route
        error: MyshellError
        try:
            while True:
                try:
                    frame = recv()
                except websocket.WebSocketTimeoutException:
                    error = ConnectionLostError(
                        f"no ping from the server for "
                        f"{self.ping_interval + self.ping_timeout:g}s "
                        "(pingInterval + pingTimeout); the connection is dead"
                    )
                    break
                if frame.__class__ is str and frame:
                    if log.isEnabledFor(logging.DEBUG):
                        log.debug("< %s", frame)
                    event = fast_event(frame, _EVENT_PREFIX)
                    if event is not None:
                        route(event[0], event[1] if len(event) > 1 else None)
                    elif frame[0] == EIO_PING:
                        self._answer(_codec.encode_pong(frame))
                    elif frame[0] == EIO_MESSAGE:
                        self._on_sio(frame[1:])
                    elif frame[0] == EIO_CLOSE:
                        error = ConnectionLostError("the server closed the connection")
                        break
                    elif not _codec.is_eio_type(frame[0]):
                        raise ProtocolError(f"not an Engine.IO packet: {frame!r:.80}")
                elif frame.__class__ is str:
                    # websocket-client returns "" for a close frame (after
                    # which it is no longer connected) and for an empty text frame.
                    if ws.connected:
                        raise ProtocolError("the server sent an empty text frame")
                    error = ConnectionLostError("the server closed the WebSocket")
                    break
                else:
                    # Binary frames are Socket.IO attachments (audio); unused.
                    log.debug("< binary frame of %d bytes ignored", len(frame))
        except MyshellError as exc:
            error = exc
        except UnicodeDecodeError:
            error = ProtocolError("the server sent a text frame that is not UTF-8")
        except (websocket.WebSocketProtocolException, websocket.WebSocketPayloadException) as exc:
            error = ProtocolError(f"the server broke the WebSocket protocol: {exc}")
        except (websocket.WebSocketException, OSError, ValueError) as exc:
            error = ConnectionLostError(f"the connection dropped: {exc.__class__.__name__}: {exc}")
        except BaseException as exc:  # never die silently
            log.exception("reader thread failed")
            error = MyshellError(f"the reader thread failed: {exc!r}")
        if self._closing:
            error = ClientClosedError()
        self._die(error)

    def _answer(self, frame: str) -> None:
        """Send a pong or an ack from the reader thread.

        If the peer is gone (reset, closed), frames it sent before may still
        wait in the socket: keep reading them; the next read fails anyway.
        """
        try:
            self._send(frame)
        except (ConnectionLostError, websocket.WebSocketConnectionClosedException, OSError) as exc:
            log.debug("could not answer %r: %s", frame[:20], exc)

    def _flush(self) -> None:
        """Hand every pending batch to its consumer (reader thread only)."""
        filled = self._filled
        for inbox in filled:
            batch = inbox.batch
            inbox.batch = []
            inbox.queue.put(batch)
        filled.clear()

    def _on_sio(self, text: str) -> None:
        packet = _codec.decode_sio(text)
        if packet.namespace != NAMESPACE:
            log.debug("ignored packet for namespace %s", packet.namespace)
            return
        ptype = packet.type
        if ptype == _codec.SIO_EVENT or ptype == _codec.SIO_BINARY_EVENT:
            data = packet.data
            self._route(data[0], data[1] if len(data) > 1 else None)
            if packet.ack_id is not None:
                self._answer(_codec.encode_ack(NAMESPACE, packet.ack_id))
        elif ptype == _codec.SIO_DISCONNECT:
            raise ConnectionLostError(f"the server left the {NAMESPACE} namespace")
        elif ptype == _codec.SIO_CONNECT_ERROR:
            raise AuthenticationError(f"the server refused the {NAMESPACE} namespace ({_message_of(packet.data)})")

    def _route(self, name: str, payload: Any) -> None:
        req_id = payload.get("reqId") if payload.__class__ is dict else None
        if req_id is not None:
            inbox = self._inboxes.get(req_id)
            if inbox is None:
                log.debug("ignored %s for unknown reqId %r", name, req_id)
                return
            if name == "text_stream":
                # Keep only what the reply needs, not the decoded frame.
                entry, last = text_entry(payload.get("data"))
            else:
                entry = (name, payload)
                last = name in TERMINAL_EVENTS
            if last and self._ends(req_id, inbox):
                return
            if inbox.on_end is not None:
                return  # an abandoned reply: its frames are discarded
            if not inbox.batch:
                self._filled.append(inbox)
            inbox.batch.append(entry)
            if name == "text_stream" and not inbox.streaming:
                inbox.streaming = True
                if not last:
                    # The first chunk of a longer reply goes out at once,
                    # and its reader may run now: a block can hold
                    # hundreds of frames after it.
                    self._flush()
                    time.sleep(0)
            return
        if name == "exception":
            # An exception with no reqId concerns the socket, so every reply on
            # it fails (the web client's helper closes the socket too).
            self._fail_all(("exception", payload))
            return
        if self._on_account_event is not None:
            self._on_account_event(name, payload)

    def _ends(self, req_id: str, inbox: _Inbox) -> bool:
        """The server ended ``req_id`` (reader only). True if its consumer had
        abandoned it: the reply is over and its bot free on this connection."""
        with self._lock:
            abandoned = inbox.on_end is not None
            if abandoned:
                self._inboxes.pop(req_id, None)
            else:
                inbox.ended = True
        if abandoned:
            self._end_abandoned([inbox])
        return abandoned

    @staticmethod
    def _end_abandoned(inboxes: list[_Inbox]) -> None:
        for inbox in inboxes:
            on_end, inbox.on_end = inbox.on_end, None
            if on_end is not None:
                try:
                    on_end()
                except Exception:  # the reader must go on
                    log.exception("ending an abandoned reply failed")

    def _fail_all(self, item: tuple[str, Any]) -> None:
        self._flush()
        with self._lock:
            inboxes = [inbox for inbox in self._inboxes.values() if inbox.on_end is None]
        for inbox in inboxes:
            inbox.queue.put([item])

    def _die(self, error: MyshellError) -> None:
        if threading.current_thread() is self._reader:
            self._flush()  # chunks parsed before the failure come first
        with self._lock:
            if self._dead is None:
                self._dead = error
            inboxes = [inbox for inbox in self._inboxes.values() if inbox.on_end is None]
            abandoned = [inbox for inbox in self._inboxes.values() if inbox.on_end is not None]
        if inboxes and not self._closing:
            log.warning("connection %s failed with %d replies in flight: %s", self.sid, len(inboxes), error)
        self._discard_socket()
        for inbox in inboxes:
            inbox.queue.put([(DEAD, _copy_error(error))])
        self._end_abandoned(abandoned)

    # -- closing -------------------------------------------------------------

    def close(self, timeout: float) -> None:
        """Leave the namespace, close the socket, join the reader (bounded)."""
        deadline = time.monotonic() + timeout
        self.begin_close(timeout / 4)
        self.finish_close(deadline)

    def begin_close(self, timeout: float) -> None:
        """Stop taking requests and say goodbye (``41/chat,`` + close frame)."""
        with self._lock:
            already = self._closing
            self._closing = True
        if not already:
            self._say_goodbye(min(timeout, 1.0))

    def finish_close(self, deadline: float) -> None:
        """Wait for the reader until ``deadline``; then cut the socket."""
        reader = self._reader
        if reader is None or reader is threading.current_thread():
            self._discard_socket()
            return
        reader.join(max(deadline - time.monotonic() - _ABORT_GRACE, 0))
        if reader.is_alive():
            self._discard_socket()
            reader.join(_ABORT_GRACE)
            if reader.is_alive():
                log.warning("reader thread %s did not stop in time", reader.name)

    def _say_goodbye(self, timeout: float) -> None:
        """Send ``41/chat,`` and a close frame, unless a writer is stuck."""
        ws = self._ws
        if self._dead is not None or ws is None:
            return
        if not self._write_lock.acquire(timeout=timeout):
            kill(ws)  # a send is blocked: the server stopped reading
            return
        try:
            ws.settimeout(timeout)
            ws.send_goodbye(_codec.encode_disconnect(NAMESPACE))
        except Exception:  # the socket may already be gone
            kill(ws)
        finally:
            self._write_lock.release()

    def _discard_socket(self) -> None:
        ws = self._ws
        if ws is not None:
            kill(ws)


def _copy_error(error: MyshellError) -> MyshellError:
    """A fresh instance, so each reply can attach its own partial text."""
    return error.__class__(error.wording or error.message)


def _message_of(data: Any) -> str:
    message = data.get("message") if isinstance(data, dict) else None
    return message if isinstance(message, str) else "no reason given"


def _redacted(auth: dict[str, Any]) -> dict[str, Any]:
    """The auth payload with its token hidden, for DEBUG logs."""
    if auth.get("token") is None:
        return auth
    return {**auth, "token": "***"}
