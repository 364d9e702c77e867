"""Benchmark myshell_sync against the alternatives on loopback, with targets.

Usage (after ``pip install -e ".[bench]"``)::

    python benchmarks/run.py            # full run, writes BENCHMARKS.md
    python benchmarks/run.py --quick    # small sizes, a smoke run
    python benchmarks/run.py --no-write # print only

The peer is a minimal MyShell server written here on raw sockets (the
WebSocket upgrade, unmasked server frames and the Engine.IO/Socket.IO text
protocol done by hand). It runs in its own process, so it never shares the
GIL with the client being measured, and it writes pre-encoded frames in big
``sendall`` batches; the "peer ceiling" row shows how fast it delivers a
reply to a client that only counts bytes. A prompt ``N=<n>`` is answered with
``n`` ``text_stream`` frames (chunk ``i`` is ``chunk_text(i)``; the last has
``isFinal: true``) and a ``message_replied`` carrying the whole text.

Clients compared (all on 127.0.0.1, all answered by the same peer):

* ``myshell_sync``: ``Myshell(url, captcha_delay=0)``; warm means its pooled
  connection is already open; a call is ``for chunk in client.generate(...)``.
* raw websocket-client: ``websocket.create_connection(url,
  skip_utf8_validation=True)``, the handshake, then one tight loop of
  ``ws.recv()`` + ``json.loads`` until ``message_replied`` (no reqId routing,
  no timeouts, no threads): the ceiling for anything built on websocket-client.
* aiohttp: gpt4free's style. Its sync API drives an async generator chunk by
  chunk with ``loop.run_until_complete(gen.__anext__())`` on a new event loop
  per call (``run_generator`` in gpt4free's base_provider). Warm figures
  (throughput, round trip) keep one loop and one open ``ws_connect`` socket
  and drive each reply that way; the cold figure is a whole gpt4free call: a
  new loop, ``ClientSession``, ``ws_connect``, handshake (no captcha sleep),
  send, stream, close.
* python-socketio: ``socketio.Client`` (threaded, websocket transport,
  namespace ``/chat``, auth dict) whose handlers feed a ``queue.Queue``. Its
  Engine.IO client runs every handler in a new thread, so events may arrive
  out of order: the consumer orders chunks by ``data.index`` and waits until
  it holds all of them and ``message_replied``.

Every figure is the best of ``--rounds`` (3) rounds, the clients interleaved
in each round. Every reply's text is compared with the expected text; any
difference or failed call is printed and the exit status is 1. Targets are
ratios measured in this one run; MISS does not change the exit status.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime
import faulthandler
import gc
import hashlib
import itertools
import json
import os
import platform
import queue
import re
import resource
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

# --------------------------------------------------------------------------
# The reply every client must reproduce
# --------------------------------------------------------------------------

NAMESPACE = "/chat"
EVENT_PREFIX = "42/chat,"
WS_PATH = "/ws/?EIO=4&transport=websocket"
MODEL = "gpt-4"
AUTH: Dict[str, Any] = {"token": None, "visitorId": "bench-visitor"}
OPEN_PACKET = (
    '0{"sid":"%s","upgrades":[],"pingInterval":25000,"pingTimeout":20000,'
    '"maxPayload":1000000}'
)
CALL_TIMEOUT = 60.0  # seconds; a call slower than this counts as failed
MAX_REPLY_CHUNKS = 1_000_000


def chunk_text(i: int) -> str:
    """Chunk ``i`` of every reply: a short token, sometimes non-ASCII."""
    return "naïve " if i % 97 == 96 else f"w{i} "


def expected_text(n: int) -> str:
    return "".join(chunk_text(i) for i in range(n))


def prompt_for(n: int) -> str:
    return f"N={n}"


# --------------------------------------------------------------------------
# The fast peer (runs in its own process: ``run.py --peer``)
# --------------------------------------------------------------------------

_WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_STREAM_HEAD = b'42/chat,["text_stream",{"reqId":"'
_REPLIED_HEAD = b'42/chat,["message_replied",{"reqId":"'
_BATCH_FRAMES = 512  # frames per sendall after the first frame
_CLOSE_FRAME = b"\x88\x02\x03\xe8"  # close, status 1000

_reply_cache: Dict[Tuple[int, int], List[List[bytes]]] = {}


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


def build_reply(n: int, rid_len: int) -> List[List[bytes]]:
    """The reply to ``N=n`` as batches of separators.

    ``rid.join(batch)`` is the wire bytes of that batch of frames for the
    request id ``rid`` (``rid_len`` bytes long): every frame is
    ``header + head + rid + tail``, so the only per-request work is one
    ``bytes.join`` per batch. The first batch is the first frame alone, so
    the first chunk leaves at once.
    """
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    parts: List[Tuple[bytes, bytes]] = []
    for i in range(n):
        tail = '","data":{"text":%s,"index":%d,"isFinal":%s}}]' % (
            dumps(chunk_text(i)), i, "true" if i == n - 1 else "false")
        parts.append((_STREAM_HEAD, tail.encode()))
    parts.append((_REPLIED_HEAD, ('","data":{"text":%s}}]' % dumps(expected_text(n))).encode()))
    frames = [(_ws_header(len(head) + rid_len + len(tail)) + head, tail) for head, tail in parts]
    groups = [frames[:1]] + [frames[k:k + _BATCH_FRAMES]
                             for k in range(1, len(frames), _BATCH_FRAMES)]
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


class PeerConnection:
    """One client connection to the peer, served by one thread."""

    def __init__(self, sock: socket.socket, number: int) -> None:
        self.sock = sock
        self.number = number
        self.buf = bytearray()

    def run(self) -> None:
        try:
            if self._upgrade():
                self.sock.sendall(_ws_frame(OPEN_PACKET % f"peer-{self.number}"))
                self._serve()
        except (OSError, EOFError, ValueError):
            pass
        finally:
            self.sock.close()

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

    def _upgrade(self) -> bool:
        while b"\r\n\r\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                return False
            self.buf += data
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        match = re.search(rb"(?im)^sec-websocket-key:[ \t]*(\S+)", head)
        if match is None:
            self.sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        accept = base64.b64encode(hashlib.sha1(match.group(1) + _WS_GUID).digest())
        self.sock.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n")
        return True

    def _serve(self) -> None:
        fragments: List[bytes] = []
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
                self.sock.sendall(_CLOSE_FRAME)
                return
            if opcode == 9:  # ping
                self.sock.sendall(_ws_header(len(payload), 10) + payload)
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
            event = json.loads(text[len(EVENT_PREFIX):])
            if event[0] == "text_chat":
                payload = event[1]
                found = re.search(r"N=(\d+)", str(payload.get("text", "")))
                n = min(int(found.group(1)), MAX_REPLY_CHUNKS) if found else 1
                self._send_reply(str(payload["reqId"]).encode(), max(n, 1))
        elif text.startswith("40/chat"):
            self.sock.sendall(_ws_frame('40/chat,{"sid":"peer-sid-%d"}' % self.number))
        elif text == "1":  # Engine.IO close
            self.sock.sendall(_CLOSE_FRAME)
            return False
        elif text.startswith("2"):  # a client ping (not used in EIO v4)
            self.sock.sendall(_ws_frame("3" + text[1:]))
        # "41/chat," (leave the namespace) and pongs need no answer.
        return True

    def _send_reply(self, rid: bytes, n: int) -> None:
        key = (n, len(rid))
        batches = _reply_cache.get(key)
        if batches is None:
            batches = _reply_cache[key] = build_reply(n, len(rid))
        sendall = self.sock.sendall
        for seps in batches:
            sendall(rid.join(seps))


def peer_main() -> int:
    """Serve until stdin closes (the parent ended or went away)."""
    server = socket.create_server(("127.0.0.1", 0), backlog=512)
    print(server.getsockname()[1], flush=True)

    def exit_with_parent() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    numbers = itertools.count(1)
    while True:
        sock, _ = server.accept()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = PeerConnection(sock, next(numbers))
        threading.Thread(target=conn.run, daemon=True).start()


class Peer:
    """The peer process, seen from the benchmark."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--peer"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the peer did not start (said {line!r})")
        self.port = int(line)
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}{WS_PATH}"

    def stop(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


# --------------------------------------------------------------------------
# The four clients: call(n) -> (text, perf_counter() at the first chunk)
# --------------------------------------------------------------------------

CallResult = Tuple[str, float]


def text_chat_payload(req_id: str, n: int) -> Dict[str, Any]:
    from myshell_sync import generate_signature, models

    text = prompt_for(n)
    return {"reqId": req_id, "botUid": models[MODEL], "sourceFrom": "myshellWebsite",
            "text": text, **generate_signature(text)}


def text_chat_frame(req_id: str, n: int) -> str:
    return EVENT_PREFIX + json.dumps(["text_chat", text_chat_payload(req_id, n)],
                                     separators=(",", ":"))


class MyshellBench:
    label = "myshell_sync"

    def __init__(self, base_url: str) -> None:
        from myshell_sync import Myshell

        self.client = Myshell(base_url, captcha_delay=0)

    def warm(self) -> "MyshellBench":
        self.client.connect(MODEL)
        return self

    def call(self, n: int) -> CallResult:
        chunks = self.client.generate(MODEL, [{"role": "user", "content": prompt_for(n)}])
        parts = [next(chunks)]
        first = time.perf_counter()
        parts.extend(chunks)
        return "".join(parts), first

    def close(self) -> None:
        self.client.close()


class RawBench:
    label = "raw websocket-client"

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, skip_utf8_validation=True,
                                              timeout=CALL_TIMEOUT)
        if not str(self.ws.recv()).startswith("0{"):
            raise RuntimeError("no open packet")
        self.ws.send("40/chat," + json.dumps(AUTH))
        while not str(self.ws.recv()).startswith("40/chat,"):
            pass

    def call(self, n: int) -> CallResult:
        ws = self.ws
        recv: Callable[[], Any] = ws.recv  # str for text frames
        loads = json.loads
        ws.send(text_chat_frame(str(uuid.uuid4()), n))
        parts: List[str] = []
        first = 0.0
        while True:
            frame = recv()
            if frame.startswith(EVENT_PREFIX):
                name, payload = loads(frame[8:])
                if name == "text_stream":
                    if not parts:
                        first = time.perf_counter()
                    parts.append(payload["data"]["text"])
                elif name == "message_replied":
                    return "".join(parts), first
            elif frame == "2":
                ws.send("3")
            elif not frame:
                raise ConnectionError("the peer closed the connection")

    def close(self) -> None:
        self.ws.close()


