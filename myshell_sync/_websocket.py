"""The WebSocket transport: one authenticated Socket.IO connection on ``/chat``.

A ``Connection`` owns a websocket-client socket and one daemon reader thread.
The reader is the only caller of ``recv``: it answers pings at once, routes
every event to the mailbox (a ``queue.Queue``) of the request whose ``reqId``
it carries, and, when the connection dies for any reason, puts a
``ConnectionLostError`` (or the ``ProtocolError`` that killed it) into every
mailbox still registered. All writes go through one lock.

Mailbox items are lists of ``(event_name, payload)`` tuples: the reader reads
the socket in large blocks and hands over every event parsed from a block
together, just before it would wait for more bytes, so a ready chunk is never
held back and a fast stream costs one queue hand-off per block instead of one
per chunk. The event name ``DEAD`` marks a connection failure whose payload
is the exception to raise.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import queue
import socket
import ssl
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import websocket

from . import _codec
from ._codec import EIO_CLOSE, EIO_MESSAGE, EIO_PING
from ._constants import NAMESPACE
from ._exceptions import (
    AuthenticationError,
    ClientClosedError,
    ConnectionLostError,
    ConnectTimeoutError,
    MyshellConnectionError,
    MyshellError,
    MyshellTimeoutError,
    ProtocolError,
)
from ._reply import DEAD, Batch, text_item

log = logging.getLogger("myshell_sync")


_EVENT_PREFIX = "42" + NAMESPACE + ","
# After a polite close, how long the reader gets once the socket is cut.
_ABORT_GRACE = 0.2
_reader_ids = itertools.count(1)
# Bytes asked of the socket per read on an open connection.
_READ_SIZE = 65536
# A frame longer than this may not fit in the socket buffers, so its send is
# watched against the request's deadline (a server may stop reading).
_WATCHED_SEND_SIZE = 65536


class _BufferedWebSocket(websocket.WebSocket):
    """websocket-client's WebSocket reading the socket in large blocks.

    websocket-client asks the socket for exactly the bytes each frame part
    needs (two header bytes, the length, the payload): several system calls
    per frame. Here one read fills a block that the frame parser consumes;
    ``before_block`` runs whenever the block is used up and a read that may
    wait is next.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._block = b""
        self._pos = 0
        self.before_block: Optional[Callable[[], None]] = None
        self._frames = _BoundedFrameBuffer(self._recv, self.frame_buffer.skip_utf8_validation)
        self.frame_buffer = self._frames
        self._messages = _BoundedContinuousFrame(
            self.cont_frame.fire_cont_frame, self.cont_frame.skip_utf8_validation
        )
        self.cont_frame = self._messages

    def limit_frames(self, max_size: int) -> None:
        """Fail (ProtocolError) on a frame announcing more than ``max_size``
        bytes, or on a fragmented message growing past it."""
        self._frames.max_size = max_size
        self._messages.max_size = max_size

    def pong(self, payload: Any = "") -> None:
        """Answer a WebSocket ping (from inside ``recv``). If the peer is gone,
        what it sent before may still wait in the socket: keep reading it."""
        try:
            super().pong(payload)
        except (OSError, websocket.WebSocketConnectionClosedException):
            pass

    def _recv(self, bufsize: int) -> bytes:
        block = self._block
        pos = self._pos
        if pos >= len(block):
            hook = self.before_block
            if hook is not None:
                hook()
            block = self._block = super()._recv(_READ_SIZE)
            pos = 0
        self._pos = pos + bufsize
        return block[pos:pos + bufsize]


class _BoundedFrameBuffer(websocket._abnf.frame_buffer):
    """websocket-client's frame parser, refusing frames over a size limit
    before reading their payload (so a huge frame cannot exhaust memory)."""

    max_size: Optional[int] = None

    def recv_length(self) -> None:
        super().recv_length()
        length = self.length
        if self.max_size is not None and length is not None and length > self.max_size:
            raise ProtocolError(
                f"the server sent a {length}-byte frame, over the {self.max_size}-byte "
                "limit (max_event_size)"
            )


