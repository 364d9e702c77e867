"""A scripted raw WebSocket server on loopback, for exact-frame fault injection.

Built on the ``websockets`` library's threaded server. Each test passes a
handler that plays one connection frame by frame with the helpers below.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any, Callable

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import ServerConnection, serve

OPEN_PACKET = '0{"sid":"scripted","upgrades":[],"pingInterval":%d,"pingTimeout":%d,"maxPayload":%d}'


class ScriptedServer:
    """``with ScriptedServer(handler) as server:`` serves ``server.base_url``."""

    def __init__(self, handler: Callable[[Peer], None]) -> None:
        self._handler = handler
        self.stopping = threading.Event()
        self.peers: list[Peer] = []
        self.errors: list[BaseException] = []
        self._server = serve(self._handle, "127.0.0.1", 0, compression=None, max_size=None)
        self.port = self._server.socket.getsockname()[1]
        self.base_url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="scripted-server", daemon=True)

    def _handle(self, conn: ServerConnection) -> None:
        peer = Peer(conn, self.stopping)
        self.peers.append(peer)
        try:
            self._handler(peer)
        except ConnectionClosed:
            pass
        except BaseException as exc:  # reported by the test through .errors
            self.errors.append(exc)
        finally:
            peer.done.set()

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._thread.join(10)


class SocketIOPlay:
    """The Socket.IO side of a scripted connection, shared by ``Peer`` and
    ``scripted_http.RawConn``: each gives ``recv_text(timeout)``, the next text
    frame from the client, ``send_text(frame)``, ``upgrade()`` (what comes
    before the open packet), ``SID`` and ``TIMEOUT`` (its default wait)."""

    SID = "scripted-sid"
    TIMEOUT = 5.0

    def upgrade(self) -> None:
        """Nothing by default: the WebSocket upgrade is done."""

    def recv_text(self, timeout: float) -> str:
        raise NotImplementedError

    def send_text(self, frame: str) -> None:
        raise NotImplementedError

    def handshake(self, ping_interval: int = 25000, ping_timeout: int = 20000, max_payload: int = 1000000) -> dict:
        """(The upgrade,) the open packet, then accept the /chat connect; returns its auth payload."""
        self.upgrade()
        self.send_text(OPEN_PACKET % (ping_interval, ping_timeout, max_payload))
        frame = self.recv_text(self.TIMEOUT)
        assert frame.startswith("40/chat,"), frame
        self.send_text('40/chat,{"sid":"%s"}' % self.SID)
        return json.loads(frame[len("40/chat,") :])

    def recv_event(self, timeout: float | None = None) -> tuple[str, Any]:
        """The next Socket.IO event from the client, skipping pongs."""
        while True:
            frame = self.recv_text(self.TIMEOUT if timeout is None else timeout)
            if frame.startswith("42/chat,"):
                name, *args = json.loads(frame[len("42/chat,") :])
                return name, (args[0] if args else None)

    def emit(self, name: str, payload: Any) -> None:
        self.send_text("42/chat," + json.dumps([name, payload]))


class Peer(SocketIOPlay):
    """One client connection as seen by the scripted server."""

    def __init__(self, conn: ServerConnection, stopping: threading.Event) -> None:
        self.conn = conn
        self.stopping = stopping
        self.done = threading.Event()
        self.received: list[str] = []

    def send(self, frame: Any) -> None:
        self.conn.send(frame)

    def recv(self, timeout: float = 5.0) -> str:
        frame = self.conn.recv(timeout=timeout)
        self.received.append(frame)
        return frame

    # what SocketIOPlay plays with
    def recv_text(self, timeout: float) -> str:
        return self.recv(timeout)

    def send_text(self, frame: str) -> None:
        self.send(frame)

    def stream_reply(self, req_id: str, chunks: list[str], *, replied: bool = True) -> None:
        """text_stream frames (the last one isFinal) and message_replied."""
        for index, text in enumerate(chunks):
            self.emit(
                "text_stream",
                {"reqId": req_id, "data": {"text": text, "index": index, "isFinal": index == len(chunks) - 1}},
            )
        if replied:
            self.emit("message_replied", {"reqId": req_id, "data": {"text": "".join(chunks), "type": "REPLY"}})

    def wait_closed(self, timeout: float = 10.0) -> bool:
        """Read (and keep) frames until the client goes away; False on timeout."""
        deadline = time.monotonic() + timeout
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                try:
                    self.recv(timeout=0.2)
                except TimeoutError:
                    continue
        except ConnectionClosed:
            return True
        return False
