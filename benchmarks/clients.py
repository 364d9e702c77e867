"""The clients measured, all answered by the same peer on 127.0.0.1.

Each has ``call(n) -> (text, perf_counter() at the first chunk)`` for an
``n``-chunk reply on its open connection, and ``close()``:

* ``myshell_sync``: ``Myshell(url, captcha_delay=0)``; warm means its pooled
  connection is already open; a call is ``for chunk in client.generate(...)``.
* raw websocket-client: ``websocket.create_connection(url,
  skip_utf8_validation=True)``, the handshake, then one tight loop of
  ``ws.recv()`` + ``json.loads`` until ``message_replied`` (no reqId routing,
  no timeouts, no threads): the ceiling for anything built on websocket-client.
* threaded floor: the raw loop on a reader thread feeding a ``queue.Queue``;
  a reference for the round trip, not a competitor.
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
  it holds all of them and ``message_replied``. It connects with a 30 s wait
  (a loaded machine is slow to start its threads) and is opened anew for
  every round (see ``measure.Slot``).

The HTTP route (``Myshell(url, transport="http")`` against):

* requests + iter_lines: ``requests.Session().post(url, json=..., headers=...,
  stream=True)``, then ``for line in response.iter_lines()``: an ``event:``
  line names the event, a ``data:`` line of a ``…_TEXT`` event is
  ``json.loads``-ed for its ``content``; read to the end of the body (so the
  session keeps the connection).
* httpx + httpx-sse: ``httpx.Client()`` and ``connect_sse(client, "POST", url,
  json=..., headers=...)``, ``for sse in source.iter_sse()``, ``sse.json()``
  of each ``…_TEXT`` event, to the end of the body.

The key-based API (``Myshell(url, transport="openapi", api_key=...)``
against requests.Session().post + json: ``session.post(url, json=...,
headers=...)``, ``response.json()["result"]`` then ``json.loads`` of it).

The OpenAI layer: ``OpenAI(client).chat.completions.create(..., stream=True)``
on the same warm ``Myshell`` as myshell_sync's row, reading
``chunk.choices[0].delta.content``.

A new client is a class here plus an entry in :data:`WARM`,
:data:`ROUND_TRIP_REFERENCES`, :data:`HTTP_CLIENTS`, :data:`OPENAPI_CLIENTS`
or :data:`COLD_STARTERS`.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import time
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from .protocol import (
    API_KEY,
    AUTH,
    CALL_TIMEOUT,
    EVENT_PREFIX,
    HTTP_HEADERS,
    HTTP_MODEL,
    MODEL,
    NAMESPACE,
    OPENAPI_HEADERS,
    OPENAPI_MODEL,
    SSE_TEXT,
    chat_body,
    messages_for,
    openapi_body,
    prompt_for,
    text_chat_frame,
    text_chat_payload,
)

if TYPE_CHECKING:
    from .peer import Peer

CallResult = tuple[str, float]

MYSHELL = "myshell_sync"
RAW = "raw websocket-client"
AIOHTTP = "aiohttp (gpt4free style)"
SOCKETIO = "python-socketio"
FLOOR = "threaded floor"
ONE_SHOT = "myshell_sync.generate() (one-shot)"
MYSHELL_HTTP = "myshell_sync (http)"
REQUESTS_SSE = "requests + iter_lines"
HTTPX_SSE = "httpx + httpx-sse"
MYSHELL_OPENAPI = "myshell_sync (openapi)"
REQUESTS_JSON = "requests.Session().post + json"
OPENAI_LAYER = "OpenAI(client) stream=True"

#: The model each of myshell_sync's transports is asked for.
TRANSPORT_MODELS = {"websocket": MODEL, "http": HTTP_MODEL, "openapi": OPENAPI_MODEL}


class MyshellBench:
    label = MYSHELL

    def __init__(self, base_url: str, transport: str = "websocket", **options: Any) -> None:
        from myshell_sync import Myshell

        self.model = TRANSPORT_MODELS[transport]
        if transport == "openapi":
            options.setdefault("api_key", API_KEY)
        self.client = Myshell(base_url, captcha_delay=0, transport=transport, **options)

    def warm(self) -> MyshellBench:
        self.client.connect(self.model)
        return self

    def call(self, n: int) -> CallResult:
        chunks = self.client.generate(self.model, [{"role": "user", "content": prompt_for(n)}])
        parts = [next(chunks)]
        first = time.perf_counter()
        parts.extend(chunks)
        return "".join(parts), first

    def close(self) -> None:
        self.client.close()


class OpenAILayerBench:
    """``OpenAI(client)`` over a warm ``Myshell`` on ``transport``."""

    label = OPENAI_LAYER

    def __init__(self, base_url: str, transport: str = "websocket") -> None:
        from myshell_sync.openai_api import OpenAI

        self.inner = MyshellBench(base_url, transport).warm()
        self.model = self.inner.model
        self.openai = OpenAI(self.inner.client)

    def call(self, n: int) -> CallResult:
        parts: list[str] = []
        first = 0.0
        stream = self.openai.chat.completions.create(model=self.model, messages=messages_for(n), stream=True)
        for chunk in stream:
            if chunk.choices:
                content = chunk.choices[0].delta.content
                if content:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(content)
        return "".join(parts), first

    def close(self) -> None:
        self.inner.close()


class RequestsSSEBench:
    """A user's SSE loop: requests, ``stream=True`` and ``iter_lines()``."""

    label = REQUESTS_SSE

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()

    def call(self, n: int) -> CallResult:
        parts: list[str] = []
        first = 0.0
        event = None
        with self.session.post(
            self.url, json=chat_body(n), headers=HTTP_HEADERS, stream=True, timeout=CALL_TIMEOUT
        ) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if line.startswith(b"event:"):
                    event = line[6:].strip().decode()
                elif line.startswith(b"data:") and event == SSE_TEXT:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(json.loads(line[5:])["content"])
        return "".join(parts), first

    def close(self) -> None:
        self.session.close()


