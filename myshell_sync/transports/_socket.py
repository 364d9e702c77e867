"""The websocket-client adaptation: everything that leans on its internals.

websocket-client parses frames with private classes (``websocket._abnf``);
the subclasses here read the socket in large blocks, refuse oversized frames
and messages, and join fragments once. ``Watchdog`` bounds a whole blocking
step (an upgrade trickled byte by byte, a send the server stopped reading).
``kill()`` is the one way a socket is shut down and closed, waking any
thread blocked on it. ``connect_error()`` translates what websocket-client
raises while connecting. Because of the private classes, ``setup.cfg``
bounds websocket-client below its next major version.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import threading
from typing import Any, Callable

import websocket

from .._deadline import Limit
from .._exceptions import ConnectTimeoutError, MyshellConnectionError, MyshellError, ProtocolError
from .._wording import Wording

__all__ = ["BufferedWebSocket", "Watchdog", "kill", "refuse_redirect", "connect_error", "READ_SIZE"]

# Bytes asked of the socket per read on an open connection.
READ_SIZE = 65536


class BufferedWebSocket(websocket.WebSocket):
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
        self.before_block: Callable[[], None] | None = None
        self._frames = _BoundedFrameBuffer(self._recv, self.frame_buffer.skip_utf8_validation)
        self.frame_buffer = self._frames
        self._messages = _BoundedContinuousFrame(self.cont_frame.fire_cont_frame, self.cont_frame.skip_utf8_validation)
        self.cont_frame = self._messages

    def recv(self) -> Any:
        """``WebSocket.recv()``, with a fast path for the usual frame: a
        whole unmasked, unfragmented text frame within the block read
        already, taken without websocket-client's frame objects. Anything
        else (control frames, fragments, a frame cut by the block's end, one
        over the size limit) goes the general way."""
        block = self._block
        pos = self._pos
        frames = self._frames
        if (
            pos + 2 <= len(block)
            and block[pos] == 0x81
            and frames.header is None
            and not frames.recv_buffer
            and self._messages.cont_data is None
        ):
            size = block[pos + 1]
            start = pos + 2
            if size == 126 and start + 2 <= len(block):
                size = (block[start] << 8) | block[start + 1]
                start += 2
            if size < 126 or start == pos + 4:
                end = start + size
                limit = frames.max_size
                if end <= len(block) and (limit is None or size <= limit):
                    with self.readlock:
                        self._pos = end
                    return block[start:end].decode("utf-8")
        return super().recv()

    def limit_frames(self, max_size: int) -> None:
        """Fail (ProtocolError) on a frame announcing more than ``max_size``
        bytes, or on a fragmented message growing past it."""
        self._frames.max_size = max_size
        self._messages.max_size = max_size

    def send_text_frame(self, text: str) -> None:
        """Send ``text`` as one masked text frame: what ``send(text)`` puts
        on the wire, without building an ``ABNF`` object per frame."""
        self._write(self._frame(0x1, text.encode("utf-8")))

    def send_goodbye(self, text: str, status: int = websocket.STATUS_NORMAL) -> None:
        """``send(text)`` then ``send_close(status)``, in one write."""
        frames = self._frame(0x1, text.encode("utf-8")) + self._frame(0x8, struct.pack("!H", status))
        self.connected = False  # as send_close() says
        self._write(frames)

    def _frame(self, opcode: int, data: bytes) -> bytes:
        """One final, masked client frame."""
        size = len(data)
        first = 0x80 | opcode
        if size < 126:
            header = bytes((first, 0x80 | size))
        elif size < 65536:
            header = struct.pack("!BBH", first, 0xFE, size)
        else:
            header = struct.pack("!BBQ", first, 0xFF, size)
        key = self.get_mask_key(4) if self.get_mask_key else os.urandom(4)
        return header + key + _masked(key, data)

    def _write(self, data: bytes) -> None:
        with self.lock:
            while data:
                sent = self._send(data)
                data = data[sent:]

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
            block = self._block = super()._recv(READ_SIZE)  # type: ignore[no-untyped-call]  # unannotated upstream
            pos = 0
        self._pos = pos + bufsize
        return block[pos : pos + bufsize]


def _masked(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the 4-byte ``key`` repeated (RFC 6455 section 5.3)."""
    size = len(data)
    if not size:
        return b""
    mask = int.from_bytes((key * (size // 4 + 1))[:size], "little")
    return (int.from_bytes(data, "little") ^ mask).to_bytes(size, "little")


class _BoundedFrameBuffer(websocket._abnf.frame_buffer):
    """websocket-client's frame parser, refusing frames over a size limit
    before reading their payload (so a huge frame cannot exhaust memory)."""

    max_size: int | None = None

    def recv_length(self) -> None:
        super().recv_length()
        length = self.length
        if self.max_size is not None and length is not None and length > self.max_size:
            raise ProtocolError(
                f"the server sent a {length}-byte frame, over the {self.max_size}-byte limit (max_event_size)"
            )


class _BoundedContinuousFrame(websocket._abnf.continuous_frame):
    """websocket-client's message reassembly, refusing a fragmented message
    that grows past a size limit, and joining fragments once (not copying
    the message so far for every fragment)."""

    max_size: int | None = None

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

    def extract(self, frame: websocket.ABNF) -> tuple[int, websocket.ABNF]:
        data = self.cont_data
        if data is None:
            raise websocket.WebSocketProtocolException("No continuation data available")
        self.cont_data = None
        parts = data[1]
        frame.data = parts[0] if len(parts) == 1 else b"".join(parts)
        return data[0], frame


class Watchdog:
    """Cuts the connection's socket when a blocking step outlives its time.

    Socket timeouts bound each read or write, not a whole step: a server
    trickling bytes (or reading very slowly) could stretch an upgrade, a
    handshake or one large send without limit. This thread waits until the
    time is up and then shuts the socket down, which wakes the blocked call
    with an error; ``fired`` tells the caller why it failed.
    """

    def __init__(self, ws_of: Callable[[], websocket.WebSocket | None], timeout: float) -> None:
        self.fired = False
        self._ws_of = ws_of
        self._timeout = max(timeout, 0.0)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="myshell-watchdog", daemon=True)

    def __enter__(self) -> Watchdog:
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
                kill(ws)
                return
            if self._done.wait(0.05):
                return


def kill(ws: websocket.WebSocket) -> None:
    """Shut the socket down, then close it: any thread blocked on it wakes.

    Closing alone does not wake a ``recv`` blocked in another thread, and
    websocket-client's ``abort()`` does nothing once a close frame was sent.
    Safe to call more than once.
    """
    sock = ws.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:  # not connected, or already closed
            pass
    ws.shutdown()  # type: ignore[no-untyped-call]  # unannotated upstream


def refuse_redirect(ws: websocket.WebSocket | None) -> None:
    """Fail if the upgrade was answered with a redirect (never followed).

    With ``redirect_limit=0``, websocket-client before 1.9.1 returns the
    redirect answer as an open connection instead of raising, as later
    versions do; ``connect_error()`` then names the redirect.
    """
    response = getattr(ws, "handshake_response", None)
    if response is not None and 300 <= response.status < 400:
        raise websocket.WebSocketException("the upgrade was redirected")


def connect_error(exc: BaseException, url: str, limit: Limit, ws: websocket.WebSocket | None = None) -> MyshellError:
    """Translate a websocket-client/socket exception raised while connecting."""
    response = getattr(ws, "handshake_response", None)
    if isinstance(exc, (websocket.WebSocketTimeoutException, socket.timeout)):
        return limit.error(f"connecting to {url}", ConnectTimeoutError)
    # A redirect comes as the handshake response, or (307 and 308 before
    # websocket-client 1.6.4) as a bad status.
    status, headers = (response.status, response.headers) if response is not None else (None, None)
    if isinstance(exc, websocket.WebSocketBadStatusException):
        status, headers = exc.status_code, exc.resp_headers
    if status is not None and 300 <= status < 400:
        location = (headers or {}).get("location")
        return MyshellConnectionError(
            Wording(
                "the server redirected the WebSocket upgrade at {url} (HTTP {status} to {location!r}); "
                "redirects are not followed, so a wss:// URL is never downgraded: check {s.base_url}",
                {"url": url, "status": status, "location": location},
            ),
            status_code=status,
        )
    if isinstance(exc, websocket.WebSocketBadStatusException):
        return MyshellConnectionError(
            Wording(
                "the server refused the WebSocket upgrade at {url} with HTTP {status}; "
                "check {s.base_url}, or try {s.transport_http}",
                {"url": url, "status": exc.status_code},
            ),
            status_code=exc.status_code,
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
            Wording(
                "cannot connect to {url}: {kind}: {exc}; check {s.base_url}, the network and the proxy",
                {"url": url, "kind": exc.__class__.__name__, "exc": str(exc)},
            )
        )
    return MyshellConnectionError(f"cannot connect to {url}: {exc!r}")