class _BoundedContinuousFrame(websocket._abnf.continuous_frame):
    """websocket-client's message reassembly, refusing a fragmented message
    that grows past a size limit, and joining fragments once (not copying
    the message so far for every fragment)."""

    max_size: Optional[int] = None

    def add(self, frame: websocket.ABNF) -> None:
        data = self.cont_data
        if data is None:  # the first frame of a message
            if frame.opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
                self.recving_frames = frame.opcode
            self.cont_data = data = [frame.opcode, [frame.data], len(frame.data)]
        else:
            data[1].append(frame.data)
            data[2] += len(frame.data)
            if self.max_size is not None and data[2] > self.max_size:
                raise ProtocolError(
                    f"the server sent a fragmented message of over {self.max_size} bytes, "
                    "over the limit (max_event_size)"
                )
        if frame.fin:
            self.recving_frames = None

    def extract(self, frame: websocket.ABNF) -> tuple:
        data = self.cont_data
        if data is None:
            raise websocket.WebSocketProtocolException("No continuation data available")
        self.cont_data = None
        parts = data[1]
        frame.data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data[0], frame


class _Watchdog:
    """Cuts the connection's socket when a blocking step outlives its time.

    Socket timeouts bound each read or write, not a whole step: a server
    trickling bytes (or reading very slowly) could stretch an upgrade, a
    handshake or one large send without limit. This thread waits until the
    time is up and then shuts the socket down, which wakes the blocked call
    with an error; ``fired`` tells the caller why it failed.
    """

    def __init__(self, ws_of: Callable[[], Optional[websocket.WebSocket]], timeout: float) -> None:
        self.fired = False
        self._ws_of = ws_of
        self._timeout = max(timeout, 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="myshell-watchdog", daemon=True)

    def __enter__(self) -> "_Watchdog":
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self._done.set()
        self._thread.join()

    def _watch(self) -> None:
        if self._done.wait(self._timeout):
            return
        self.fired = True
        while True:  # during the TCP connect there is no socket to cut yet
            ws = self._ws_of()
            if ws is not None and ws.sock is not None:
                _cut(ws)
                return
            if self._done.wait(0.05):
                return


class _Inbox:
    """One request's mailbox plus the events parsed for it from this block."""

    __slots__ = ("queue", "batch", "streaming")

    def __init__(self) -> None:
        self.queue: "queue.Queue[Batch]" = queue.Queue()
        self.batch: Batch = []
        self.streaming = False  # a text_stream was routed already