class ThreadedFloorBench(RawBench):
    """The raw loop moved onto a reader thread that feeds a ``queue.Queue``:
    the least any "reader thread + queue" client (the design card's shape)
    can cost per call. A reference for the round trip, not a competitor."""

    label = "threaded floor"

    def __init__(self, ws_url: str) -> None:
        super().__init__(ws_url)
        self.events: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        loads = json.loads
        try:
            while True:
                frame = self.ws.recv()
                if frame.startswith(EVENT_PREFIX):
                    name, payload = loads(frame[8:])
                    self.events.put((name, payload))
                elif not frame:
                    return
        except Exception:
            return

    def call(self, n: int) -> CallResult:
        self.ws.send(text_chat_frame(str(uuid.uuid4()), n))
        parts: List[str] = []
        first = 0.0
        while True:
            name, payload = self.events.get(timeout=CALL_TIMEOUT)
            if name == "text_stream":
                if not parts:
                    first = time.perf_counter()
                parts.append(payload["data"]["text"])
            elif name == "message_replied":
                return "".join(parts), first

    def close(self) -> None:
        self.ws.close()
        self.reader.join(5)


class SocketIOBench:
    label = "python-socketio"

    def __init__(self, base_url: str) -> None:
        import socketio

        self.events: "queue.Queue[Tuple[str, Any]]" = queue.Queue()
        self.out_of_order = 0
        put = self.events.put
        self.sio = socketio.Client(reconnection=False, handle_sigint=False)
        self.sio.on("text_stream", lambda data: put(("text_stream", data)), namespace=NAMESPACE)
        self.sio.on("message_replied", lambda data: put(("message_replied", data)),
                    namespace=NAMESPACE)
        self.sio.connect(base_url, transports=["websocket"], namespaces=[NAMESPACE], auth=AUTH,
                         socketio_path="ws", wait_timeout=10)

    def call(self, n: int) -> CallResult:
        req_id = str(uuid.uuid4())
        self.sio.emit("text_chat", text_chat_payload(req_id, n), namespace=NAMESPACE)
        chunks: Dict[int, str] = {}
        final: Optional[int] = None
        replied = False
        first = 0.0
        highest = -1
        get = self.events.get
        while not (replied and final is not None and len(chunks) > final):
            name, payload = get(timeout=CALL_TIMEOUT)
            if payload.get("reqId") != req_id:
                continue
            if name == "message_replied":
                replied = True
                continue
            data = payload["data"]
            if not chunks:
                first = time.perf_counter()
            index = data["index"]
            chunks[index] = data["text"]
            if index < highest:
                self.out_of_order += 1
            highest = max(highest, index)
            if data["isFinal"]:
                final = index
        return "".join(chunks.get(i, "") for i in range(len(chunks))), first

    def close(self) -> None:
        self.sio.disconnect()