class HttpxSSEBench:
    """httpx with httpx-sse's ``connect_sse``, as its README shows."""

    label = HTTPX_SSE

    def __init__(self, url: str) -> None:
        import httpx

        self.url = url
        self.client = httpx.Client(timeout=CALL_TIMEOUT)

    def call(self, n: int) -> CallResult:
        from httpx_sse import connect_sse

        parts: list[str] = []
        first = 0.0
        with connect_sse(self.client, "POST", self.url, json=chat_body(n), headers=HTTP_HEADERS) as source:
            source.response.raise_for_status()
            for sse in source.iter_sse():
                if sse.event == SSE_TEXT:
                    if not parts:
                        first = time.perf_counter()
                    parts.append(sse.json()["content"])
        return "".join(parts), first

    def close(self) -> None:
        self.client.close()


class RequestsJSONBench:
    """The key-based API the plain way: ``Session().post`` and ``json``."""

    label = REQUESTS_JSON

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self.session = requests.Session()

    def call(self, n: int) -> CallResult:
        response = self.session.post(self.url, json=openapi_body(n), headers=OPENAPI_HEADERS, timeout=CALL_TIMEOUT)
        response.raise_for_status()
        text = json.loads(response.json()["result"])
        return text, time.perf_counter()

    def close(self) -> None:
        self.session.close()


