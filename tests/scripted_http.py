"""A scripted raw TCP server on loopback: exact bytes for HTTP and WebSocket faults.

``tests/scripted.py`` (on ``websockets``) plays well-formed WebSocket frames.
This server writes raw bytes, so a test can do what no well-behaved library
would: stall half-way through the upgrade response, trickle headers, announce
a 10 MB frame and never send it, set RSV bits, use close codes that are not
allowed on the wire, fragment a message, stop reading, reset the TCP
connection in the middle of a frame, or end an SSE body anywhere.

Each accepted connection runs ``handler(conn)`` on its own thread. Leaving
the ``with`` block shuts every connection down and joins those threads.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import socket
import ssl
import struct
import termios
import threading
import time
from typing import Any, Callable

from scripted import SocketIOPlay

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SSE_PREFIX = "MESSAGE_REPLY_SSE_ELEMENT_EVENT_NAME_"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


class RawServer:
    """``with RawServer(handler) as server:`` serves ``server.base_url``."""

    def __init__(
        self,
        handler: Callable[[RawConn], None],
        *,
        ssl_context: ssl.SSLContext | None = None,
        rcvbuf: int | None = None,
    ) -> None:
        self._handler = handler
        self._ssl_context = ssl_context
        self.stopping = threading.Event()
        self.conns: list[RawConn] = []
        self.errors: list[BaseException] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:  # inherited by accepted sockets: a small TCP window
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        scheme = "https" if ssl_context is not None else "http"
        self.base_url = f"{scheme}://127.0.0.1:{self.port}"
        self._acceptor = threading.Thread(target=self._accept_loop, name="raw-server", daemon=True)
        self.accepted = threading.Event()

    def __enter__(self) -> RawServer:
        self._acceptor.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()

    def stop(self) -> None:
        self.stopping.set()
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._listener.close()
        self._acceptor.join(10)
        with self._lock:
            conns = list(self.conns)
            threads = list(self._threads)
        for conn in conns:
            conn.kill(drain=False)
        for thread in threads:
            thread.join(10)

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            # No Nagle delay: every write leaves at once, so a reset right
            # after it cannot discard it from the send queue.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = RawConn(sock, self.stopping, self._ssl_context)
            thread = threading.Thread(target=self._serve, args=(conn,), name="raw-conn", daemon=True)
            with self._lock:
                if self.stopping.is_set():
                    sock.close()
                    return
                self.conns.append(conn)
                self._threads.append(thread)
            self.accepted.set()
            thread.start()

    def _serve(self, conn: RawConn) -> None:
        try:
            conn.start_tls()
            self._handler(conn)
        except (OSError, EOFError):
            pass  # the client went away (or stop() cut the socket)
        except BaseException as exc:  # reported through .errors
            self.errors.append(exc)
        finally:
            conn.done.set()
            conn.kill(drain=False)


class RawConn(SocketIOPlay):
    """One accepted connection, with byte-level HTTP and WebSocket helpers."""

    def __init__(self, sock: socket.socket, stopping: threading.Event, ssl_context: ssl.SSLContext | None) -> None:
        self.sock = sock
        self.stopping = stopping
        self._ssl_context = ssl_context
        self._buffer = b""
        self.done = threading.Event()
        self.request_head = b""
        self.received: list[tuple[int, bytes]] = []  # WebSocket frames from the client
        self.upgraded = False
        self._killed = False

    def start_tls(self) -> None:
        if self._ssl_context is not None:
            self.sock.settimeout(10)
            self.sock = self._ssl_context.wrap_socket(self.sock, server_side=True)
            self.sock.settimeout(None)

    # -- bytes ---------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self, timeout: float | None) -> None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        finally:
            if not self._killed:
                self.sock.settimeout(None)
        if not data:
            raise EOFError("the client closed the connection")
        self._buffer += data

    def recv_exact(self, n: int, timeout: float | None = 10) -> bytes:
        while len(self._buffer) < n:
            self._fill(timeout)
        data, self._buffer = self._buffer[:n], self._buffer[n:]
        return data

    def recv_until(self, marker: bytes, timeout: float | None = 10) -> bytes:
        while marker not in self._buffer:
            self._fill(timeout)
        data, _, self._buffer = self._buffer.partition(marker)
        return data + marker

    def stall(self, seconds: float = 30) -> None:
        """Do nothing (read nothing) until the server stops or ``seconds`` pass."""
        self.stopping.wait(seconds)

    def wait_closed(self, timeout: float = 10) -> bool:
        """Read until the client closes (answering a WebSocket close frame
        with one); False on timeout."""
        deadline = time.monotonic() + timeout
        while not self.stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                if self.upgraded:
                    opcode, data = self.recv_frame(min(left, 0.2))
                    if opcode == OP_CLOSE:
                        self.send_frame(data[:2], OP_CLOSE)
                        return True
                else:
                    self._fill(min(left, 0.2))
                    self._buffer = b""
            except socket.timeout:
                continue
            except (EOFError, OSError):
                return True
        return False

    def drain(self, timeout: float = 2.0) -> None:
        """Wait until the kernel has sent everything written (and the client
        acknowledged it): a RST, or a close with unread input (which also
        sends a RST), would discard what is still queued."""
        deadline = time.monotonic() + timeout
        pause = threading.Event()
        while time.monotonic() < deadline:
            try:
                queued = struct.unpack("i", fcntl.ioctl(self.sock.fileno(), termios.TIOCOUTQ, b"\0" * 4))[0]
            except OSError:
                return
            if not queued:
                return
            pause.wait(0.002)

    def reset(self) -> None:
        """Abort the connection with a TCP RST, after what was written left."""
        self.drain()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()
        self._killed = True

    def kill(self, drain: bool = True) -> None:
        """Close the connection (after what was written left)."""
        if self._killed:
            return
        if drain:
            self.drain()
        self._killed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()

    # -- HTTP ----------------------------------------------------------------

    def read_request(self, timeout: float = 10) -> tuple[str, str, dict[str, str], bytes]:
        """The next request: method, path, lower-cased headers, body."""
        head = self.recv_until(b"\r\n\r\n", timeout)
        self.request_head = head
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = self.recv_exact(int(headers.get("content-length", "0")), timeout)
        return method, path, headers, body

    def send_sse_head(self, *, chunked: bool = True, status: str = "200 OK", extra: str = "") -> None:
        framing = "Transfer-Encoding: chunked\r\n" if chunked else "Connection: close\r\n"
        self.send(
            (
                f"HTTP/1.1 {status}\r\nContent-Type: text/event-stream\r\n"
                f"Cache-Control: no-cache\r\n{extra}{framing}\r\n"
            ).encode()
        )

    def send_chunk(self, data: bytes) -> None:
        self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunks(self) -> None:
        self.send(b"0\r\n\r\n")

    # -- WebSocket -------------------------------------------------------------

    def accept_upgrade(self, timeout: float = 10) -> dict[str, str]:
        """Read the upgrade request and answer 101; returns its headers."""
        _, _, headers, _ = self.read_request(timeout)
        self.send(upgrade_response(headers["sec-websocket-key"]))
        self.upgraded = True
        return headers

    def send_frame(
        self, payload: Any, opcode: int = OP_TEXT, *, fin: bool = True, rsv: int = 0, length: int | None = None
    ) -> None:
        """One unmasked server frame; ``length`` may lie about the payload size."""
        if isinstance(payload, str):
            payload = payload.encode()
        self.send(frame_header(len(payload) if length is None else length, opcode, fin=fin, rsv=rsv) + payload)

    def recv_frame(self, timeout: float | None = 10) -> tuple[int, bytes]:
        """The next client frame (unmasked); control frames included."""
        first, second = self.recv_exact(2, timeout)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.recv_exact(2, timeout))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.recv_exact(8, timeout))
        mask = self.recv_exact(4, timeout) if second & 0x80 else b"\0\0\0\0"
        data = self.recv_exact(length, timeout)
        data = bytes(b ^ mask[i % 4] for i, b in enumerate(data)) if length < 4096 else _unmask(data, mask)
        opcode = first & 0x0F
        self.received.append((opcode, data))
        return opcode, data

    def recv_text(self, timeout: float | None = 10) -> str:
        """The next text frame from the client (pongs of control frames skipped)."""
        while True:
            opcode, data = self.recv_frame(timeout)
            if opcode == OP_TEXT:
                return data.decode()
            if opcode == OP_CLOSE:
                raise EOFError("the client sent a close frame")

    # what SocketIOPlay (handshake, recv_event, emit) plays with
    SID = "raw-sid"
    TIMEOUT = 10.0

    def upgrade(self) -> None:
        self.accept_upgrade()

    def send_text(self, frame: str) -> None:
        self.send_frame(frame)

    def text_stream(self, req_id: str, text: str, is_final: bool = False) -> None:
        self.emit("text_stream", {"reqId": req_id, "data": {"text": text, "isFinal": is_final}})

    def close_frame(self, payload: bytes) -> None:
        self.send_frame(payload, OP_CLOSE)


def upgrade_response(key: str) -> bytes:
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    return (
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
    ).encode()


def frame_header(length: int, opcode: int = OP_TEXT, *, fin: bool = True, rsv: int = 0) -> bytes:
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | opcode
    if length < 126:
        return struct.pack("!BB", first, length)
    if length < 65536:
        return struct.pack("!BBH", first, 126, length)
    return struct.pack("!BBQ", first, 127, length)


def _unmask(data: bytes, mask: bytes) -> bytes:
    whole = (mask * (len(data) // 4 + 1))[: len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(whole, "big")).to_bytes(len(data), "big")


def sse_event(name: str, **fields: Any) -> bytes:
    """One complete MyShell SSE event (``name`` without the long prefix)."""
    return f"event: {SSE_PREFIX}{name}\ndata: {json.dumps(fields)}\n\n".encode()