class Connection:
    """One Engine.IO/Socket.IO connection that can serve many requests."""

    def __init__(
        self,
        url: str,
        *,
        auth: Callable[[], Dict[str, Any]],
        user_agent: str,
        options: Optional[Dict[str, Any]] = None,
        on_account_event: Optional[Callable[[str, Any], None]] = None,
        max_frame_size: Optional[int] = None,
    ) -> None:
        """``auth()`` gives the CONNECT payload; ``options`` are extra
        ``websocket.create_connection`` arguments (proxy, TLS)."""
        self.url = url
        self._auth = auth
        self._user_agent = user_agent
        self._options = options or {}
        self._max_frame_size = max_frame_size
        self._on_account_event = on_account_event
        self._ws: Optional[websocket.WebSocket] = None
        self._reader: Optional[threading.Thread] = None
        self._inboxes: Dict[str, _Inbox] = {}
        self._filled: List[_Inbox] = []  # inboxes with a pending batch (reader only)
        self._lock = threading.Lock()  # guards _inboxes, _dead, _closing
        self._write_lock = threading.Lock()  # one writer at a time
        self._dead: Optional[MyshellError] = None
        self._closing = False
        self.sid: Optional[str] = None
        self.ping_interval = 0.0
        self.ping_timeout = 0.0
        #: ``time.monotonic()`` when the namespace connect was acknowledged.
        self.connected_at: Optional[float] = None
        #: ``time.monotonic()`` when the last request on it ended.
        self.last_used = time.monotonic()

    # -- state ---------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """True while the connection can take new requests."""
        return self._dead is None and not self._closing and self._ws is not None

    @property
    def in_flight(self) -> int:
        return len(self._inboxes)

    def __repr__(self) -> str:
        state = "alive" if self.alive else "dead"
        return f"<Connection {self.url} sid={self.sid} {state} in_flight={self.in_flight}>"

    # -- opening -------------------------------------------------------------

    def open(self, timeout: Optional[float]) -> None:
        """Connect, read the open packet, join ``/chat``, start the reader.

        Runs on the calling thread. Raises ``MyshellConnectionError``
        (``ConnectTimeoutError`` when ``timeout`` runs out),
        ``AuthenticationError`` if the namespace is refused, or
        ``ProtocolError`` for a malformed handshake.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        watchdog = None if timeout is None else _Watchdog(lambda: self._ws, timeout)
        try:
            with watchdog or contextlib.nullcontext():
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
                self._handshake(deadline)
            if watchdog is not None and watchdog.fired:
                raise self._connect_timeout(timeout)
        except MyshellError as exc:
            self._discard_socket()
            if watchdog is not None and watchdog.fired and isinstance(exc, MyshellConnectionError):
                raise self._connect_timeout(timeout) from exc
            raise
        except Exception as exc:
            self._discard_socket()
            if watchdog is not None and watchdog.fired:
                raise self._connect_timeout(timeout) from exc
            raise _connect_error(exc, self.url, timeout, self._ws) from exc
        except BaseException:
            self._discard_socket()
            raise
        ws = self._ws
        assert isinstance(ws, _BufferedWebSocket)
        ws.settimeout(self.ping_interval + self.ping_timeout)
        ws.before_block = self._flush
        self._reader = threading.Thread(
            target=self._read_loop,
            name=f"myshell-reader-{next(_reader_ids)}",
            daemon=True,
        )
        self._reader.start()

    def _new_websocket(self, **options: Any) -> _BufferedWebSocket:
        """``create_connection``'s class: kept (and bounded) before it connects."""
        ws = _BufferedWebSocket(**options)
        if self._max_frame_size is not None:
            ws.limit_frames(self._max_frame_size)  # the handshake's frames too
        self._ws = ws
        return ws

    def _connect_timeout(self, timeout: Optional[float]) -> ConnectTimeoutError:
        return ConnectTimeoutError(
            f"connecting to {self.url} (upgrade and handshake) took longer than {timeout}s; "
            "raise Timeout.connect or check the server"
        )

    def _handshake(self, deadline: Optional[float]) -> None:
        opened = _codec.decode_open(self._recv_before(deadline, "the open packet"))
        self.sid = opened.sid
        self.ping_interval = opened.ping_interval
        self.ping_timeout = opened.ping_timeout
        auth = self._auth()
        self._send(
            _codec.encode_connect(NAMESPACE, auth),
            log_as=_codec.encode_connect(NAMESPACE, _redacted(auth)),
        )
        while True:
            frame = self._recv_before(deadline, "the namespace acknowledgement")
            kind = frame[:1]
            if kind == EIO_PING:
                self._send(_codec.encode_pong(frame))
                continue
            if kind == EIO_CLOSE:
                raise MyshellConnectionError(
                    "the server closed the connection during the handshake; "
                    "check base_url and try again"
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
                    f"the server refused the {NAMESPACE} namespace ({reason}); "
                    "check the token (or MYSHELL_TOKEN)"
                )
            if packet.type == _codec.SIO_DISCONNECT:
                raise AuthenticationError(
                    f"the server closed the {NAMESPACE} namespace during the "
                    "handshake; check the token (or MYSHELL_TOKEN)"
                )

    def _recv_before(self, deadline: Optional[float], what: str) -> str:
        ws = self._ws
        assert ws is not None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ConnectTimeoutError(f"timed out waiting for {what} from {self.url}")
            ws.settimeout(remaining)
        try:
            frame = ws.recv()
        except websocket.WebSocketTimeoutException:
            raise ConnectTimeoutError(
                f"timed out waiting for {what} from {self.url}; "
                "raise Timeout.connect or check the server"
            ) from None
        if frame == "" and not ws.connected:  # websocket-client's value for a close frame
            raise MyshellConnectionError(
                f"the server closed the connection while we waited for {what}; "
                "check base_url and try again"
            )
        if not isinstance(frame, str):
            raise ProtocolError(f"expected a text frame with {what}, got binary data")
        if log.isEnabledFor(logging.DEBUG):
            log.debug("< %s", frame)
        return frame

    # -- requests ------------------------------------------------------------

    def register(self, req_id: str) -> "queue.Queue[Batch]":
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

    def emit(self, event: str, payload: Any, timeout: Optional[float] = None) -> None:
        """Send one Socket.IO event on ``/chat``.

        A large frame blocks until the server reads it: with ``timeout``, its
        send gives up after that many seconds (``MyshellTimeoutError``) and
        the connection dies.
        """
        if self._dead is not None:
            raise _copy_error(self._dead)
        frame = _codec.encode_event(NAMESPACE, event, payload)
        watchdog = None
        if timeout is not None and len(frame) > _WATCHED_SEND_SIZE:
            watchdog = _Watchdog(lambda: self._ws, timeout)
        try:
            with watchdog or contextlib.nullcontext():
                self._send(frame)
        except MyshellError:
            raise
        except Exception as exc:
            if watchdog is not None and watchdog.fired:
                self._die(ConnectionLostError(f"the server stopped reading while we sent {event}"))
                raise MyshellTimeoutError(
                    f"sending {event} took longer than {timeout:g}s: the server stopped "
                    "reading; retry later"
                ) from exc
            lost = ConnectionLostError(f"could not send {event}: {exc.__class__.__name__}: {exc}")
            self._die(lost)
            raise _copy_error(lost) from exc
        except BaseException:
            # Ctrl-C mid-send may leave half a frame on the wire.
            self._die(ConnectionLostError(f"interrupted while sending {event}"))
            raise

    def _send(self, frame: str, *, log_as: Optional[str] = None) -> None:
        if log.isEnabledFor(logging.DEBUG):
            log.debug("> %s", frame if log_as is None else log_as)
        ws = self._ws
        if ws is None:
            raise ConnectionLostError("the connection is closed")
        with self._write_lock:
            ws.send(frame)

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
            error = ConnectionLostError(
                f"the connection dropped: {exc.__class__.__name__}: {exc}"
            )
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
            raise AuthenticationError(
                f"the server refused the {NAMESPACE} namespace ({_message_of(packet.data)})"
            )

    def _route(self, name: str, payload: Any) -> None:
        req_id = payload.get("reqId") if payload.__class__ is dict else None
        if req_id is not None:
            inbox = self._inboxes.get(req_id)
            if inbox is None:
                log.debug("ignored %s for unknown reqId %r", name, req_id)
                return
            if not inbox.batch:
                self._filled.append(inbox)
            if name == "text_stream":
                # Keep only what the reply needs, not the decoded frame.
                item = text_item(payload.get("data"))
                inbox.batch.append((name, item))
                if not inbox.streaming:
                    inbox.streaming = True
                    if not item[1]:
                        # The first chunk of a longer reply goes out at once,
                        # and its reader may run now: a block can hold
                        # hundreds of frames after it.
                        self._flush()
                        time.sleep(0)
            else:
                inbox.batch.append((name, payload))
            return
        if name == "exception":
            # An exception with no reqId concerns the socket, so every reply on
            # it fails (the web client's helper closes the socket too).
            self._fail_all(("exception", payload))
            return
        if self._on_account_event is not None:
            self._on_account_event(name, payload)

    def _fail_all(self, item: Tuple[str, Any]) -> None:
        self._flush()
        with self._lock:
            inboxes = list(self._inboxes.values())
        for inbox in inboxes:
            inbox.queue.put([item])

    def _die(self, error: MyshellError) -> None:
        if threading.current_thread() is self._reader:
            self._flush()  # chunks parsed before the failure come first
        with self._lock:
            if self._dead is None:
                self._dead = error
            inboxes = list(self._inboxes.values())
        if inboxes and not self._closing:
            log.warning("connection %s failed with %d replies in flight: %s", self.sid, len(inboxes), error)
        for inbox in inboxes:
            inbox.queue.put([(DEAD, _copy_error(error))])
        self._discard_socket()

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
            ws = self._ws
            if ws is not None:
                _cut(ws)
            reader.join(_ABORT_GRACE)
            if reader.is_alive():
                log.warning("reader thread %s did not stop in time", reader.name)

    def _say_goodbye(self, timeout: float) -> None:
        """Send ``41/chat,`` and a close frame, unless a writer is stuck."""
        ws = self._ws
        if self._dead is not None or ws is None:
            return
        if not self._write_lock.acquire(timeout=timeout):
            _cut(ws)  # a send is blocked: the server stopped reading
            return
        try:
            ws.settimeout(timeout)
            ws.send(_codec.encode_disconnect(NAMESPACE))
            ws.send_close()
        except Exception:  # the socket may already be gone
            _cut(ws)
        finally:
            self._write_lock.release()

    def _discard_socket(self) -> None:
        ws = self._ws
        if ws is not None:
            ws.shutdown()