async def _aio_handshake(ws: Any) -> None:
    if not (await ws.receive_str()).startswith("0{"):
        raise RuntimeError("no open packet")
    await ws.send_str("40/chat," + json.dumps(AUTH))
    while not (await ws.receive_str()).startswith("40/chat,"):
        pass


async def _aio_reply(ws: Any, frame: str) -> Any:
    """gpt4free's receive loop, ending at message_replied."""
    import aiohttp

    await ws.send_str(frame)
    async for message in ws:
        if message.type != aiohttp.WSMsgType.TEXT:
            continue
        data = message.data
        if data == "2":
            await ws.send_str("3")
            continue
        if not data.startswith(EVENT_PREFIX):
            continue
        name, payload = json.loads(data[8:])
        if name == "text_stream":
            text = payload["data"]["text"]
            if text:
                yield text
        elif name == "message_replied":
            return


async def _aio_gpt4free_call(ws_url: str, n: int) -> Any:
    """A whole gpt4free-style call (its 5 s captcha sleep left out)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(ws_url, autoping=False) as ws:
            await _aio_handshake(ws)
            async for chunk in _aio_reply(ws, text_chat_frame(str(uuid.uuid4()), n)):
                yield chunk


def run_generator(loop: asyncio.AbstractEventLoop, agen: Any) -> Iterator[str]:
    """gpt4free's sync wrapper: one run_until_complete per chunk."""
    anext_ = agen.__anext__
    run = loop.run_until_complete
    while True:
        try:
            yield run(anext_())
        except StopAsyncIteration:
            return


def _collect(chunks: Iterator[str]) -> CallResult:
    parts = [next(chunks)]
    first = time.perf_counter()
    parts.extend(chunks)
    return "".join(parts), first


class AiohttpBench:
    label = "aiohttp (gpt4free style)"

    def __init__(self, ws_url: str) -> None:
        import aiohttp

        async def open_ws() -> Tuple[Any, Any]:
            session = aiohttp.ClientSession()
            ws = await session.ws_connect(ws_url, autoping=False)
            await _aio_handshake(ws)
            return session, ws

        self.loop = asyncio.new_event_loop()
        self.session, self.ws = self.loop.run_until_complete(open_ws())

    def call(self, n: int) -> CallResult:
        frame = text_chat_frame(str(uuid.uuid4()), n)
        return _collect(run_generator(self.loop, _aio_reply(self.ws, frame)))

    def close(self) -> None:
        async def shut() -> None:
            await self.ws.close()
            await self.session.close()

        self.loop.run_until_complete(shut())
        self.loop.close()


def aiohttp_cold_call(ws_url: str, n: int) -> CallResult:
    loop = asyncio.new_event_loop()
    try:
        return _collect(run_generator(loop, _aio_gpt4free_call(ws_url, n)))
    finally:
        loop.close()


# --------------------------------------------------------------------------
# Bookkeeping
# --------------------------------------------------------------------------

CLIENTS = ("myshell_sync", "raw websocket-client", "aiohttp (gpt4free style)", "python-socketio")


