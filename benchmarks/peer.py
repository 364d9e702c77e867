"""The fast peer: a minimal MyShell server on raw sockets, in its own process.

One port serves the three routes of :mod:`benchmarks.protocol`, a thread
per TCP connection:

* WebSocket: the upgrade, unmasked server frames and the Engine.IO/Socket.IO
  text protocol by hand; pre-encoded frames in big ``sendall`` batches (see
  :func:`build_reply`); an Engine.IO ping every ``pingInterval`` (25 s), as
  a real server sends, so a client that watches the heartbeat (the
  python-socketio client does) keeps its connection on a slow machine;
* HTTP/1.1 with keep-alive: the SSE chat route (a chunked body, one HTTP
  chunk per batch of 512 pre-encoded events, see :func:`build_sse_reply`)
  and the key-based API (a pre-encoded JSON body with ``Content-Length``).

It counts the TCP connections it accepted: the line ``connections`` on its
stdin is answered with that count. :class:`Peer` starts it
(``python_command("benchmarks.peer")``) and stops it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import socket
import sys
import threading
from collections.abc import Sequence
from typing import Any

from .process import ServerProcess
from .protocol import (
    CHAT_PATH,
    EVENT_PREFIX,
    OPENAPI_PATH,
    SSE_ENERGY,
    SSE_FINISHED,
    SSE_REPLIED,
    SSE_TEXT,
    WS_PATH,
    chunk_text,
    expected_text,
)

OPEN_PACKET = '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
MAX_REPLY_CHUNKS = 1_000_000

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STREAM_HEAD = b'42/chat,["text_stream",{"reqId":"'
_REPLIED_HEAD = b'42/chat,["message_replied",{"reqId":"'
_BATCH_FRAMES = 512  # frames per sendall after the first frame
_CLOSE_FRAME = b"\x88\x02\x03\xe8"  # close, status 1000

PING_INTERVAL = 25.0  # seconds, as announced in OPEN_PACKET

_reply_cache: dict[tuple[int, int], list[list[bytes]]] = {}
_sse_cache: dict[int, list[bytes]] = {}
_openapi_cache: dict[int, bytes] = {}


def _ws_header(length: int, opcode: int = 1) -> bytes:
    """Header of one unmasked, final server frame."""
    first = 0x80 | opcode
    if length < 126:
        return bytes((first, length))
    if length < 65536:
        return bytes((first, 126)) + length.to_bytes(2, "big")
    return bytes((first, 127)) + length.to_bytes(8, "big")


def _ws_frame(text: str) -> bytes:
    data = text.encode()
    return _ws_header(len(data)) + data


def build_reply(n: int, rid_len: int) -> list[list[bytes]]:
    """The reply to ``N=n`` as batches of separators.

    ``rid.join(batch)`` is the wire bytes of that batch of frames for the
    request id ``rid`` (``rid_len`` bytes long): every frame is
    ``header + head + rid + tail``, so the only per-request work is one
    ``bytes.join`` per batch. The first batch is the first frame alone, so
    the first chunk leaves at once.
    """
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    parts: list[tuple[bytes, bytes]] = []
    for i in range(n):
        tail = '","data":{"text":%s,"index":%d,"isFinal":%s}}]' % (
            dumps(chunk_text(i)),
            i,
            "true" if i == n - 1 else "false",
        )
        parts.append((_STREAM_HEAD, tail.encode()))
    parts.append((_REPLIED_HEAD, ('","data":{"text":%s}}]' % dumps(expected_text(n))).encode()))
    frames = [(_ws_header(len(head) + rid_len + len(tail)) + head, tail) for head, tail in parts]
    groups = [frames[:1]] + [frames[k : k + _BATCH_FRAMES] for k in range(1, len(frames), _BATCH_FRAMES)]
    batches = []
    for group in groups:
        seps = [group[0][0]]
        for j in range(len(group) - 1):
            seps.append(group[j][1] + group[j + 1][0])
        seps.append(group[-1][1])
        batches.append(seps)
    return batches


def reply_bytes(n: int, rid: bytes) -> int:
    """How many bytes the peer sends for the reply to ``N=n``."""
    return sum(len(rid.join(seps)) for seps in build_reply(n, len(rid)))


_SSE_HEAD = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
    b"Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"
)


def _sse_event(name: str, data: Any) -> bytes:
    return ("event: %s\ndata: %s\n\n" % (name, json.dumps(data, ensure_ascii=False, separators=(",", ":")))).encode()


def _http_chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def build_sse_reply(n: int) -> list[bytes]:
    """The HTTP answer to ``N=n`` as the ``sendall`` writes that carry it.

    The first write is the response head with the first ``…_TEXT`` event in
    its own HTTP chunk (so the first chunk leaves at once); then one HTTP
    chunk per 512 events; the last write also holds
    ``…_TEXT_STREAM_PUSH_FINISHED``, ``…_USER_SENT_MESSAGE_REPLIED``,
    ``…_USER_CONSUMED_ENERGY`` and the end of the chunked body.
    """
    events = [_sse_event(SSE_TEXT, {"content": chunk_text(i)}) for i in range(n)]
    tail = (
        _sse_event(SSE_FINISHED, {"content": ""})
        + _sse_event(SSE_REPLIED, {"message": {"text": expected_text(n), "type": "REPLY", "status": "DONE"}})
        + _sse_event(SSE_ENERGY, {"userEnergyInfo": {"energy": 100, "dailyEnergy": 200}})
    )
    writes = [_SSE_HEAD + _http_chunk(events[0])]
    for k in range(1, n, _BATCH_FRAMES):
        writes.append(_http_chunk(b"".join(events[k : k + _BATCH_FRAMES])))
    writes[-1] += _http_chunk(tail) + b"0\r\n\r\n"
    return writes


def build_openapi_reply(n: int) -> bytes:
    """The key-based API's answer to ``N=n``: the whole text, JSON in JSON."""
    body = json.dumps({"success": True, "result": json.dumps(expected_text(n))}).encode()
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


_NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
RELEASE_PATH = "/bench/release"
_hold_lock = threading.Lock()
_hold = threading.Event()


def _holding() -> threading.Event:
    """What a held reply waits on (set by the next release)."""
    with _hold_lock:
        return _hold


def _release() -> None:
    global _hold
    with _hold_lock:
        _hold.set()
        _hold = threading.Event()


def _reply_size(text: str) -> int:
    found = re.search(r"N=(\d+)", text)
    n = min(int(found.group(1)), MAX_REPLY_CHUNKS) if found else 1
    return max(n, 1)


class PeerConnection:
    """One client connection to the peer, served by one thread."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.buf = bytearray()
        self.send_lock = threading.Lock()  # a reply's batches and the pings
        self.closed = threading.Event()

    def run(self) -> None:
        try:
            head = self._read_head()
            if head is None:
                return
            if re.search(rb"(?im)^upgrade:[ \t]*websocket", head):
                if self._upgrade(head):
                    self.sock.sendall(_ws_frame(OPEN_PACKET % f"peer-{self.number}"))
                    threading.Thread(target=self._ping, daemon=True).start()
                    self._serve()
            else:
                while head is not None and self._answer_http(head):
                    head = self._read_head()
        except (OSError, EOFError, ValueError):
            pass
        finally:
            self.closed.set()
            self.sock.close()

    def _read_head(self) -> bytes | None:
        """The next request head (None at EOF)."""
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return None
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        return head

    def _answer_http(self, head: bytes) -> bool:
        """Answer one HTTP request; False closes the connection."""
        found = re.search(rb"(?im)^content-length:[ \t]*(\d+)", head)
        body = self._recv_exact(int(found.group(1))) if found else b""
        path = head.split(b" ", 2)[1].decode("latin-1")
        if path == CHAT_PATH:
            message = str(json.loads(body).get("message", ""))
            n = _reply_size(message)
            writes = _sse_cache.get(n)
            if writes is None:
                writes = _sse_cache[n] = build_sse_reply(n)
            # "HOLD": the rest of the reply waits after the first chunk until
            # POST /bench/release (a stream still in flight, for the memory row).
            held = _holding() if "HOLD" in message else None
            sendall = self.sock.sendall
            for k, data in enumerate(writes):
                if k == 1 and held is not None:
                    held.wait(60)
                sendall(data)
        elif path == OPENAPI_PATH:
            n = _reply_size(str(json.loads(json.loads(body)["input"]).get("user_prompt", "")))
            answer = _openapi_cache.get(n)
            if answer is None:
                answer = _openapi_cache[n] = build_openapi_reply(n)
            self.sock.sendall(answer)
        elif path == RELEASE_PATH:
            _release()
            self.sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            self.sock.sendall(_NOT_FOUND)
        return not re.search(rb"(?im)^connection:[ \t]*close", head)

    def _ping(self) -> None:
        while not self.closed.wait(PING_INTERVAL):
            try:
                with self.send_lock:
                    self.sock.sendall(_ws_frame("2"))
            except OSError:
                return

    def _recv_exact(self, n: int) -> bytes:
        buf = self.buf
        while len(buf) < n:
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            buf += data
        out = bytes(buf[:n])
        del buf[:n]
        return out

    def _upgrade(self, head: bytes) -> bool:
        match = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head)
        if match is None:
            self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1(match.group(1) + _WS_GUID).digest())
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        return True

    def _serve(self) -> None:
        fragments: list[bytes] = []
        message_opcode = 0
        while True:
            b0, b1 = self._recv_exact(2)
            opcode = b0 & 0x0F
            length = b1 & 0x7F
            if length == 126:
                length = int.from_bytes(self._recv_exact(2), "big")
            elif length == 127:
                length = int.from_bytes(self._recv_exact(8), "big")
            mask = self._recv_exact(4) if b1 & 0x80 else b""
            payload = self._recv_exact(length)
            if mask and length:
                key = (mask * (length // 4 + 1))[:length]
                unmasked = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
                payload = unmasked.to_bytes(length, "big")
            if opcode == 8:  # close: answer it and hang up
                self._send(_CLOSE_FRAME)
                return
            if opcode == 9:  # ping
                self._send(_ws_header(len(payload), 10) + payload)
                continue
            if opcode not in (0, 1, 2):
                continue
            if opcode != 0:
                message_opcode = opcode
            fragments.append(payload)
            if not b0 & 0x80:
                continue
            message = b"".join(fragments)
            fragments = []
            if message_opcode == 1 and not self._on_text(message.decode("utf-8")):
                return

    def _on_text(self, text: str) -> bool:
        """Answer one Engine.IO packet; False closes the connection."""
        if text.startswith(EVENT_PREFIX):
            event = json.loads(text[len(EVENT_PREFIX) :])
            if event[0] == "text_chat":
                payload = event[1]
                found = re.search(r"N=(\d+)", str(payload.get("text", "")))
                n = min(int(found.group(1)), MAX_REPLY_CHUNKS) if found else 1
                self._send_reply(str(payload["reqId"]).encode(), max(n, 1))
        elif text.startswith("40/chat"):
            self._send(_ws_frame('40/chat,{"sid":"peer-sid-%d"}' % self.number))
        elif text == "1":  # Engine.IO close
            self._send(_CLOSE_FRAME)
            return False
        elif text.startswith("2"):  # a client ping (not used in EIO v4)
            self._send(_ws_frame("3" + text[1:]))
        # "41/chat," (leave the namespace) and pongs ("3") need no answer.
        return True

    def _send(self, data: bytes) -> None:
        with self.send_lock:
            self.sock.sendall(data)

    def _send_reply(self, rid: bytes, n: int) -> None:
        key = (n, len(rid))
        batches = _reply_cache.get(key)
        if batches is None:
            batches = _reply_cache[key] = build_reply(n, len(rid))
        sendall = self.sock.sendall
        lock = self.send_lock
        for seps in batches:
            data = rid.join(seps)
            with lock:
                sendall(data)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until stdin closes (the parent ended or went away); the line
    ``connections`` on stdin is answered with the TCP connections accepted."""
    server = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(server.getsockname()[1], flush=True)
    counter = [0]

    def answer_parent() -> None:
        for line in sys.stdin:
            if line.strip() == "connections":
                print(counter[0], flush=True)
        os._exit(0)

    threading.Thread(target=answer_parent, daemon=True).start()
    while True:
        sock, _ = server.accept()
        counter[0] += 1
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = PeerConnection(sock, counter[0])
        threading.Thread(target=conn.run, daemon=True).start()


class Peer(ServerProcess):
    """The peer process, seen from the benchmark."""

    def __init__(self) -> None:
        super().__init__("benchmarks.peer")
        self.ws_url = f"ws://127.0.0.1:{self.port}{WS_PATH}"
        self.chat_url = self.base_url + CHAT_PATH
        self.openapi_url = self.base_url + OPENAPI_PATH

    def connections(self) -> int:
        """TCP connections the peer has accepted so far."""
        return int(self.ask("connections"))