def _cut(ws: websocket.WebSocket) -> None:
    """Shut the socket down, waking any thread blocked on it.

    (websocket-client's ``abort()`` does nothing once a close frame was sent.)
    """
    sock = ws.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


def _connect_error(
    exc: BaseException, url: str, timeout: Optional[float], ws: Optional[websocket.WebSocket] = None
) -> MyshellError:
    """Translate a websocket-client/socket exception raised while connecting."""
    response = getattr(ws, "handshake_response", None)
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout)):
        return ConnectTimeoutError(
            f"connecting to {url} took longer than {timeout}s; "
            "raise Timeout.connect or check the network"
        )
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return MyshellConnectionError(
            f"the server refused the WebSocket upgrade at {url} with HTTP "
            f"{exc.status_code}; check base_url, or try transport=\"http\"",
            status_code=exc.status_code,
        )
    if response is not None and 300 <= response.status < 400:
        return MyshellConnectionError(
            f"the server redirected the WebSocket upgrade at {url} (HTTP {response.status} to "
            f"{response.headers.get('location')!r}); redirects are not followed, so a wss:// "
            "URL is never downgraded: check base_url",
            status_code=response.status,
        )
    if isinstance(exc, websocket.WebSocketProxyException):
        return MyshellConnectionError(f"the proxy refused the connection: {exc}")
    if isinstance(exc, ssl.SSLError):
        return MyshellConnectionError(f"TLS failed for {url}: {exc}")
    if isinstance(exc, UnicodeDecodeError):
        return ProtocolError("the server sent a text frame that is not UTF-8 during the handshake")
    if isinstance(exc, (websocket.WebSocketProtocolException, websocket.WebSocketPayloadException)):
        return ProtocolError(f"the server broke the WebSocket protocol during the handshake: {exc}")
    if isinstance(exc, (OSError, websocket.WebSocketException, ValueError)):
        return MyshellConnectionError(
            f"cannot connect to {url}: {exc.__class__.__name__}: {exc}; "
            "check base_url, the network and the proxy"
        )
    return MyshellConnectionError(f"cannot connect to {url}: {exc!r}")


def _copy_error(error: MyshellError) -> MyshellError:
    """A fresh instance, so each reply can attach its own partial text."""
    return error.__class__(error.message)


def _message_of(data: Any) -> str:
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return data["message"]
    return "no reason given"


def _redacted(auth: Dict[str, Any]) -> Dict[str, Any]:
    """The auth payload with its token hidden, for DEBUG logs."""
    if auth.get("token") is None:
        return auth
    return {**auth, "token": "***"}