class Checker:
    """Checks every reply's text and records failed calls (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.checked = 0
        self.problems: List[str] = []

    def check(self, what: str, text: str, n: int) -> bool:
        expected = expected_text(n)
        with self.lock:
            self.checked += 1
            if text == expected:
                return True
            at = next((i for i, (a, b) in enumerate(zip(text, expected)) if a != b),
                      min(len(text), len(expected)))
            self.problems.append(
                f"{what}: WRONG TEXT ({len(text)} chars, expected {len(expected)}; "
                f"first difference at {at}: {text[at:at + 20]!r} vs {expected[at:at + 20]!r})")
        return False

    def failed(self, what: str, exc: BaseException) -> None:
        with self.lock:
            self.problems.append(f"{what}: FAILED {exc.__class__.__name__}: {exc}")


def rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def settled_rss(limit: float = 5.0) -> int:
    """RSS once it has stopped changing for 0.2 s (or after ``limit`` s)."""
    gc.collect()
    deadline = time.monotonic() + limit
    last, same = rss_bytes(), 0
    while same < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
        now = rss_bytes()
        same = same + 1 if now == last else 0
        last = now
    return last


def _count_threads_and_sockets(pid: Any) -> Tuple[int, int]:
    """Threads and open sockets of process ``pid`` (or ``"self"``); -1, -1 if unknown."""
    try:
        threads = len(os.listdir(f"/proc/{pid}/task"))
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return -1, -1
    sockets = 0
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:"):
                sockets += 1
        except OSError:
            pass
    return threads, sockets


def os_thread_count() -> int:
    return _count_threads_and_sockets("self")[0]


def socket_count() -> int:
    """Open sockets of this process (its live connections)."""
    return _count_threads_and_sockets("self")[1]


# --------------------------------------------------------------------------
# Scenarios 1 and 2, in this process
# --------------------------------------------------------------------------

def timed_call(client: Any, n: int, checker: Checker, what: str) -> Optional[Tuple[float, float]]:
    """One call: (seconds, seconds to the first chunk), None if it failed."""
    try:
        started = time.perf_counter()
        text, first = client.call(n)
        ended = time.perf_counter()
    except Exception as exc:
        checker.failed(what, exc)
        return None
    if not checker.check(what, text, n):
        return None
    return ended - started, first - started


def rotated(items: Sequence[Any], r: int) -> List[Any]:
    r %= len(items)
    return list(items[r:]) + list(items[:r])


def bench_throughput(clients: Dict[str, Any], n: int, rounds: int,
                     checker: Checker) -> Dict[str, Dict[str, Optional[float]]]:
    """Best chunks/s and best time to first chunk of an ``n``-chunk reply."""
    rates: Dict[str, List[float]] = {name: [] for name in clients}
    firsts: Dict[str, List[float]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in rotated(list(clients), r):
            timing = timed_call(clients[name], n, checker, f"throughput {name} round {r + 1}")
            if timing is not None:
                rates[name].append(n / timing[0])
                firsts[name].append(timing[1])
    return {name: {"chunks_per_s": max(rates[name], default=None),
                   "first_chunk_s": min(firsts[name], default=None)} for name in clients}


def bench_round_trip(clients: Dict[str, Any], calls: int, rounds: int,
                     checker: Checker) -> Dict[str, Optional[float]]:
    """Best (over rounds) median seconds of a 1-chunk call on an open socket."""
    medians: Dict[str, List[float]] = {name: [] for name in clients}
    for r in range(rounds):
        for name in rotated(list(clients), r):
            samples = []
            for i in range(calls):
                timing = timed_call(clients[name], 1, checker, f"round trip {name} #{i}")
                if timing is not None:
                    samples.append(timing[0])
            if samples:
                medians[name].append(statistics.median(samples))
    return {name: min(medians[name], default=None) for name in clients}


def _cold_myshell(peer: Peer) -> Tuple[Callable[[], CallResult], Callable[[], None]]:
    client = MyshellBench(peer.base_url)
    return lambda: client.call(1), client.close


def _cold_raw(peer: Peer) -> Tuple[Callable[[], CallResult], Callable[[], None]]:
    client = RawBench(peer.ws_url)
    return lambda: client.call(1), client.close


def _cold_socketio(peer: Peer) -> Tuple[Callable[[], CallResult], Callable[[], None]]:
    client = SocketIOBench(peer.base_url)
    return lambda: client.call(1), client.close


def _cold_aiohttp(peer: Peer) -> Tuple[Callable[[], CallResult], Callable[[], None]]:
    return lambda: aiohttp_cold_call(peer.ws_url, 1), lambda: None


COLD_STARTERS = {
    "myshell_sync": _cold_myshell,
    "raw websocket-client": _cold_raw,
    "aiohttp (gpt4free style)": _cold_aiohttp,
    "python-socketio": _cold_socketio,
}


def bench_cold(peer: Peer, calls: int, rounds: int, checker: Checker) -> Dict[str, Optional[float]]:
    """Best (over rounds) median seconds of a 1-chunk call on a new client:
    construct, connect, handshake, send, whole reply. Closing is not timed
    (gpt4free's call closes its session inside the call, so it is there)."""
    medians: Dict[str, List[float]] = {name: [] for name in COLD_STARTERS}
    for r in range(rounds):
        for name in rotated(list(COLD_STARTERS), r):
            samples = []
            for i in range(calls):
                what = f"cold {name} #{i}"
                close: Callable[[], None] = lambda: None
                try:
                    started = time.perf_counter()
                    call, close = COLD_STARTERS[name](peer)
                    text, _ = call()
                    elapsed = time.perf_counter() - started
                except Exception as exc:
                    checker.failed(what, exc)
                    continue
                finally:
                    try:
                        close()
                    except Exception as exc:
                        checker.failed(what + " close()", exc)
                if checker.check(what, text, 1):
                    samples.append(elapsed)
            if samples:
                medians[name].append(statistics.median(samples))
    return {name: min(medians[name], default=None) for name in COLD_STARTERS}


def bench_peer_ceiling(peer: Peer, n: int, rounds: int) -> Optional[float]:
    """Chunks/s at which the peer delivers an ``n``-chunk reply to a client
    that only counts bytes (no WebSocket or JSON decoding)."""
    client = RawBench(peer.ws_url)
    sock = client.ws.sock
    assert sock is not None
    buf = bytearray(1 << 20)
    best = None
    try:
        for _ in range(rounds):
            req_id = str(uuid.uuid4())
            total = reply_bytes(n, req_id.encode())
            frame = text_chat_frame(req_id, n)
            started = time.perf_counter()
            client.ws.send(frame)
            got = 0
            while got < total:
                received = sock.recv_into(buf)
                if not received:
                    return None
                got += received
            rate = n / (time.perf_counter() - started)
            best = rate if best is None else max(best, rate)
    finally:
        client.close()
    return best


# --------------------------------------------------------------------------
# Scenarios 3 and 4, each in a fresh process (``run.py --child ...``)
# --------------------------------------------------------------------------

THREAD_MODELS = ("samantha", "gpt-3.5-turbo", "gpt-4")
SNAPSHOT_CHUNKS = 50  # reply size of the untimed round that counts threads


def child_threads(base_url: str, threads: int, n: int, rounds: int) -> Dict[str, Any]:
    """``threads`` threads on one client, each streaming an ``n``-chunk reply
    (models rotate over THREAD_MODELS; max_connections=threads).

    An untimed first round opens the connections and, once every thread
    holds its first chunk, counts this process's threads and sockets with
    all ``threads`` streams in flight. Peaks during the timed rounds are
    sampled by the parent (see ``run_child``).
    """
    from myshell_sync import Myshell

    checker = Checker()
    rss_before = rss_bytes()
    client = Myshell(base_url, captcha_delay=0, max_connections=threads)
    snapshot: Dict[str, int] = {}

    def one_round(size: int, label: str, pause: bool) -> Optional[float]:
        start = threading.Barrier(threads + 1)
        holding = threading.Barrier(threads + 1)
        counted = threading.Event()
        ended = [0.0] * threads

        def worker(i: int) -> None:
            model = THREAD_MODELS[i % len(THREAD_MODELS)]
            start.wait()
            try:
                chunks = client.generate(model, [{"role": "user", "content": prompt_for(size)}])
                parts = [next(chunks)]
                if pause:
                    holding.wait()
                    counted.wait()
                parts.extend(chunks)
            except Exception as exc:
                checker.failed(f"{label} thread {i}", exc)
                if pause:
                    holding.abort()
                return
            ended[i] = time.perf_counter()
            checker.check(f"{label} thread {i}", "".join(parts), size)

        workers = [threading.Thread(target=worker, args=(i,), name=f"bench-{i}")
                   for i in range(threads)]
        for thread in workers:
            thread.start()
        start.wait()
        started = time.perf_counter()
        if pause:
            try:
                holding.wait()
                snapshot["threads"] = os_thread_count()
                snapshot["sockets"] = socket_count()
            except threading.BrokenBarrierError:
                pass
            counted.set()
        for thread in workers:
            thread.join()
        if not all(ended):
            return None
        return max(ended) - started

    try:
        one_round(min(n, SNAPSHOT_CHUNKS), "threads snapshot", pause=True)
        rates = []
        for r in range(rounds):
            wall = one_round(n, f"threads round {r + 1}", pause=False)
            if wall is not None:
                rates.append(threads * n / wall)
    finally:
        client.close()
    in_flight_threads = snapshot.get("threads", -1)
    return {"chunks_per_s": max(rates, default=None),
            "snapshot_threads": in_flight_threads,
            "snapshot_library_threads": in_flight_threads - 1 - threads,
            "snapshot_connections": snapshot.get("sockets", -1),
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            "rss_before": rss_before, "checked": checker.checked, "problems": checker.problems}


def child_memory(base_url: str, streams: int, n: int) -> Dict[str, Any]:
    """RSS of an idle client with one warm connection, then of ``streams``
    paused streams (distinct bot uids, so they may share that connection),
    each having read its first chunk of an ``n``-chunk reply."""
    from myshell_sync import Myshell

    checker = Checker()
    rss_import = settled_rss()
    client = Myshell(base_url, captcha_delay=0)
    try:
        client.connect(MODEL)
        checker.check("memory warm-up", "".join(
            client.generate(MODEL, [{"role": "user", "content": prompt_for(n)}])), n)
        rss_idle = settled_rss()
        sockets_idle = socket_count()
        paused = []
        for k in range(streams):
            chunks = client.generate(f"{k + 1:032x}", [{"role": "user", "content": prompt_for(n)}])
            paused.append((next(chunks), chunks))
        rss_streams = settled_rss()
        sockets_streams = socket_count()
        for k, (first, chunks) in enumerate(paused):
            checker.check(f"memory stream {k}", first + "".join(chunks), n)
        del paused
    finally:
        client.close()
    text_bytes = len(expected_text(n).encode())
    per_stream = (rss_streams - rss_idle) / streams
    return {"rss_import": rss_import, "rss_idle": rss_idle, "idle_delta": rss_idle - rss_import,
            "connections_idle": sockets_idle, "connections_streams": sockets_streams,
            "per_stream": per_stream, "text_bytes": text_bytes,
            "per_stream_net": per_stream - text_bytes,
            "checked": checker.checked, "problems": checker.problems}


def run_child(args: List[str], timeout: float) -> Dict[str, Any]:
    """Run ``run.py --child ...``; its JSON result, plus the peak thread and
    socket counts of that process, sampled from here every 2 ms (a sampler
    inside the child would wait for the GIL behind the threads it counts)."""
    import tempfile

    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child", *args],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True)
        deadline = time.monotonic() + timeout
        peak_threads = peak_sockets = 0
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"child {args[0]} took longer than {timeout:g} s")
            threads, sockets = _count_threads_and_sockets(proc.pid)
            peak_threads = max(peak_threads, threads)
            peak_sockets = max(peak_sockets, sockets)
            time.sleep(0.002)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    if proc.returncode != 0 or not stdout.strip():
        raise RuntimeError(f"child {args[0]} exited {proc.returncode}: {stderr.strip()[-800:]}")
    result: Dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    result["peak_threads"] = peak_threads
    result["peak_sockets"] = peak_sockets
    return result