class RawBench:
    """The ceiling: one tight ``recv`` + ``json.loads`` loop, no threads."""

    label = RAW

    def __init__(self, ws_url: str) -> None:
        import websocket

        self.ws = websocket.create_connection(ws_url, skip_utf8_validation=True, timeout=CALL_TIMEOUT)
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
        parts: list[str] = []
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
    can cost per call. A reference for the round trip, not a competitor.

    Its ``call`` repeats the raw loop's chunk handling inline on purpose: a
    shared helper would add a function call per chunk to the measured loops.
    """

    label = FLOOR

    def __init__(self, ws_url: str) -> None:
        super().__init__(ws_url)
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
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
        parts: list[str] = []
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
    label = SOCKETIO
    #: Chunks seen out of order by every instance (one is opened per round).
    total_out_of_order = 0

    def __init__(self, base_url: str) -> None:
        import socketio

        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.out_of_order = 0
        put = self.events.put
        self.sio = socketio.Client(reconnection=False, handle_sigint=False)
        self.sio.on("text_stream", lambda data: put(("text_stream", data)), namespace=NAMESPACE)
        self.sio.on("message_replied", lambda data: put(("message_replied", data)), namespace=NAMESPACE)
        self.sio.connect(
            base_url, transports=["websocket"], namespaces=[NAMESPACE], auth=AUTH, socketio_path="ws", wait_timeout=30
        )

    def call(self, n: int) -> CallResult:
        req_id = str(uuid.uuid4())
        self.sio.emit("text_chat", text_chat_payload(req_id, n), namespace=NAMESPACE)
        chunks: dict[int, str] = {}
        final: int | None = None
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
                SocketIOBench.total_out_of_order += 1
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
    label = AIOHTTP

    def __init__(self, ws_url: str) -> None:
        import aiohttp

        async def open_ws() -> tuple[Any, Any]:
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


ClientFactory = Callable[["Peer"], Any]
ColdStarter = Callable[["Peer"], tuple[Callable[[], CallResult], Callable[[], None]]]

#: The warm clients of rows 1 and 2, opened in this order; rounds rotate over them.
WARM: dict[str, ClientFactory] = {
    MYSHELL: lambda peer: MyshellBench(peer.base_url).warm(),
    RAW: lambda peer: RawBench(peer.ws_url),
    AIOHTTP: lambda peer: AiohttpBench(peer.ws_url),
    SOCKETIO: lambda peer: SocketIOBench(peer.base_url),
}

#: Opened after the throughput rounds and measured in the warm round trip only.
ROUND_TRIP_REFERENCES: dict[str, ClientFactory] = {
    FLOOR: lambda peer: ThreadedFloorBench(peer.ws_url),
}

#: Opened anew for every round (the others only when a call failed).
REOPEN_EACH_ROUND = frozenset((SOCKETIO,))

#: The HTTP route's clients.
HTTP_CLIENTS: dict[str, ClientFactory] = {
    MYSHELL_HTTP: lambda peer: MyshellBench(peer.base_url, "http"),
    REQUESTS_SSE: lambda peer: RequestsSSEBench(peer.chat_url),
    HTTPX_SSE: lambda peer: HttpxSSEBench(peer.chat_url),
}

#: The key-based API's clients.
OPENAPI_CLIENTS: dict[str, ClientFactory] = {
    MYSHELL_OPENAPI: lambda peer: MyshellBench(peer.base_url, "openapi"),
    REQUESTS_JSON: lambda peer: RequestsJSONBench(peer.openapi_url),
}

#: The OpenAI layer against generate() on the same (WebSocket) transport.
OPENAI_CLIENTS: dict[str, ClientFactory] = {
    MYSHELL: lambda peer: MyshellBench(peer.base_url).warm(),
    OPENAI_LAYER: lambda peer: OpenAILayerBench(peer.base_url),
}


def _cold_myshell(peer: Peer) -> tuple[Callable[[], CallResult], Callable[[], None]]:
    client = MyshellBench(peer.base_url)
    return lambda: client.call(1), client.close


def _cold_raw(peer: Peer) -> tuple[Callable[[], CallResult], Callable[[], None]]:
    client = RawBench(peer.ws_url)
    return lambda: client.call(1), client.close


def _cold_socketio(peer: Peer) -> tuple[Callable[[], CallResult], Callable[[], None]]:
    client = SocketIOBench(peer.base_url)
    return lambda: client.call(1), client.close


def _cold_aiohttp(peer: Peer) -> tuple[Callable[[], CallResult], Callable[[], None]]:
    return lambda: aiohttp_cold_call(peer.ws_url, 1), lambda: None


def one_shot_call(base_url: str, n: int) -> CallResult:
    """The seed's calling style: ``myshell_sync.generate()`` opens a client,
    streams the reply and closes the client when the generator ends."""
    import myshell_sync

    chunks = myshell_sync.generate(MODEL, messages_for(n), base_url=base_url, captcha_delay=0)
    parts = [next(chunks)]
    first = time.perf_counter()
    parts.extend(chunks)
    return "".join(parts), first


def _cold_one_shot(peer: Peer) -> tuple[Callable[[], CallResult], Callable[[], None]]:
    return lambda: one_shot_call(peer.base_url, 1), lambda: None


#: A new client each: ``starter(peer)`` builds it and returns (a 1-chunk call, close).
COLD_STARTERS: dict[str, ColdStarter] = {
    MYSHELL: _cold_myshell,
    ONE_SHOT: _cold_one_shot,
    RAW: _cold_raw,
    AIOHTTP: _cold_aiohttp,
    SOCKETIO: _cold_socketio,
}