# --------------------------------------------------------------------------
# Scenario 5: import time, in fresh interpreters
# --------------------------------------------------------------------------

IMPORTS = {"myshell_sync": "import myshell_sync",
           "requests + websocket": "import requests, websocket",
           "bare interpreter": "pass"}


def _importtime_us(stderr: str) -> int:
    """Sum of the cumulative -X importtime of the top-level imports."""
    total = 0
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        fields = line.split("|")
        if len(fields) != 3 or not fields[1].strip().isdigit():
            continue
        name = fields[2][1:]
        if name and not name.startswith(" ") and name.strip() in (
                "myshell_sync", "requests", "websocket"):
            total += int(fields[1])
    return total


def bench_import(runs: int) -> Dict[str, Dict[str, float]]:
    """Median -X importtime (us) and median wall time (s) of each import.

    The interpreters start in an empty directory (``-c`` puts the current
    directory first on sys.path), and must import the same myshell_sync
    file as this process.
    """
    import shutil
    import tempfile

    import myshell_sync

    walls: Dict[str, List[float]] = {name: [] for name in IMPORTS}
    import_us: Dict[str, List[int]] = {name: [] for name in IMPORTS}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPROFILEIMPORTTIME"}
    empty = tempfile.mkdtemp(prefix="myshell-bench-")
    try:
        where = subprocess.run(
            [sys.executable, "-c", "import myshell_sync; print(myshell_sync.__file__)"],
            check=True, env=env, cwd=empty, capture_output=True, text=True).stdout.strip()
        if os.path.realpath(where) != os.path.realpath(myshell_sync.__file__):
            raise RuntimeError(f"a fresh interpreter imports {where}, "
                               f"not the measured {myshell_sync.__file__}")
        for r in range(runs + 1):  # round 0 warms the .pyc caches and is dropped
            for name in rotated(list(IMPORTS), r):
                code = IMPORTS[name]
                started = time.perf_counter()
                subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=empty)
                wall = time.perf_counter() - started
                timed = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                                       check=True, env=env, cwd=empty, capture_output=True,
                                       text=True)
                if r:
                    walls[name].append(wall)
                    import_us[name].append(_importtime_us(timed.stderr))
    finally:
        shutil.rmtree(empty, ignore_errors=True)
    return {name: {"wall_s": statistics.median(walls[name]),
                   "importtime_us": statistics.median(import_us[name])} for name in IMPORTS}


# --------------------------------------------------------------------------
# The table
# --------------------------------------------------------------------------

@dataclass
class Row:
    measure: str
    value: str
    compared: str = ""
    ratio: str = ""
    target: str = ""
    result: str = ""


@dataclass
class Report:
    rows: List[Row] = field(default_factory=list)

    def add(self, measure: str, value: str, compared: str = "", factor: Optional[float] = None,
            target: str = "", passed: Optional[bool] = None) -> None:
        """One row; ``factor`` is the ratio shown, ``passed`` None means n/a."""
        if not target:
            result = ""
        elif passed is None:
            result = "n/a"
        else:
            result = "PASS" if passed else "MISS"
        shown = "" if factor is None else f"{factor:.2f}x"
        self.rows.append(Row(measure, value, compared, shown, target, result))

    def markdown(self) -> str:
        header = Row("measure", "myshell_sync", "compared with", "ratio", "target", "result")
        rows = [cols_of(row) for row in [header] + self.rows]
        widths = [max(len(cell) for cell in column) for column in zip(*rows)]

        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(rows[0]), rule] + [line(cells) for cells in rows[1:]])


def cols_of(row: Row) -> Tuple[str, str, str, str, str, str]:
    return (row.measure, row.value, row.compared, row.ratio, row.target, row.result)


def ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None or b == 0 else a / b


def fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def fmt_rate(value: Optional[float]) -> str:
    return "failed" if value is None else f"{value:,.0f} chunks/s"


def fmt_ms(value: Optional[float]) -> str:
    if value is None:
        return "failed"
    return f"{value * 1e3:.3f} ms" if value < 0.01 else f"{value * 1e3:.2f} ms"


def fmt_mb(value: float) -> str:
    return f"{value / 2 ** 20:.1f} MB"


def fmt_kb(value: float) -> str:
    return f"{value / 1024:.1f} KB"


def at_least(value: Optional[float], goal: float) -> Optional[bool]:
    return None if value is None else value >= goal


def at_most(value: Optional[float], goal: float) -> Optional[bool]:
    return None if value is None else value <= goal


def build_report(res: Dict[str, Any], sizes: argparse.Namespace) -> Report:
    rep = Report()
    tp, rtt, cold = res["throughput"], res["round_trip"], res["cold"]
    ms, raw, aio, sio = CLIENTS
    ms_rate = tp[ms]["chunks_per_s"]
    n = sizes.chunks
    rep.add(f"1. stream throughput, {n:,}-chunk reply, warm", fmt_rate(ms_rate),
            f"raw websocket-client {fmt_rate(tp[raw]['chunks_per_s'])}",
            ratio(ms_rate, tp[raw]["chunks_per_s"]), ">= 0.8x",
            at_least(ratio(ms_rate, tp[raw]["chunks_per_s"]), 0.8))
    rep.add("", "", f"aiohttp, gpt4free style {fmt_rate(tp[aio]['chunks_per_s'])}",
            ratio(ms_rate, tp[aio]["chunks_per_s"]), ">= 1.0x",
            at_least(ratio(ms_rate, tp[aio]["chunks_per_s"]), 1.0))
    rep.add("", "", f"python-socketio {fmt_rate(tp[sio]['chunks_per_s'])}",
            ratio(ms_rate, tp[sio]["chunks_per_s"]), ">= 10x",
            at_least(ratio(ms_rate, tp[sio]["chunks_per_s"]), 10.0))
    rep.add("", "", f"peer ceiling (client only counts bytes) {fmt_rate(res['peer_ceiling'])}")
    ms_first, raw_first = tp[ms]["first_chunk_s"], tp[raw]["first_chunk_s"]
    first_ok = None if ms_first is None or raw_first is None else (
        ms_first <= 2 * raw_first or ms_first < 0.005)
    rep.add("1. time to first chunk (same calls)", fmt_ms(ms_first),
            f"raw websocket-client {fmt_ms(raw_first)}", ratio(ms_first, raw_first),
            "<= 2x or < 5 ms", first_ok)
    rep.add("", "", f"aiohttp {fmt_ms(tp[aio]['first_chunk_s'])}; "
            f"python-socketio {fmt_ms(tp[sio]['first_chunk_s'])}")
    rep.add(f"2. warm round trip, 1 chunk (median of {sizes.rtt_calls})", fmt_ms(rtt[ms]),
            f"raw websocket-client {fmt_ms(rtt[raw])}", ratio(rtt[ms], rtt[raw]),
            "<= 1.5x", at_most(ratio(rtt[ms], rtt[raw]), 1.5))
    rep.add("", "", f"aiohttp {fmt_ms(rtt[aio])}", ratio(rtt[ms], rtt[aio]))
    rep.add("", "", f"python-socketio {fmt_ms(rtt[sio])}", ratio(rtt[ms], rtt[sio]))
    floor = rtt.get("threaded floor")
    rep.add("", "", f"threaded floor (reader thread + queue) {fmt_ms(floor)}",
            ratio(rtt[ms], floor))
    rep.add("", "", f"(the floor itself is {fmt_ratio(ratio(floor, rtt[raw]))} the raw loop)")
    rep.add(f"2. cold call, new client (median of {sizes.cold_calls})", fmt_ms(cold[ms]),
            f"its warm round trip {fmt_ms(rtt[ms])}", ratio(cold[ms], rtt[ms]),
            ">= 5x slower", at_least(ratio(cold[ms], rtt[ms]), 5.0))
    rep.add("", "", f"raw websocket-client {fmt_ms(cold[raw])}", ratio(cold[ms], cold[raw]))
    rep.add("", "", f"aiohttp (whole gpt4free call) {fmt_ms(cold[aio])}",
            ratio(cold[ms], cold[aio]))
    rep.add("", "", f"python-socketio {fmt_ms(cold[sio])}", ratio(cold[ms], cold[sio]))
    th = res["threads"]
    rep.add(f"3. {sizes.threads} threads x {sizes.thread_chunks:,}-chunk replies, one client",
            fmt_rate(th["chunks_per_s"]), f"single stream (row 1) {fmt_rate(ms_rate)}",
            ratio(th["chunks_per_s"], ms_rate), ">= 0.7x",
            at_least(ratio(th["chunks_per_s"], ms_rate), 0.7))
    workers = sizes.threads
    library = max(th["snapshot_library_threads"], th["peak_threads"] - 1 - workers)
    connections = max(th["snapshot_connections"], th["peak_sockets"])
    rep.add("3. library threads (in flight / peak)",
            f"{th['snapshot_library_threads']} / {th['peak_threads'] - 1 - workers}",
            f"live connections {th['snapshot_connections']} / {th['peak_sockets']}", None,
            "<= conns + 2", library <= connections + 2)
    rep.add("3. peak threads / peak RSS (whole process)",
            f"{th['peak_threads']} / {fmt_mb(th['peak_rss'])}",
            f"main + {workers} workers; RSS before the client {fmt_mb(th['rss_before'])}")
    mem = res["memory"]
    rep.add("4. idle client, one warm connection (RSS)", fmt_mb(mem["rss_idle"]),
            f"+{fmt_kb(mem['idle_delta'])} over `import myshell_sync` alone")
    rep.add(f"4. per paused stream ({sizes.streams} x {sizes.stream_chunks}-chunk replies)",
            fmt_kb(mem["per_stream_net"]),
            f"RSS delta {fmt_kb(mem['per_stream'])} - text {fmt_kb(mem['text_bytes'])}; "
            f"connections {mem['connections_streams']}", None, "<= 100 KB",
            mem["per_stream_net"] <= 100 * 1024)
    imp = res["import"]
    ms_us = imp["myshell_sync"]["importtime_us"]
    base_us = imp["requests + websocket"]["importtime_us"]
    rep.add(f"5. import time (-X importtime, median of {sizes.import_runs})",
            f"{ms_us / 1e3:.1f} ms",
            f"import requests, websocket {base_us / 1e3:.1f} ms", ratio(ms_us, base_us),
            "<= 1.2x", at_most(ratio(ms_us, base_us), 1.2))
    bare = imp["bare interpreter"]["wall_s"]
    ms_wall = imp["myshell_sync"]["wall_s"] - bare
    base_wall = imp["requests + websocket"]["wall_s"] - bare
    rep.add("5. import, wall time over a bare interpreter", f"{ms_wall * 1e3:.1f} ms",
            f"requests + websocket {base_wall * 1e3:.1f} ms (bare {bare * 1e3:.1f} ms)",
            ratio(ms_wall, base_wall))
    return rep


def myshell_sync_source() -> str:
    """Where the measured myshell_sync comes from, with its git commit."""
    import myshell_sync

    where = os.path.dirname(os.path.abspath(myshell_sync.__file__))
    try:
        commit = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain", "--", "."],
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return f"myshell_sync from {where} (not a git checkout)"
    return f"myshell_sync from {where} at git {commit}" + (
        " with uncommitted changes" if dirty else "")


def machine() -> Dict[str, str]:
    from importlib import metadata

    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    versions = []
    for dist in ("myshell_sync", "websocket-client", "aiohttp", "python-socketio"):
        try:
            versions.append(f"{dist} {metadata.version(dist)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    return {
        "source": myshell_sync_source(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}; {cpu}; {usable} usable CPUs of {os.cpu_count()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "versions": ", ".join(versions),
        "load": load,
    }


NOTES = """\
How to read it (see the docstring of benchmarks/run.py for the details):

- Peer: a raw-socket MyShell server in its own process that writes pre-encoded frames in
  `sendall` batches of 512; "peer ceiling" is its delivery rate to a client that only counts
  bytes. Chunk frames look like
  `42/chat,["text_stream",{"reqId":"<uuid4>","data":{"text":"w123 ","index":123,"isFinal":false}}]`.
- Throughput: chunks / seconds from sending the request to holding the whole text, on a socket
  opened before the timing; best of the rounds. Time to first chunk: from the start of the
  call to the first chunk in the caller's hands, same calls, best of the rounds.
- aiohttp (gpt4free style): throughput and warm round trip use one event loop and one open
  `ws_connect` socket and drive each reply with `loop.run_until_complete(gen.__anext__())` per
  chunk (gpt4free's sync wrapper); the cold call is a whole gpt4free call (new event loop,
  `ClientSession`, `ws_connect`, handshake, send, stream, close) without its 5 s captcha sleep.
- python-socketio: its Engine.IO client starts a thread per received message; the consumer
  orders chunks by `data.index` and waits for all of them.
- Cold call: construct the client, connect, handshake, send, whole 1-chunk reply
  (`captcha_delay=0`); closing is not timed except inside the gpt4free call.
- 32 threads: one `Myshell(url, captcha_delay=0, max_connections=32)`, thread i asks
  `samantha`, `gpt-3.5-turbo`, `gpt-4` in turn (a bot's requests never share a connection);
  aggregate = all chunks / (last reply's end - start), best of the timed rounds. A first,
  untimed round opens the connections and pauses every thread on its first chunk: library
  threads = OS threads - main thread - workers, live connections = open sockets, counted then
  (first figure) and as peaks sampled from the parent process every 2 ms during the whole child
  (second figure). The child is a fresh process; peak RSS is its `ru_maxrss`.
- Memory (a fresh process): RSS after a warm connection and one call, then after K streams to
  K distinct bot uids (so they can share one connection) each read their first chunk and paused
  while the client receives the rest; per stream = RSS delta / K minus the UTF-8 size of the
  whole reply text.
- Import: fresh interpreters; `-X importtime` cumulative time of the top-level imports (median),
  and wall time minus a bare interpreter's (median).
"""


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--output", default=os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "BENCHMARKS.md"),
        help="where to write the table (default: BENCHMARKS.md in the repository)")
    parser.add_argument("--rounds", type=int, help="rounds per figure (default 3)")
    parser.add_argument("--peer", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child", choices=("threads", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    quick = args.quick
    args.rounds = args.rounds or 3
    args.chunks = 2_000 if quick else 20_000
    args.rtt_calls = 30 if quick else 200
    args.cold_calls = 5 if quick else 20
    args.threads = 8 if quick else 32
    args.thread_chunks = 200 if quick else 2_000
    args.streams = 20 if quick else 100
    args.stream_chunks = 100
    args.import_runs = 3 if quick else 10
    return args


def run_child_mode(args: argparse.Namespace) -> int:
    if args.child == "threads":
        threads, n, rounds = args.size
        out = child_threads(args.url, threads, n, rounds)
    else:
        streams, n = args.size
        out = child_memory(args.url, streams, n)
    print(json.dumps(out))
    return 0


def measure(args: argparse.Namespace, peer: Peer, checker: Checker,
            say: Callable[[str], None]) -> Dict[str, Any]:
    res: Dict[str, Any] = {}
    # One full-size call first, so the peer has the reply encoded.
    warm = RawBench(peer.ws_url)
    checker.check("peer warm-up", warm.call(args.chunks)[0], args.chunks)
    warm.close()
    say("peer ceiling")
    res["peer_ceiling"] = bench_peer_ceiling(peer, args.chunks, args.rounds)
    clients: Dict[str, Any] = {}
    try:
        clients["myshell_sync"] = MyshellBench(peer.base_url).warm()
        clients["raw websocket-client"] = RawBench(peer.ws_url)
        clients["aiohttp (gpt4free style)"] = AiohttpBench(peer.ws_url)
        clients["python-socketio"] = SocketIOBench(peer.base_url)
        for name, client in clients.items():
            timed_call(client, 1, checker, f"warm-up {name}")
        say(f"1. throughput ({args.chunks:,} chunks x {args.rounds} rounds x 4 clients)")
        res["throughput"] = bench_throughput(clients, args.chunks, args.rounds, checker)
        say(f"2. warm round trip ({args.rtt_calls} calls x {args.rounds} rounds x 5 clients)")
        clients["threaded floor"] = ThreadedFloorBench(peer.ws_url)
        res["round_trip"] = bench_round_trip(clients, args.rtt_calls, args.rounds, checker)
        res["socketio_out_of_order"] = clients["python-socketio"].out_of_order
    finally:
        for client in clients.values():
            try:
                client.close()
            except Exception as exc:
                checker.failed(f"close {client.label}", exc)
    say(f"2. cold calls ({args.cold_calls} calls x {args.rounds} rounds x 4 clients)")
    res["cold"] = bench_cold(peer, args.cold_calls, args.rounds, checker)
    say(f"3. {args.threads} threads x {args.thread_chunks:,} chunks (fresh process)")
    res["threads"] = run_child(["threads", "--url", peer.base_url, "--size", str(args.threads),
                                str(args.thread_chunks), str(args.rounds)], timeout=300)
    say(f"4. memory, {args.streams} paused streams (fresh process)")
    res["memory"] = run_child(["memory", "--url", peer.base_url, "--size", str(args.streams),
                               str(args.stream_chunks)], timeout=120)
    for key in ("threads", "memory"):
        checker.checked += res[key]["checked"]
        checker.problems += res[key]["problems"]
    say(f"5. import time ({args.import_runs} runs x 3 interpreters x 2)")
    res["import"] = bench_import(args.import_runs)
    return res


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    if args.peer:
        return peer_main()
    if args.child:
        return run_child_mode(args)
    faulthandler.dump_traceback_later(900, exit=True)  # never hang forever
    started = time.perf_counter()
    info = machine()

    def say(step: str) -> None:
        print(f"[{time.perf_counter() - started:6.1f}s] {step}", file=sys.stderr, flush=True)

    checker = Checker()
    peer = Peer()
    try:
        res = measure(args, peer, checker, say)
    finally:
        peer.stop()
    elapsed = time.perf_counter() - started
    table = build_report(res, args).markdown()
    size = "--quick" if args.quick else "full"
    head = [
        f"myshell_sync benchmark ({size} run, {args.rounds} rounds), {info['date']}",
        f"{info['machine']}, {info['python']}; load average at start {info['load']}",
        info["versions"],
        info["source"],
    ]
    verdict = (f"replies checked: {checker.checked}, all text correct, no failed calls"
               if not checker.problems else
               f"WRONG RESULTS: {len(checker.problems)} wrong replies or failed calls")
    tail = [verdict, f"python-socketio chunks seen out of order: {res['socketio_out_of_order']}",
            f"took {elapsed:.1f} s"]
    print("\n".join(head) + "\n\n" + table + "\n\n" + "\n".join(tail))
    for problem in checker.problems[:20]:
        print(f"  {problem}")
    if not args.no_write:
        with open(args.output, "w", encoding="utf-8") as out:
            out.write("# Benchmarks\n\n")
            out.write("Written by `python benchmarks/run.py` (after "
                      "`pip install -e \".[bench]\"`); ratios are from one run on a "
                      "shared machine.\n\n")
            out.write("\n".join(f"- {line}" for line in head) + "\n\n")
            out.write(table + "\n\n")
            out.write("\n".join(f"- {line}" for line in tail) + "\n\n")
            out.write(NOTES)
        print(f"wrote {args.output}")
    return 1 if checker.problems else 0


if __name__ == "__main__":
    sys.exit(main())
